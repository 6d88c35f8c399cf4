package authz_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/accounts"
	"github.com/perfectpay/perfectpay/audit"
	"github.com/perfectpay/perfectpay/authz"
	"github.com/perfectpay/perfectpay/internal/egress"
	"github.com/perfectpay/perfectpay/internal/ids"
	"github.com/perfectpay/perfectpay/internal/page"
	"github.com/perfectpay/perfectpay/store"
	"github.com/perfectpay/perfectpay/store/memory"
	"github.com/perfectpay/perfectpay/store/pgtest"
	"github.com/perfectpay/perfectpay/store/postgres"
)

// docServer serves a Client ID Metadata Document over TLS on loopback,
// reached as example.com (the name in httptest's certificate) through a
// fake resolver.
type docServer struct {
	srv  *httptest.Server
	hits atomic.Int64

	mu           sync.Mutex
	body         []byte
	keys         []byte // served at /jwks.json
	contentType  string
	cacheControl string
	status       int
	block        chan struct{} // when set, requests wait for it to close
}

func newDocServer(t *testing.T) *docServer {
	d := &docServer{contentType: "application/json", status: 200}
	d.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d.hits.Add(1)
		d.mu.Lock()
		body, ct, cc, st, block := d.body, d.contentType, d.cacheControl, d.status, d.block
		if r.URL.Path == "/jwks.json" {
			body = d.keys
		}
		d.mu.Unlock()
		if block != nil {
			<-block
			return
		}
		w.Header().Set("Content-Type", ct)
		if cc != "" {
			w.Header().Set("Cache-Control", cc)
		}
		w.WriteHeader(st)
		_, _ = w.Write(body)
	}))
	// Handshakes cut short when the server closes are not failures.
	d.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	d.srv.StartTLS()
	t.Cleanup(d.srv.Close)
	return d
}

func (d *docServer) set(fn func(d *docServer)) {
	d.mu.Lock()
	fn(d)
	d.mu.Unlock()
}

// url is the client id served at path.
func (d *docServer) url(path string) string {
	_, port, _ := net.SplitHostPort(d.srv.Listener.Addr().String())
	return "https://example.com:" + port + path
}

// client is the egress client reaching the server: policy decides whether
// loopback is allowed.
func (d *docServer) client(policy egress.Policy, timeout time.Duration) *http.Client {
	pool := x509.NewCertPool()
	pool.AddCert(d.srv.Certificate())
	resolve := func(context.Context, string, string) ([]netip.Addr, error) {
		return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
	}
	return egress.NewHTTPClient(policy, resolve, timeout, &tls.Config{RootCAs: pool})
}

var loopbackAllowed = egress.Policy{Allowed: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}

type cimdAgentKey struct {
	key *ecdsa.PrivateKey
	kid string
}

func newCIMDKey(t *testing.T) cimdAgentKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	return cimdAgentKey{key: k, kid: ids.New("kid")}
}

func (k cimdAgentKey) jwks() json.RawMessage {
	b, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &k.key.PublicKey, KeyID: k.kid, Algorithm: "ES256", Use: "sig"}}})
	return b
}

func cimdDoc(clientID string, k cimdAgentKey) []byte {
	b, _ := json.Marshal(map[string]any{
		"client_id": clientID, "client_name": "Shopping agent", "token_endpoint_auth_method": "private_key_jwt",
		"grant_types": []string{"client_credentials"}, "jwks": k.jwks(),
	})
	return b
}

// cimdToken asks for a token with a client assertion signed by k.
func cimdToken(t *testing.T, iss *authz.Issuer, now time.Time, clientID string, k cimdAgentKey) (int, map[string]any) {
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: k.key},
		(&jose.SignerOptions{}).WithHeader(jose.HeaderKey("kid"), k.kid))
	require.NoError(t, err)
	claims, _ := json.Marshal(map[string]any{"iss": clientID, "sub": clientID, "aud": testIssuer + "/oauth2/token",
		"iat": now.Unix(), "exp": now.Add(time.Minute).Unix(), "jti": ids.New("jti")})
	jws, err := s.Sign(claims)
	require.NoError(t, err)
	assertion, err := jws.CompactSerialize()
	require.NoError(t, err)
	assertion = lowSigned(t, assertion)
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {clientID},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {assertion}}
	r := httptest.NewRequest("POST", testIssuer+"/oauth2/token", strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	w := httptest.NewRecorder()
	iss.TokenEndpoint(w, r)
	var out map[string]any
	_ = json.Unmarshal(w.Body.Bytes(), &out)
	return w.Code, out
}

// cimdStore is an issuer's store on either backend, with a tenant.
func cimdStore(t *testing.T, driver string) (store.Runner[authz.Tx], string) {
	db, tenant, _ := cimdStoreAudit(t, driver)
	return db, tenant
}

// cimdStoreAudit is cimdStore with a reader of the audit entries of an action.
func cimdStoreAudit(t *testing.T, driver string) (store.Runner[authz.Tx], string, func(action string) []audit.Entry) {
	ctx := context.Background()
	tenant := ids.New("ten")
	mk := func(tx interface {
		CreateTenant(context.Context, *accounts.Tenant) error
	}) error {
		return tx.CreateTenant(ctx, &accounts.Tenant{ID: tenant, Name: "t", Status: accounts.TenantActive, CreatedAt: time.Now().UTC()})
	}
	type lister interface {
		ListAudit(context.Context, audit.Filter) ([]audit.Entry, error)
	}
	list := func(tx lister, action string) []audit.Entry {
		out, err := tx.ListAudit(ctx, audit.Filter{Action: action})
		require.NoError(t, err)
		return out
	}
	if driver == "postgres" {
		s := pgtest.NewStore(t)
		require.NoError(t, s.InTx(ctx, func(tx *postgres.Tx) error { return mk(tx) }))
		return store.Bind(s, func(x *postgres.Tx) authz.Tx { return x }), tenant, func(action string) (out []audit.Entry) {
			require.NoError(t, s.InTx(ctx, func(tx *postgres.Tx) error { out = list(tx, action); return nil }))
			return out
		}
	}
	m := memory.New()
	require.NoError(t, m.InTx(ctx, func(tx *memory.Tx) error { return mk(tx) }))
	return store.Bind(m, func(x *memory.Tx) authz.Tx { return x }), tenant, func(action string) (out []audit.Entry) {
		require.NoError(t, m.InTx(ctx, func(tx *memory.Tx) error { out = list(tx, action); return nil }))
		return out
	}
}

func cimdIssuer(t *testing.T, db store.Runner[authz.Tx], edit func(*authz.Options)) *authz.Issuer {
	opt := baseOptions()
	edit(&opt)
	iss, err := authz.New(context.Background(), db, opt)
	require.NoError(t, err)
	return iss
}

// TestCIMDFlow: an agent whose client_id is the URL of its metadata
// document gets a token with an assertion signed by the document's key,
// becomes an agent of the tenant that allowed its host, the document is
// cached as its Cache-Control says (a new key takes effect after max-age,
// a failed fetch after expiry refuses), and suspension applies.
func TestCIMDFlow(t *testing.T) {
	for _, driver := range []string{"memory", "postgres"} {
		t.Run(driver, func(t *testing.T) {
			ctx := context.Background()
			db, tenant, audited := cimdStoreAudit(t, driver)
			d := newDocServer(t)
			clock := newFakeClock()
			iss := cimdIssuer(t, db, func(o *authz.Options) {
				o.CIMDClient, o.Now = d.client(loopbackAllowed, 10*time.Second), clock.now
			})
			id := d.url("/agents/shopper.json")
			k1 := newCIMDKey(t)
			d.set(func(d *docServer) { d.body, d.cacheControl = cimdDoc(id, k1), "public, max-age=120" })

			st, body := cimdToken(t, iss, clock.now(), id, k1)
			require.Equal(t, 401, st, body)
			assert.Equal(t, "invalid_client", body["error"])
			assert.Zero(t, d.hits.Load(), "a host no tenant allows is refused before anything is fetched")

			assert.Equal(t, true, iss.Metadata()["client_id_metadata_document_supported"])
			_, err := iss.AddClientDomain(ctx, tenant, "Example.COM")
			require.NoError(t, err)
			doms, err := iss.ListClientDomains(ctx, tenant)
			require.NoError(t, err)
			require.Len(t, doms, 1)
			assert.Equal(t, "example.com", doms[0].Domain)

			st, body = cimdToken(t, iss, clock.now(), id, k1)
			require.Equal(t, 200, st, body)
			at, err := iss.Verify(ctx, body["access_token"].(string))
			require.NoError(t, err)
			assert.Equal(t, id, at.ClientID)
			assert.Equal(t, tenant, at.TenantID)
			a, err := iss.GetAgent(ctx, tenant, id)
			require.NoError(t, err)
			assert.Equal(t, "Shopping agent", a.Name)
			assert.Equal(t, int64(1), d.hits.Load())
			require.Len(t, audited("client_domain.added"), 1)
			created := audited("agent.created")
			require.Len(t, created, 1)
			assert.Equal(t, id, created[0].Target)

			// max-age: a new key is not seen while the document is fresh.
			k2 := newCIMDKey(t)
			d.set(func(d *docServer) { d.body = cimdDoc(id, k2) })
			clock.advance(100 * time.Second)
			st, _ = cimdToken(t, iss, clock.now(), id, k2)
			assert.Equal(t, 401, st, "the cached document still names the old key")
			st, body = cimdToken(t, iss, clock.now(), id, k1)
			require.Equal(t, 200, st, body)
			assert.Equal(t, int64(1), d.hits.Load())

			clock.advance(30 * time.Second)
			st, body = cimdToken(t, iss, clock.now(), id, k2)
			require.Equal(t, 200, st, "after max-age the new key takes effect: %v", body)
			assert.Equal(t, int64(2), d.hits.Load())
			st, _ = cimdToken(t, iss, clock.now(), id, k1)
			assert.Equal(t, 401, st, "the removed key no longer works")
			a, err = iss.GetAgent(ctx, tenant, id)
			require.NoError(t, err)
			assert.Contains(t, string(a.JWKS), k2.kid)
			assert.Len(t, audited("agent.metadata_refreshed"), 1)
			_, _, err = iss.ReplaceKeys(ctx, tenant, id, k1.jwks())
			require.Error(t, err, "the document owns the keys")

			// A fetch failure after expiry refuses the client.
			d.set(func(d *docServer) { d.status = 500 })
			clock.advance(121 * time.Second)
			st, body = cimdToken(t, iss, clock.now(), id, k2)
			require.Equal(t, 401, st)
			assert.Equal(t, "invalid_client", body["error"])
			assert.Contains(t, body["error_description"], "HTTP 500")

			// no-store: fetched on every use.
			d.set(func(d *docServer) { d.status, d.cacheControl = 200, "no-store" })
			before := d.hits.Load()
			for range 2 {
				st, body = cimdToken(t, iss, clock.now(), id, k2)
				require.Equal(t, 200, st, body)
			}
			assert.Equal(t, before+2, d.hits.Load())

			// Suspension applies as to any agent.
			_, err = iss.SuspendAgent(ctx, tenant, id)
			require.NoError(t, err)
			st, _ = cimdToken(t, iss, clock.now(), id, k2)
			assert.NotEqual(t, 200, st)

			// A domain removed: refused before fetching.
			require.NoError(t, iss.RemoveClientDomain(ctx, tenant, "example.com"))
			assert.Len(t, audited("client_domain.removed"), 1)
			before = d.hits.Load()
			st, _ = cimdToken(t, iss, clock.now(), id, k2)
			assert.Equal(t, 401, st)
			assert.Equal(t, before, d.hits.Load())
		})
	}
}

// TestCIMDRefusals: every document or destination that must not be used
// answers invalid_client with the reason.
func TestCIMDRefusals(t *testing.T) {
	ctx := context.Background()
	k := newCIMDKey(t)
	cases := []struct {
		name   string
		path   string
		policy egress.Policy
		serve  func(d *docServer, id string)
		want   string
	}{
		{"private address with the production policy", "/a.json", egress.Policy{},
			func(d *docServer, id string) { d.body = cimdDoc(id, k) }, "may not be reached"},
		{"client_id not the URL", "/a.json", loopbackAllowed,
			func(d *docServer, id string) { d.body = cimdDoc(id+"x", k) }, "not exactly the URL"},
		{"oversized", "/a.json", loopbackAllowed, func(d *docServer, id string) {
			var m map[string]any
			_ = json.Unmarshal(cimdDoc(id, k), &m)
			m["logo_text"] = strings.Repeat("x", 6<<10)
			d.body, _ = json.Marshal(m)
		}, "larger than"},
		{"not JSON", "/a.json", loopbackAllowed,
			func(d *docServer, id string) { d.body, d.contentType = cimdDoc(id, k), "text/html" }, "application/json"},
		{"redirect", "/a.json", loopbackAllowed,
			func(d *docServer, id string) { d.status = 302 }, "HTTP 302"},
		{"shared secret method", "/a.json", loopbackAllowed, func(d *docServer, id string) {
			d.body = bytes.Replace(cimdDoc(id, k), []byte("private_key_jwt"), []byte("client_secret_basic"), 1)
		}, "private_key_jwt"},
		{"public client", "/a.json", loopbackAllowed, func(d *docServer, id string) {
			d.body = bytes.Replace(cimdDoc(id, k), []byte("private_key_jwt"), []byte("none"), 1)
		}, "private_key_jwt"},
		{"card number in the name", "/a.json", loopbackAllowed, func(d *docServer, id string) {
			d.body = bytes.Replace(cimdDoc(id, k), []byte("Shopping agent"), []byte("card 4242 4242 4242 4242"), 1)
		}, "card numbers"},
		{"card number in the URL", "/4242424242424242.json", loopbackAllowed,
			func(d *docServer, id string) { d.body = cimdDoc(id, k) }, "card number"},
		{"no path", "/", loopbackAllowed, func(d *docServer, id string) { d.body = cimdDoc(id, k) }, "must have a path"},
		{"dot segment", "/a/../b.json", loopbackAllowed, func(d *docServer, id string) { d.body = cimdDoc(id, k) }, "dot segments"},
		{"slow server", "/a.json", loopbackAllowed, func(d *docServer, id string) { d.block = make(chan struct{}) }, "timed out"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			db, tenant := cimdStore(t, "memory")
			d := newDocServer(t)
			id := d.url(c.path)
			d.set(func(d *docServer) { c.serve(d, id) })
			if d.block != nil {
				t.Cleanup(func() { close(d.block) }) // runs before the server's Close
			}
			iss := cimdIssuer(t, db, func(o *authz.Options) { o.CIMDClient = d.client(c.policy, 300*time.Millisecond) })
			_, err := iss.AddClientDomain(ctx, tenant, "example.com")
			require.NoError(t, err)
			st, body := cimdToken(t, iss, time.Now(), id, k)
			require.Equal(t, 401, st, body)
			assert.Equal(t, "invalid_client", body["error"])
			assert.Contains(t, body["error_description"], c.want)
			_, err = iss.GetAgent(ctx, tenant, id)
			assert.ErrorIs(t, err, store.ErrNotFound, "no agent is made from a refused document")
		})
	}
}

// TestClientDomainOneTenant: a domain belongs to one tenant, and only
// host names are accepted.
func TestClientDomainOneTenant(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	other := ids.New("ten")
	require.NoError(t, e.m.InTx(ctx, func(tx *memory.Tx) error {
		return tx.CreateTenant(ctx, &accounts.Tenant{ID: other, Name: "o", Status: accounts.TenantActive, CreatedAt: time.Now()})
	}))
	_, err := e.iss.AddClientDomain(ctx, e.tenant, "agents.example.com")
	require.NoError(t, err)
	_, err = e.iss.AddClientDomain(ctx, other, "agents.example.com")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "belongs to one account")
	for _, bad := range []string{"https://example.com", "example.com:443", "*.example.com", "127.0.0.1", "localhost", "example.com/x", ""} {
		_, err = e.iss.AddClientDomain(ctx, e.tenant, bad)
		assert.Error(t, err, bad)
	}
	assert.ErrorIs(t, e.iss.RemoveClientDomain(ctx, other, "agents.example.com"), store.ErrNotFound)
}

// TestCIMDFirstUseRace: requests racing on a client's first use all get
// tokens; one agent is made.
func TestCIMDFirstUseRace(t *testing.T) {
	ctx := context.Background()
	db, tenant := cimdStore(t, "memory")
	d := newDocServer(t)
	iss := cimdIssuer(t, db, func(o *authz.Options) { o.CIMDClient = d.client(loopbackAllowed, 10*time.Second) })
	id := d.url("/race.json")
	k := newCIMDKey(t)
	d.set(func(d *docServer) { d.body = cimdDoc(id, k) })
	_, err := iss.AddClientDomain(ctx, tenant, "example.com")
	require.NoError(t, err)
	var wg sync.WaitGroup
	codes := make([]int, 8)
	for n := range codes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[n], _ = cimdToken(t, iss, time.Now(), id, k)
		}()
	}
	wg.Wait()
	for _, c := range codes {
		assert.Equal(t, 200, c)
	}
	agents, _, err := iss.ListAgents(ctx, tenant, page.Page{Limit: 10})
	require.NoError(t, err)
	assert.Len(t, agents, 1)
	assert.Equal(t, int64(1), d.hits.Load(), "concurrent first uses share one fetch")
}

// TestCIMDJWKSURI: a document may name its keys by jwks_uri, fetched
// through the same guarded client; a key changed there takes effect when
// the document's cache lapses (here: no-store, at once).
func TestCIMDJWKSURI(t *testing.T) {
	ctx := context.Background()
	db, tenant := cimdStore(t, "memory")
	d := newDocServer(t)
	iss := cimdIssuer(t, db, func(o *authz.Options) { o.CIMDClient = d.client(loopbackAllowed, 10*time.Second) })
	id := d.url("/by-uri.json")
	k1, k2 := newCIMDKey(t), newCIMDKey(t)
	doc, _ := json.Marshal(map[string]any{"client_id": id, "token_endpoint_auth_method": "private_key_jwt",
		"jwks_uri": d.url("/jwks.json")})
	d.set(func(d *docServer) { d.body, d.keys, d.cacheControl = doc, k1.jwks(), "no-store" })
	_, err := iss.AddClientDomain(ctx, tenant, "example.com")
	require.NoError(t, err)
	st, body := cimdToken(t, iss, time.Now(), id, k1)
	require.Equal(t, 200, st, body)
	d.set(func(d *docServer) { d.keys = k2.jwks() })
	st, body = cimdToken(t, iss, time.Now(), id, k2)
	require.Equal(t, 200, st, body)
	st, _ = cimdToken(t, iss, time.Now(), id, k1)
	assert.Equal(t, 401, st)
	d.set(func(d *docServer) { d.keys = []byte("{") })
	st, body = cimdToken(t, iss, time.Now(), id, k2)
	require.Equal(t, 401, st)
	assert.Contains(t, body["error_description"], "jwks")
}

package web_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"net/http"
	"testing"

	"net/url"

	"github.com/go-webauthn/webauthn/protocol/webauthncbor"
	"github.com/go-webauthn/webauthn/protocol/webauthncose"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/app"
	"github.com/perfectpay/perfectpay/app/apptest"
)

// authenticator is a software passkey (ES256, "none" attestation) for
// the relying party pay.example.
type authenticator struct {
	t       *testing.T
	key     *ecdsa.PrivateKey
	id      []byte
	user    []byte
	counter uint32
	noUV    bool // assert without user verification
}

const rpID, rpOrigin = "pay.example", "https://pay.example"

func newAuthenticator(t *testing.T) *authenticator {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	id := make([]byte, 16)
	_, _ = rand.Read(id)
	return &authenticator{t: t, key: k, id: id}
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func (a *authenticator) authData(flags byte, attested []byte) []byte {
	h := sha256.Sum256([]byte(rpID))
	d := append(append([]byte{}, h[:]...), flags)
	d = binary.BigEndian.AppendUint32(d, a.counter)
	return append(d, attested...)
}

func clientData(t *testing.T, typ, challenge string) []byte {
	b, err := json.Marshal(map[string]any{"type": typ, "challenge": challenge, "origin": rpOrigin, "crossOrigin": false})
	require.NoError(t, err)
	return b
}

// create answers registration options.
func (a *authenticator) create(options map[string]any) []byte {
	pk := options["publicKey"].(map[string]any)
	user, err := base64.RawURLEncoding.DecodeString(pk["user"].(map[string]any)["id"].(string))
	require.NoError(a.t, err)
	a.user = user
	cose, err := webauthncbor.Marshal(map[int64]any{1: int64(webauthncose.EllipticKey), 3: int64(webauthncose.AlgES256),
		-1: int64(webauthncose.P256), -2: a.key.X.FillBytes(make([]byte, 32)), -3: a.key.Y.FillBytes(make([]byte, 32))})
	require.NoError(a.t, err)
	attested := make([]byte, 16) // AAGUID
	attested = binary.BigEndian.AppendUint16(attested, uint16(len(a.id)))
	attested = append(append(attested, a.id...), cose...)
	ad := a.authData(0x01|0x04|0x40, attested) // UP, UV, AT
	obj, err := webauthncbor.Marshal(map[string]any{"fmt": "none", "attStmt": map[string]any{}, "authData": ad})
	require.NoError(a.t, err)
	body, err := json.Marshal(map[string]any{"id": b64(a.id), "rawId": b64(a.id), "type": "public-key",
		"response": map[string]any{"attestationObject": b64(obj), "clientDataJSON": b64(clientData(a.t, "webauthn.create", pk["challenge"].(string)))}})
	require.NoError(a.t, err)
	return body
}

// get answers login options, signing with key (a's own when nil).
func (a *authenticator) get(options map[string]any, key *ecdsa.PrivateKey) []byte {
	if key == nil {
		key = a.key
	}
	pk := options["publicKey"].(map[string]any)
	a.counter++
	flags := byte(0x01 | 0x04) // UP, UV
	if a.noUV {
		flags = 0x01
	}
	ad := a.authData(flags, nil)
	cd := clientData(a.t, "webauthn.get", pk["challenge"].(string))
	cdh := sha256.Sum256(cd)
	digest := sha256.Sum256(append(append([]byte{}, ad...), cdh[:]...))
	sig, err := ecdsa.SignASN1(rand.Reader, key, digest[:])
	require.NoError(a.t, err)
	body, err := json.Marshal(map[string]any{"id": b64(a.id), "rawId": b64(a.id), "type": "public-key",
		"response": map[string]any{"authenticatorData": b64(ad), "clientDataJSON": b64(cd), "signature": b64(sig), "userHandle": b64(a.user)}})
	require.NoError(a.t, err)
	return body
}

// call posts JSON with the CSRF token of the page at `from`.
func (b *browser) call(from, path string, body []byte) (int, map[string]any) {
	b.t.Helper()
	tok := csrf(b.t, b.get(from).Body)
	if body == nil {
		body = []byte("{}")
	}
	req, err := http.NewRequest(http.MethodPost, b.base+path, bytes.NewReader(body))
	require.NoError(b.t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-CSRF-Token", tok)
	resp, err := b.c.Do(req)
	require.NoError(b.t, err)
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func TestPasskeyAsSecondFactorAndOnItsOwn(t *testing.T) {
	apptest.EachDriver(t, func(t *testing.T, driver string) {
		n, c := node(t, driver, func(c *app.Config) { c.Server.PublicURL = rpOrigin })
		bt, key := n.Tenant(t)
		b := newBrowser(t, n)
		p := signUp(t, n, c, b, key, bt.Tenant.ID, "pat@example.com")
		a := newAuthenticator(t)

		// Register, signed in with MFA.
		code, opts := b.call("/me", "/passkeys/register/options", nil)
		require.Equal(t, http.StatusOK, code, opts)
		assert.Equal(t, rpID, opts["publicKey"].(map[string]any)["rp"].(map[string]any)["id"])
		code, res := b.call("/me", "/passkeys/register", a.create(opts))
		require.Equal(t, http.StatusOK, code, res)
		// Finishing the same ceremony twice is refused (the cookie is spent).
		code, _ = b.call("/me", "/passkeys/register", a.create(opts))
		assert.Equal(t, http.StatusBadRequest, code)
		// Without the CSRF header nothing starts.
		req, err := http.NewRequest(http.MethodPost, n.URL+"/passkeys/register/options", bytes.NewReader([]byte("{}")))
		require.NoError(t, err)
		resp, err := b.c.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusForbidden, resp.StatusCode)

		// As the second factor after the password.
		x := newBrowser(t, n)
		got := x.post("/login", "/login", url.Values{"tenant": {p.Tenant}, "email": {p.Email}, "password": {password}})
		require.Equal(t, http.StatusSeeOther, got.Status, got.Body)
		require.Equal(t, http.StatusSeeOther, x.get("/me").Status) // no MFA yet
		before := x.cookie("pp_session")
		code, opts = x.call("/login/mfa", "/login/passkey/options?return=/me", nil)
		require.Equal(t, http.StatusOK, code, opts)
		// A signature by another key is refused.
		other, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		require.NoError(t, err)
		code, res = x.call("/login/mfa", "/login/passkey", a.get(opts, other))
		assert.Equal(t, http.StatusUnauthorized, code, res)
		// The failed try spent the ceremony: the right key must start again.
		code, _ = x.call("/login/mfa", "/login/passkey", a.get(opts, nil))
		assert.Equal(t, http.StatusBadRequest, code)
		code, opts = x.call("/login/mfa", "/login/passkey/options?return=/me", nil)
		require.Equal(t, http.StatusOK, code, opts)
		code, res = x.call("/login/mfa", "/login/passkey", a.get(opts, nil))
		require.Equal(t, http.StatusOK, code, res)
		assert.Equal(t, "/me", res["redirect"])
		assert.NotEqual(t, before, x.cookie("pp_session"))
		assert.Equal(t, http.StatusOK, x.get("/me").Status)

		// On its own: no password, user verification required.
		w := newBrowser(t, n)
		code, opts = w.call("/login?tenant="+p.Tenant, "/passkey/options?tenant="+p.Tenant, nil)
		require.Equal(t, http.StatusOK, code, opts)
		a.noUV = true
		code, _ = w.call("/login?tenant="+p.Tenant, "/passkey", a.get(opts, nil))
		assert.Equal(t, http.StatusUnauthorized, code)
		a.noUV = false
		y := newBrowser(t, n)
		code, opts = y.call("/login?tenant="+p.Tenant, "/passkey/options?tenant="+p.Tenant, nil)
		require.Equal(t, http.StatusOK, code, opts)
		code, res = y.call("/login?tenant="+p.Tenant, "/passkey", a.get(opts, nil))
		require.Equal(t, http.StatusOK, code, res)
		assert.Equal(t, "/me", res["redirect"])
		assert.Equal(t, http.StatusOK, y.get("/me").Status)
		// The same user handle at another tenant finds nobody.
		tb, _ := n.Tenant(t)
		z := newBrowser(t, n)
		code, opts = z.call("/login?tenant="+tb.Tenant.ID, "/passkey/options?tenant="+tb.Tenant.ID, nil)
		require.Equal(t, http.StatusOK, code, opts)
		code, _ = z.call("/login?tenant="+tb.Tenant.ID, "/passkey", a.get(opts, nil))
		assert.Equal(t, http.StatusUnauthorized, code)
		assert.Equal(t, http.StatusSeeOther, z.get("/me").Status)
	})
}

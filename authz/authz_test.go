package authz_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/accounts"
	"github.com/perfectpay/perfectpay/authz"
	"github.com/perfectpay/perfectpay/store"
	"github.com/perfectpay/perfectpay/store/memory"
)

const testIssuer = "https://pp.test"

type env struct {
	t      testing.TB
	m      *memory.Store
	db     store.Runner[authz.Tx]
	iss    *authz.Issuer
	tenant string
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func baseOptions() authz.Options {
	return authz.Options{
		Issuer: testIssuer, SigningKEK: bytes.Repeat([]byte{3}, 32), Pepper: bytes.Repeat([]byte{4}, 32),
		Log: quiet(), Details: authz.NewDetailTypeRegistry(),
	}
}

func newEnv(t testing.TB, edit ...func(*authz.Options)) *env {
	m := memory.New()
	e := &env{t: t, m: m, db: store.Bind(m, func(x *memory.Tx) authz.Tx { return x })}
	e.iss = e.issuer(edit...)
	e.tenant = "ten_" + strings.Repeat("a", 8)
	require.NoError(t, m.InTx(context.Background(), func(tx *memory.Tx) error {
		return tx.CreateTenant(context.Background(), &accounts.Tenant{ID: e.tenant, Name: "t", Status: accounts.TenantActive, CreatedAt: time.Now()})
	}))
	return e
}

// issuer builds another issuer on the same store.
func (e *env) issuer(edit ...func(*authz.Options)) *authz.Issuer {
	opt := baseOptions()
	for _, f := range edit {
		f(&opt)
	}
	iss, err := authz.New(context.Background(), e.db, opt)
	require.NoError(e.t, err)
	return iss
}

func (e *env) secretAgent(in authz.AgentInput) (string, string) {
	in.AuthMethod = authz.AuthClientSecretBasic
	if in.Name == "" {
		in.Name = "agent"
	}
	a, secret, err := e.iss.CreateAgent(context.Background(), e.tenant, in)
	require.NoError(e.t, err)
	return a.ID, secret
}

// token posts to iss's token endpoint and decodes the answer.
func token(t testing.TB, iss *authz.Issuer, id, secret string, form url.Values, hdr map[string]string) (int, map[string]any, http.Header) {
	r := httptest.NewRequest("POST", testIssuer+"/oauth2/token", strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.SetBasicAuth(id, secret)
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	iss.TokenEndpoint(w, r)
	var out map[string]any
	_ = json.Unmarshal(w.Body.Bytes(), &out)
	return w.Code, out, w.Header()
}

func (e *env) accessToken(iss *authz.Issuer, id, secret string, form url.Values) string {
	if form == nil {
		form = url.Values{}
	}
	form.Set("grant_type", "client_credentials")
	st, body, _ := token(e.t, iss, id, secret, form, nil)
	require.Equal(e.t, 200, st, body)
	return body["access_token"].(string)
}

func b64(v any) string {
	b, _ := json.Marshal(v)
	return base64.RawURLEncoding.EncodeToString(b)
}

func parts(tok string) (map[string]any, map[string]any, string) {
	p := strings.Split(tok, ".")
	var h, c map[string]any
	hb, _ := base64.RawURLEncoding.DecodeString(p[0])
	cb, _ := base64.RawURLEncoding.DecodeString(p[1])
	_ = json.Unmarshal(hb, &h)
	_ = json.Unmarshal(cb, &c)
	return h, c, p[2]
}

func ourJWK(t testing.TB, iss *authz.Issuer) jose.JSONWebKey {
	var set jose.JSONWebKeySet
	require.NoError(t, json.Unmarshal(iss.JWKS(context.Background()), &set))
	require.NotEmpty(t, set.Keys)
	return set.Keys[0]
}

// TestAttacks is the attack suite: every forged, stale, foreign or
// tampered token is refused by Verify.
func TestAttacks(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	id, secret := e.secretAgent(authz.AgentInput{Audiences: []string{"https://other.test"}})
	good := e.accessToken(e.iss, id, secret, nil)
	_, err := e.iss.Verify(ctx, good)
	require.NoError(t, err)
	h, c, sig := parts(good)
	kid := h["kid"].(string)
	pub := ourJWK(t, e.iss)

	attacker, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	signWith := func(key any, alg jose.SignatureAlgorithm, hdr map[jose.HeaderKey]any, claims any) string {
		opts := &jose.SignerOptions{ExtraHeaders: hdr}
		s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, opts)
		require.NoError(t, err)
		payload, _ := json.Marshal(claims)
		jws, err := s.Sign(payload)
		require.NoError(t, err)
		out, err := jws.CompactSerialize()
		require.NoError(t, err)
		return out
	}
	hs256 := func(key []byte) string {
		head := b64(map[string]any{"alg": "HS256", "typ": "at+jwt", "kid": kid})
		m := hmac.New(sha256.New, key)
		m.Write([]byte(head + "." + b64(c)))
		return head + "." + b64(c) + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
	}
	pubJSON, _ := pub.MarshalJSON()
	pubDER, _ := jose.JSONWebKey{Key: pub.Key}.MarshalJSON()
	tamper := func(field string, v any) string {
		cc := map[string]any{}
		for k, x := range c {
			cc[k] = x
		}
		cc[field] = v
		return strings.Split(good, ".")[0] + "." + b64(cc) + "." + sig
	}

	past := e.issuer(func(o *authz.Options) { o.Now = func() time.Time { return time.Now().Add(-20 * time.Minute) } })
	future := e.issuer(func(o *authz.Options) { o.Now = func() time.Time { return time.Now().Add(10 * time.Minute) } })
	foreign := e.issuer(func(o *authz.Options) { o.Issuer = "https://evil.test" })
	mandateJWS, err := e.iss.SignMandate(ctx, []byte(`{"iss":"`+testIssuer+`"}`))
	require.NoError(t, err)

	cases := map[string]string{
		"alg none":            b64(map[string]any{"alg": "none", "typ": "at+jwt", "kid": kid}) + "." + b64(c) + ".",
		"HS256 with our JWK":  hs256(pubJSON),
		"HS256 with our key":  hs256(pubDER),
		"unknown kid":         signWith(attacker, jose.ES256, map[jose.HeaderKey]any{"typ": "at+jwt", "kid": "attacker"}, c),
		"our kid, their key":  signWith(attacker, jose.ES256, map[jose.HeaderKey]any{"typ": "at+jwt", "kid": kid}, c),
		"embedded jwk":        signWith(jose.JSONWebKey{Key: attacker, KeyID: kid}, jose.ES256, map[jose.HeaderKey]any{"typ": "at+jwt", "jwk": jose.JSONWebKey{Key: &attacker.PublicKey}}, c),
		"another issuer":      e.accessToken(foreign, id, secret, nil),
		"expired":             e.accessToken(past, id, secret, nil),
		"not yet valid":       e.accessToken(future, id, secret, nil),
		"wrong aud":           e.accessToken(e.iss, id, secret, url.Values{"audience": {"https://other.test"}}),
		"not an access token": mandateJWS,
		"tampered sub":        tamper("sub", "agt_someone_else"),
		"tampered client_id":  tamper("client_id", "agt_someone_else"),
		"tampered tenant":     tamper("tenant_id", "ten_other"),
		"tampered scope":      tamper("scope", "charges:write charges:read mandates:read audit:read"),
		"tampered exp":        tamper("exp", time.Now().Add(24*time.Hour).Unix()),
		"tampered aud":        tamper("aud", []string{testIssuer, "https://x"}),
		"tampered act":        tamper("act", map[string]any{"sub": "agt_x"}),
		"tampered details":    tamper("authorization_details", []any{map[string]any{"type": "x"}}),
		"tampered cnf":        tamper("cnf", map[string]any{"jkt": "abc"}),
		"truncated":           good[:len(good)-10],
		"empty":               "",
		"json serialization":  `{"payload":"` + strings.Split(good, ".")[1] + `","signatures":[]}`,
	}
	// Each is refused for its own reason, not by whichever check comes first.
	reasons := map[string]string{
		"alg none": "accepted algorithm", "HS256 with our JWK": "accepted algorithm", "HS256 with our key": "accepted algorithm",
		"unknown kid": "key we do not know", "our kid, their key": "signature", "embedded jwk": "carries its own key",
		"another issuer": "not by this server", "expired": "expired", "not yet valid": "not valid yet", "wrong aud": "not meant for this resource",
		"not an access token": "typ header must be at+jwt", "truncated": "signature does not verify", "empty": "missing",
		"json serialization": "accepted algorithm",
	}
	for name, tok := range cases {
		_, err := e.iss.Verify(ctx, tok)
		var te *authz.TokenError
		if assert.True(t, errors.As(err, &te), "%s: want a TokenError, got %v", name, err) {
			want, ok := reasons[name]
			if strings.HasPrefix(name, "tampered ") {
				want, ok = "signature does not verify", true
			}
			if assert.True(t, ok, "%s: no reason listed", name) {
				assert.Contains(t, te.Description, want, name)
			}
		}
	}
	// The foreign issuer's token is sound for that issuer: the refusal above is
	// about whose token it is, not about a broken token.
	_, err = foreign.Verify(ctx, cases["another issuer"])
	require.NoError(t, err)
}

func TestRevocationReasons(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	id, secret := e.secretAgent(authz.AgentInput{})
	tok := e.accessToken(e.iss, id, secret, nil)
	_, c, _ := parts(tok)
	jti := c["jti"].(string)
	check := func() string {
		var what string
		require.NoError(t, e.db.InTx(ctx, func(tx authz.Tx) error {
			var err error
			what, err = tx.IsRevoked(ctx, jti, id, e.tenant)
			return err
		}))
		return what
	}
	assert.Equal(t, "", check())
	_, err := e.iss.SuspendAgent(ctx, e.tenant, id)
	require.NoError(t, err)
	assert.Equal(t, authz.RevokedAgent, check())
	_, err = e.iss.Verify(ctx, tok)
	var te *authz.TokenError
	require.ErrorAs(t, err, &te)
	assert.Equal(t, authz.RevokedAgent, te.Revoked)
	_, err = e.iss.ResumeAgent(ctx, e.tenant, id)
	require.NoError(t, err)
	assert.Equal(t, "", check())
	_, err = e.iss.Verify(ctx, tok)
	require.NoError(t, err)

	// Tenant status revoked in accounts counts too.
	require.NoError(t, e.m.InTx(ctx, func(tx *memory.Tx) error {
		tn, _ := tx.GetTenant(ctx, e.tenant)
		tn.Status = accounts.TenantRevoked
		return tx.UpdateTenant(ctx, tn)
	}))
	assert.Equal(t, authz.RevokedTenant, check())
}

func TestEdDSASigning(t *testing.T) {
	e := newEnv(t, func(o *authz.Options) { o.SigningAlg = authz.AlgEdDSA })
	id, secret := e.secretAgent(authz.AgentInput{})
	tok := e.accessToken(e.iss, id, secret, nil)
	h, _, _ := parts(tok)
	assert.Equal(t, "EdDSA", h["alg"])
	_, err := e.iss.Verify(context.Background(), tok)
	require.NoError(t, err)
}

// testDetail is a detail type for the registry tests: an amount cap.
type testDetail struct {
	Type   string `json:"type"`
	Amount int64  `json:"amount"`
}

func registerTestDetail(r *authz.DetailTypeRegistry) {
	r.Register("test_cap", authz.DetailType{
		Validate: func(_ context.Context, dc authz.DetailContext, raw json.RawMessage) (json.RawMessage, error) {
			var d testDetail
			if err := authz.StrictDecode(raw, &d); err != nil {
				return nil, err
			}
			if d.Amount <= 0 {
				return nil, authz.RefuseDetails("amount must be positive")
			}
			return json.Marshal(d)
		},
		Narrow: func(_ context.Context, dc authz.DetailContext, parent, child json.RawMessage) (json.RawMessage, error) {
			var p, c testDetail
			if err := authz.StrictDecode(parent, &p); err != nil {
				return nil, err
			}
			if err := authz.StrictDecode(child, &c); err != nil {
				return nil, err
			}
			if c.Amount > p.Amount || dc.Subject == nil {
				return nil, authz.ErrNotNarrower
			}
			return json.Marshal(c)
		},
	})
}

func TestAuthorizationDetails(t *testing.T) {
	e := newEnv(t, func(o *authz.Options) { registerTestDetail(o.Details) })
	id, secret := e.secretAgent(authz.AgentInput{})
	bID, bSecret := e.secretAgent(authz.AgentInput{})
	assert.Equal(t, []string{"test_cap"}, e.iss.Metadata()["authorization_details_types_supported"])

	form := func(details string) url.Values {
		return url.Values{"grant_type": {"client_credentials"}, "authorization_details": {details}}
	}
	st, body, _ := token(t, e.iss, id, secret, form(`[{"type":"test_cap", "amount":500}]`), nil)
	require.Equal(t, 200, st, body)
	assert.Equal(t, []any{map[string]any{"type": "test_cap", "amount": float64(500)}}, body["authorization_details"])
	tok := body["access_token"].(string)
	at, err := e.iss.Verify(context.Background(), tok)
	require.NoError(t, err)
	assert.JSONEq(t, `[{"type":"test_cap","amount":500}]`, string(at.AuthorizationDetails))

	for name, d := range map[string]string{
		"unknown type":  `[{"type":"payment_mandate"}]`,
		"unknown field": `[{"type":"test_cap","amount":5,"extra":1}]`,
		"no type":       `[{"amount":5}]`,
		"not an array":  `{"type":"test_cap"}`,
		"empty":         `[]`,
		"bad common":    `[{"type":"test_cap","amount":5,"locations":"x"}]`,
		"type refuses":  `[{"type":"test_cap","amount":-1}]`,
	} {
		st, body, _ := token(t, e.iss, id, secret, form(d), nil)
		assert.Equal(t, 400, st, name)
		assert.Equal(t, "invalid_authorization_details", body["error"], name)
	}

	xform := func(details string) url.Values {
		f := url.Values{"grant_type": {authz.GrantTokenExchange}, "subject_token": {tok}, "subject_token_type": {authz.TokenTypeAccessToken}}
		if details != "" {
			f.Set("authorization_details", details)
		}
		return f
	}
	st, body, _ = token(t, e.iss, bID, bSecret, xform(`[{"type":"test_cap","amount":200}]`), nil)
	require.Equal(t, 200, st, body)
	assert.Equal(t, []any{map[string]any{"type": "test_cap", "amount": float64(200)}}, body["authorization_details"])
	st, body, _ = token(t, e.iss, bID, bSecret, xform(`[{"type":"test_cap","amount":900}]`), nil)
	assert.Equal(t, 400, st)
	assert.Equal(t, "invalid_authorization_details", body["error"], "widening")
	st, body, _ = token(t, e.iss, bID, bSecret, xform(""), nil)
	require.Equal(t, 200, st, body)
	assert.Equal(t, []any{map[string]any{"type": "test_cap", "amount": float64(500)}}, body["authorization_details"], "inherited")
}

func TestDPoPNonce(t *testing.T) {
	e := newEnv(t, func(o *authz.Options) { o.DPoPNonce = true })
	id, secret := e.secretAgent(authz.AgentInput{})
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	proof := func(nonce string) string {
		c := map[string]any{"jti": base64.RawURLEncoding.EncodeToString([]byte(time.Now().String())), "htm": "POST",
			"htu": testIssuer + "/oauth2/token", "iat": time.Now().Unix()}
		if nonce != "" {
			c["nonce"] = nonce
		}
		s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, (&jose.SignerOptions{EmbedJWK: true}).WithType("dpop+jwt"))
		require.NoError(t, err)
		payload, _ := json.Marshal(c)
		jws, _ := s.Sign(payload)
		out, _ := jws.CompactSerialize()
		return lowSigned(t, out)
	}
	form := url.Values{"grant_type": {"client_credentials"}}
	st, body, hdr := token(t, e.iss, id, secret, form, map[string]string{"DPoP": proof("")})
	assert.Equal(t, 400, st)
	assert.Equal(t, "use_dpop_nonce", body["error"])
	nonce := hdr.Get("DPoP-Nonce")
	require.NotEmpty(t, nonce)
	st, body, _ = token(t, e.iss, id, secret, form, map[string]string{"DPoP": proof(nonce)})
	require.Equal(t, 200, st, body)
	assert.Equal(t, "DPoP", body["token_type"])
	st, _, _ = token(t, e.iss, id, secret, form, map[string]string{"DPoP": proof("forged")})
	assert.Equal(t, 400, st)

	// A symmetric or unsigned proof is refused.
	hs := b64(map[string]any{"alg": "HS256", "typ": "dpop+jwt"}) + "." + b64(map[string]any{"htm": "POST"}) + ".AAAA"
	_, err := e.iss.VerifyDPoP(context.Background(), hs, "POST", []string{testIssuer + "/oauth2/token"}, "")
	require.Error(t, err)
}

func TestAutomaticRotation(t *testing.T) {
	e := newEnv(t, func(o *authz.Options) { o.RotationInterval = time.Second })
	first := e.iss.CurrentKeyID()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go e.iss.Run(ctx, e.m)
	require.Eventually(t, func() bool { return e.iss.CurrentKeyID() != first }, 5*time.Second, 50*time.Millisecond)
	assert.Contains(t, string(e.iss.JWKS(context.Background())), first, "the retired key still verifies")
}

// CheckRevoked is the charge pipeline's check, on its own transaction: a
// token delegated through a revoked agent is revoked too.
func TestCheckRevokedInTransaction(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	aID, aSecret := e.secretAgent(authz.AgentInput{})
	bID, bSecret := e.secretAgent(authz.AgentInput{})
	subject := e.accessToken(e.iss, aID, aSecret, nil)
	st, body, _ := token(t, e.iss, bID, bSecret, url.Values{"grant_type": {authz.GrantTokenExchange},
		"subject_token": {subject}, "subject_token_type": {authz.TokenTypeAccessToken}}, nil)
	require.Equal(t, 200, st, body)
	at, err := e.iss.Verify(ctx, body["access_token"].(string))
	require.NoError(t, err)
	check := func() string {
		var what string
		require.NoError(t, e.db.InTx(ctx, func(tx authz.Tx) error {
			var err error
			what, err = authz.CheckRevoked(ctx, tx, at)
			return err
		}))
		return what
	}
	assert.Equal(t, "", check())
	_, err = e.iss.RevokeAgent(ctx, e.tenant, aID) // the delegator, not the holder
	require.NoError(t, err)
	assert.Equal(t, authz.RevokedAgent, check())
	_, err = e.iss.Verify(ctx, at.Raw)
	require.Error(t, err)
}

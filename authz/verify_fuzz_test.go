package authz_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/authz"
)

// FuzzVerifyAccessToken: a bearer token is whatever a caller sends.
// Verify never panics and accepts nothing but the token the issuer made
// (same jti): no header, algorithm, key or claim trick yields a token.
func FuzzVerifyAccessToken(f *testing.F) {
	e := newEnv(f)
	id, secret := e.secretAgent(authz.AgentInput{})
	tok := e.accessToken(e.iss, id, secret, url.Values{"scope": {"charges:write"}})
	want, err := e.iss.Verify(context.Background(), tok)
	require.NoError(f, err)
	h, c, sig := parts(tok)
	f.Add(tok)
	f.Add(strings.TrimSuffix(tok, sig) + "AAAA")
	f.Add(tok + ".extra")
	f.Add(" " + tok)
	for _, alg := range []string{"none", "HS256", "RS256", "ES384", "EdDSA", "es256"} {
		h2 := map[string]any{}
		for k, v := range h {
			h2[k] = v
		}
		h2["alg"] = alg
		f.Add(b64(h2) + "." + b64(c) + "." + sig)
		f.Add(b64(h2) + "." + b64(c) + ".")
	}
	c2 := map[string]any{}
	for k, v := range c {
		c2[k] = v
	}
	c2["exp"], c2["scope"] = time.Now().Add(time.Hour).Unix(), "charges:write mandates:write"
	f.Add(b64(h) + "." + b64(c2) + "." + sig)
	f.Add("")
	f.Add("a.b.c")
	f.Add("e30.e30.e30")
	f.Fuzz(func(t *testing.T, raw string) {
		at, err := e.iss.Verify(context.Background(), raw)
		if err != nil {
			return
		}
		if at.JTI != want.JTI || at.ClientID != want.ClientID || at.Scope != want.Scope || at.Expiry != want.Expiry {
			t.Fatalf("Verify accepted %q as %+v; the issuer made only %+v", raw, at, want)
		}
	})
}

// FuzzVerifyDPoP: a DPoP header is whatever a client sends. VerifyDPoP
// never panics, and what it accepts is, checked independently with
// go-jose: a compact JWS of type dpop+jwt under an allowed asymmetric
// algorithm, signed by the public key in its own header, for POST to the
// token endpoint, issued within a minute of now.
func FuzzVerifyDPoP(f *testing.F) {
	e := newEnv(f)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(f, err)
	htu := testIssuer + "/oauth2/token"
	proof := func(claims map[string]any, typ string, embed bool) string {
		s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, (&jose.SignerOptions{EmbedJWK: embed}).WithType(jose.ContentType(typ)))
		require.NoError(f, err)
		payload, _ := json.Marshal(claims)
		jws, err := s.Sign(payload)
		require.NoError(f, err)
		out, err := jws.CompactSerialize()
		require.NoError(f, err)
		return out
	}
	jti := func() string {
		b := make([]byte, 12)
		_, _ = rand.Read(b)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	now := time.Now().Unix()
	good := map[string]any{"jti": jti(), "htm": "POST", "htu": htu, "iat": now}
	f.Add(proof(good, "dpop+jwt", true))
	f.Add(proof(map[string]any{"jti": jti(), "htm": "GET", "htu": htu, "iat": now}, "dpop+jwt", true))
	f.Add(proof(map[string]any{"jti": jti(), "htm": "POST", "htu": htu + "?x=1#f", "iat": now}, "dpop+jwt", true))
	f.Add(proof(map[string]any{"jti": jti(), "htm": "POST", "htu": "https://other.test/oauth2/token", "iat": now}, "dpop+jwt", true))
	f.Add(proof(map[string]any{"jti": jti(), "htm": "POST", "htu": htu, "iat": now - 3600}, "dpop+jwt", true))
	f.Add(proof(map[string]any{"jti": jti(), "htm": "POST", "htu": htu, "iat": "now"}, "dpop+jwt", true))
	f.Add(proof(map[string]any{"jti": jti(), "htm": "POST", "htu": htu, "iat": now}, "JWT", true))
	f.Add(proof(map[string]any{"jti": jti(), "htm": "POST", "htu": htu, "iat": now}, "dpop+jwt", false))
	f.Add(b64(map[string]any{"alg": "HS256", "typ": "dpop+jwt"}) + "." + b64(good) + ".AAAA")
	f.Add(b64(map[string]any{"alg": "none", "typ": "dpop+jwt", "jwk": map[string]any{"kty": "oct", "k": "AAAA"}}) + "." + b64(good) + ".")
	f.Add("")
	f.Add("..")
	algs := []jose.SignatureAlgorithm{jose.ES256, jose.ES384, jose.ES512, jose.EdDSA, jose.PS256, jose.PS384, jose.PS512, jose.RS256}
	f.Fuzz(func(t *testing.T, raw string) {
		if _, err := e.iss.VerifyDPoP(context.Background(), raw, "POST", []string{htu}, ""); err != nil {
			return
		}
		jws, err := jose.ParseSignedCompact(raw, algs)
		if err != nil || len(jws.Signatures) != 1 {
			t.Fatalf("accepted %q, which is not a compact JWS under an allowed algorithm: %v", raw, err)
		}
		h := jws.Signatures[0].Protected
		if h.ExtraHeaders["typ"] != "dpop+jwt" || h.JSONWebKey == nil || !h.JSONWebKey.IsPublic() {
			t.Fatalf("accepted %q: typ %v, key %v", raw, h.ExtraHeaders["typ"], h.JSONWebKey)
		}
		payload, err := jws.Verify(h.JSONWebKey)
		if err != nil {
			t.Fatalf("accepted %q, whose signature does not verify with its own key: %v", raw, err)
		}
		var c struct {
			HTM string `json:"htm"`
			HTU string `json:"htu"`
			IAT int64  `json:"iat"`
			JTI string `json:"jti"`
		}
		if err := json.Unmarshal(payload, &c); err != nil || c.HTM != "POST" || c.JTI == "" ||
			!strings.HasPrefix(c.HTU, htu) || c.IAT < time.Now().Unix()-120 || c.IAT > time.Now().Unix()+120 {
			t.Fatalf("accepted %q with claims %s (%v)", raw, payload, err)
		}
	})
}

// FuzzTokenEndpoint: any form body, client_assertion, authorization_details
// or DPoP header at /oauth2/token gets a 2xx or a 4xx OAuth error — never a
// 5xx — and a token only with the client's own credentials.
func FuzzTokenEndpoint(f *testing.F) {
	e := newEnv(f)
	id, secret := e.secretAgent(authz.AgentInput{})
	for _, s := range []string{
		"grant_type=client_credentials",
		"grant_type=client_credentials&scope=charges:write",
		"grant_type=client_credentials&authorization_details=" + url.QueryEscape(`[{"type":"payment_mandate","mandate_id":"mdt_1"}]`),
		"grant_type=client_credentials&authorization_details=" + url.QueryEscape(`[{"type":"payment_mandate","currency":"USD","budget":5,"payment_methods":["tok_1"]}]`),
		"grant_type=client_credentials&authorization_details=%5B",
		"grant_type=client_credentials&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion=a.b.c",
		"grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange&subject_token=a.b.c&subject_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Aaccess_token",
		"grant_type=refresh_token&refresh_token=x",
		"grant_type=client_credentials&resource=https%3A%2F%2Fpp.test%2Fv1&resource=%00",
		"grant_type=password&username=a&password=b",
		"%zz", "", "grant_type=client_credentials&grant_type=refresh_token",
	} {
		f.Add(s, true, "")
		f.Add(s, false, "")
	}
	f.Add("grant_type=client_credentials", true, "e30.e30.")
	f.Fuzz(func(t *testing.T, body string, withSecret bool, dpop string) {
		r := httptest.NewRequest("POST", testIssuer+"/oauth2/token", strings.NewReader(body))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if withSecret {
			r.SetBasicAuth(id, secret)
		}
		if dpop != "" {
			r.Header.Set("DPoP", dpop)
		}
		w := httptest.NewRecorder()
		e.iss.TokenEndpoint(w, r)
		if w.Code >= 500 {
			t.Fatalf("POST /oauth2/token %q: %d %s", body, w.Code, w.Body)
		}
		if w.Code == 200 && !withSecret {
			t.Fatalf("a token without the client's secret: %q -> %s", body, w.Body)
		}
		var out map[string]any
		if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil {
			t.Fatalf("POST /oauth2/token %q: %d, body is not JSON: %q", body, w.Code, w.Body)
		}
		if w.Code != 200 && out["error"] == nil {
			t.Fatalf("POST /oauth2/token %q: %d without an OAuth error: %s", body, w.Code, w.Body)
		}
	})
}

// FuzzVerifySignedMandate: a signed mandate (compact JWS, typ mandate+jws)
// can come back from anyone who holds it, e.g. a merchant checking an
// agent's authority. VerifySignedMandate never panics and returns only a
// payload this issuer signed; a token (typ at+jwt) signed with the same
// keys is not a mandate.
func FuzzVerifySignedMandate(f *testing.F) {
	e := newEnv(f)
	ctx := context.Background()
	payload := []byte(`{"budget":10000,"currency":"USD","id":"mdt_fuzz","payment_methods":["tok_1"]}`)
	signed, err := e.iss.SignMandate(ctx, payload)
	require.NoError(f, err)
	id, secret := e.secretAgent(authz.AgentInput{})
	tok := e.accessToken(e.iss, id, secret, nil)
	h, c, sig := parts(signed)
	f.Add(signed)
	f.Add(tok)
	f.Add(strings.TrimSuffix(signed, sig) + "AAAA")
	h2 := map[string]any{}
	for k, v := range h {
		h2[k] = v
	}
	h2["typ"] = "at+jwt"
	f.Add(b64(h2) + "." + b64(c) + "." + sig)
	h2["typ"], h2["alg"] = "mandate+jws", "HS256"
	f.Add(b64(h2) + "." + b64(c) + "." + sig)
	f.Add("")
	f.Add("a.b.c")
	f.Fuzz(func(t *testing.T, raw string) {
		got, err := e.iss.VerifySignedMandate(ctx, raw)
		if err != nil {
			return
		}
		if string(got) != string(payload) {
			t.Fatalf("VerifySignedMandate accepted %q with payload %q; the issuer signed only %q", raw, got, payload)
		}
	})
}

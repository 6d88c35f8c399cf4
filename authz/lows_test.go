package authz_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/authz"
)

// flipS rewrites a P-256 JWS signature (r, s) into (r, n − s), which
// verifies just as well: the malleated twin of a valid signature.
func flipS(t testing.TB, compact string) string {
	p := strings.Split(compact, ".")
	sig, err := base64.RawURLEncoding.DecodeString(p[2])
	require.NoError(t, err)
	require.Len(t, sig, 64)
	n := elliptic.P256().Params().N
	s := new(big.Int).SetBytes(sig[32:])
	new(big.Int).Sub(n, s).FillBytes(sig[32:])
	p[2] = base64.RawURLEncoding.EncodeToString(sig)
	return strings.Join(p, ".")
}

// isLowS reports whether a P-256 JWS signature has s ≤ n/2.
func isLowS(t testing.TB, compact string) bool {
	sig, err := base64.RawURLEncoding.DecodeString(strings.Split(compact, ".")[2])
	require.NoError(t, err)
	half := new(big.Int).Rsh(elliptic.P256().Params().N, 1)
	return new(big.Int).SetBytes(sig[32:]).Cmp(half) <= 0
}

// lowSigned returns whichever of compact and its twin is in low-S form.
func lowSigned(t testing.TB, compact string) string {
	if isLowS(t, compact) {
		return compact
	}
	return flipS(t, compact)
}

func signES256(t testing.TB, key *ecdsa.PrivateKey, opts *jose.SignerOptions, claims any) string {
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, opts)
	require.NoError(t, err)
	payload, _ := json.Marshal(claims)
	jws, err := s.Sign(payload)
	require.NoError(t, err)
	out, err := jws.CompactSerialize()
	require.NoError(t, err)
	return out
}

// Every ECDSA JWS we verify must be in low-S form; its high-S twin (same
// r, n − s: a valid signature made without the key) is refused. What we
// sign is always low-S.
func TestHighSRefused(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	id, secret := e.secretAgent(authz.AgentInput{})

	// Access tokens and signed mandates we make are low-S; their twins are refused.
	for range 16 {
		tok := e.accessToken(e.iss, id, secret, nil)
		require.True(t, isLowS(t, tok))
		_, err := e.iss.Verify(ctx, tok)
		require.NoError(t, err)
		_, err = e.iss.Verify(ctx, flipS(t, tok))
		var te *authz.TokenError
		require.ErrorAs(t, err, &te)
		assert.Contains(t, te.Description, "low-S")

		m, err := e.iss.SignMandate(ctx, []byte(`{"id":"mdt_1"}`))
		require.NoError(t, err)
		require.True(t, isLowS(t, m))
		payload, err := e.iss.VerifySignedMandate(ctx, m)
		require.NoError(t, err)
		assert.JSONEq(t, `{"id":"mdt_1"}`, string(payload))
		_, err = e.iss.VerifySignedMandate(ctx, flipS(t, m))
		assert.ErrorContains(t, err, "low-S")
	}

	// DPoP proofs.
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	urls := []string{testIssuer + "/oauth2/token"}
	proof := func() string {
		return lowSigned(t, signES256(t, key, (&jose.SignerOptions{EmbedJWK: true}).WithType("dpop+jwt"),
			map[string]any{"jti": randJTI(t), "htm": "POST", "htu": urls[0], "iat": time.Now().Unix()}))
	}
	_, err = e.iss.VerifyDPoP(ctx, flipS(t, proof()), "POST", urls, "")
	assert.ErrorContains(t, err, "low-S")
	_, err = e.iss.VerifyDPoP(ctx, proof(), "POST", urls, "")
	require.NoError(t, err)

	// Client assertions.
	akey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	jwks, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &akey.PublicKey, KeyID: "k1", Algorithm: "ES256", Use: "sig"}}})
	a, _, err := e.iss.CreateAgent(ctx, e.tenant, authz.AgentInput{Name: "jwt", AuthMethod: authz.AuthPrivateKeyJWT, JWKS: jwks})
	require.NoError(t, err)
	assertion := func() string {
		return lowSigned(t, signES256(t, akey, (&jose.SignerOptions{}).WithHeader("kid", "k1"), map[string]any{
			"iss": a.ID, "sub": a.ID, "aud": testIssuer + "/oauth2/token", "jti": randJTI(t),
			"iat": time.Now().Unix(), "exp": time.Now().Add(time.Minute).Unix()}))
	}
	post := func(assertion string) (int, map[string]any) {
		form := url.Values{"grant_type": {"client_credentials"},
			"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {assertion}}
		r := httptest.NewRequest("POST", testIssuer+"/oauth2/token", strings.NewReader(form.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		w := httptest.NewRecorder()
		e.iss.TokenEndpoint(w, r)
		var body map[string]any
		_ = json.Unmarshal(w.Body.Bytes(), &body)
		return w.Code, body
	}
	st, body := post(flipS(t, assertion()))
	assert.Equal(t, 401, st, body)
	assert.Contains(t, body["error_description"], "low-S")
	st, body = post(assertion())
	assert.Equal(t, 200, st, body)
}

func randJTI(t testing.TB) string {
	b := make([]byte, 12)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return base64.RawURLEncoding.EncodeToString(b)
}

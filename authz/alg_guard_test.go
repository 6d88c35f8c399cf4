package authz_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"hash"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/authz"
)

// allowListReason is how the verifier refuses a token whose algorithm is not
// on its allow-list (ES256, EdDSA).
const allowListReason = "not a JWS signed with an accepted algorithm"

// TestAlgorithmAllowList presents access tokens naming our kid, with our
// claims, signed soundly under every algorithm the verifier does not allow:
// each must be refused by the allow-list itself, with its reason, not by a
// later check (key type, key algorithm, signature). Widening the list makes
// this test fail even where go-jose's key-type check would still refuse.
func TestAlgorithmAllowList(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	id, secret := e.secretAgent(authz.AgentInput{})
	good := e.accessToken(e.iss, id, secret, nil)
	h, c, _ := parts(good)
	kid := h["kid"].(string)
	pubJSON, err := ourJWK(t, e.iss).MarshalJSON()
	require.NoError(t, err)

	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	require.NoError(t, err)
	p521, err := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	require.NoError(t, err)
	sign := func(alg jose.SignatureAlgorithm, key any) string {
		s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key},
			&jose.SignerOptions{ExtraHeaders: map[jose.HeaderKey]any{"typ": "at+jwt", "kid": kid}})
		require.NoError(t, err)
		payload, _ := json.Marshal(c)
		jws, err := s.Sign(payload)
		require.NoError(t, err)
		out, err := jws.CompactSerialize()
		require.NoError(t, err)
		return out
	}
	// An HMAC keyed with our published key: the classic confusion attack.
	mac := func(alg string, h func() hash.Hash) string {
		head := b64(map[string]any{"alg": alg, "typ": "at+jwt", "kid": kid})
		m := hmac.New(h, pubJSON)
		m.Write([]byte(head + "." + b64(c)))
		return head + "." + b64(c) + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
	}
	refused := map[string]string{
		"none":  b64(map[string]any{"alg": "none", "typ": "at+jwt", "kid": kid}) + "." + b64(c) + ".",
		"HS256": mac("HS256", sha256.New),
		"HS384": mac("HS384", sha512.New384),
		"HS512": mac("HS512", sha512.New),
		"RS256": sign(jose.RS256, rsaKey),
		"RS384": sign(jose.RS384, rsaKey),
		"RS512": sign(jose.RS512, rsaKey),
		"PS256": sign(jose.PS256, rsaKey),
		"PS384": sign(jose.PS384, rsaKey),
		"PS512": sign(jose.PS512, rsaKey),
		"ES384": sign(jose.ES384, p384),
		"ES512": sign(jose.ES512, p521),
	}
	for alg, tok := range refused {
		_, err := e.iss.Verify(ctx, tok)
		var te *authz.TokenError
		if assert.ErrorAs(t, err, &te, alg) {
			assert.Contains(t, te.Description, allowListReason, "%s must be refused by the allow-list", alg)
		}
	}

	// The allowed algorithms pass the list and are refused (or accepted)
	// by what comes after it.
	attacker, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	_, edPriv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	for alg, tok := range map[string]string{"ES256": sign(jose.ES256, attacker), "EdDSA": sign(jose.EdDSA, edPriv)} {
		_, err := e.iss.Verify(ctx, tok)
		var te *authz.TokenError
		if assert.ErrorAs(t, err, &te, alg) {
			assert.NotContains(t, te.Description, allowListReason, "%s is on the allow-list", alg)
		}
	}
	_, err = e.iss.Verify(ctx, good)
	require.NoError(t, err)
}

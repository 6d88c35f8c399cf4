package authz_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http/httptest"
	"net/url"
	"strconv"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/perfectpay/perfectpay/authz"
)

// BenchmarkVerify is the resource-side check of a bearer token (signature,
// claims, revocation through the node cache), per algorithm.
func BenchmarkVerify(b *testing.B) {
	for _, alg := range []string{authz.AlgES256, authz.AlgEdDSA} {
		b.Run(alg, func(b *testing.B) {
			e := newEnv(b, func(o *authz.Options) { o.SigningAlg = alg })
			id, secret := e.secretAgent(authz.AgentInput{})
			tok := e.accessToken(e.iss, id, secret, nil)
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if _, err := e.iss.Verify(ctx, tok); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkVerifyDPoP is VerifyRequest for a DPoP-bound token: the token,
// the proof (signature, htm/htu/iat/ath) and its jti recorded in the
// (memory) store. Proofs are made before the timer starts.
func BenchmarkVerifyDPoP(b *testing.B) {
	e := newEnv(b)
	id, secret := e.secretAgent(authz.AgentInput{})
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	signer, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, (&jose.SignerOptions{EmbedJWK: true}).WithType("dpop+jwt"))
	proof := func(htu, ath string, n int) string {
		c := map[string]any{"jti": "p" + strconv.Itoa(n), "htm": "POST", "htu": htu, "iat": time.Now().Unix()}
		if ath != "" {
			c["ath"] = ath
		}
		payload, _ := json.Marshal(c)
		jws, _ := signer.Sign(payload)
		s, _ := jws.CompactSerialize()
		return s
	}
	st, body, _ := token(b, e.iss, id, secret, url.Values{"grant_type": {"client_credentials"}},
		map[string]string{"DPoP": proof(testIssuer+"/oauth2/token", "", -1)})
	if st != 200 {
		b.Fatal(body)
	}
	tok := body["access_token"].(string)
	sum := sha256.Sum256([]byte(tok))
	ath := base64.RawURLEncoding.EncodeToString(sum[:])
	proofs := make([]string, b.N)
	for i := range proofs {
		proofs[i] = proof("https://api.test/v1/charges", ath, i)
	}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		r := httptest.NewRequest("POST", "https://api.test/v1/charges", nil)
		r.Header.Set("DPoP", proofs[i])
		if _, err := e.iss.VerifyRequest(ctx, r, "dpop", tok); err != nil {
			b.Fatal(err)
		}
	}
}

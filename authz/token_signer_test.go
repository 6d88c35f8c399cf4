package authz

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"strconv"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestTokenSignerWritesVerifiableLowSJWS: what tokenSigner writes parses
// with go-jose under our allow-list, names our alg, kid and typ at+jwt,
// verifies with the public key, and is in low-S form every time (an
// ECDSA signature comes out high-S about half the time before it is
// normalized).
func TestTokenSignerWritesVerifiableLowSJWS(t *testing.T) {
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	for _, tc := range []struct {
		alg  string
		priv crypto.Signer
	}{{AlgES256, ec}, {AlgEdDSA, ed}} {
		t.Run(tc.alg, func(t *testing.T) {
			ts, err := newTokenSigner(tc.priv, tc.alg, "kid-1")
			require.NoError(t, err)
			for n := range 64 {
				payload := []byte(`{"jti":"` + strconv.Itoa(n) + `"}`)
				tok, err := ts.sign(payload)
				require.NoError(t, err)
				jws, err := jose.ParseSignedCompact(tok, signingAlgs)
				require.NoError(t, err)
				require.Len(t, jws.Signatures, 1)
				h := jws.Signatures[0].Protected
				assert.Equal(t, tc.alg, h.Algorithm)
				assert.Equal(t, "kid-1", h.KeyID)
				assert.Equal(t, "at+jwt", h.ExtraHeaders[jose.HeaderType])
				require.NoError(t, checkLowS(jws), "token %d is not low-S", n)
				got, err := jws.Verify(tc.priv.Public())
				require.NoError(t, err)
				assert.Equal(t, string(payload), string(got))
			}
		})
	}
	_, err = newTokenSigner(ec, AlgEdDSA, "kid-1")
	require.Error(t, err, "a key of another algorithm's type is refused")
}

// BenchmarkTokenSigner is the signature of one access token's claims
// (ES256): tokenSigner, and go-jose's signer with lowS after it, which it
// replaced.
func BenchmarkTokenSigner(b *testing.B) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	payload := []byte(`{"iss":"https://issuer.test","sub":"agt_1","aud":["https://issuer.test"],"client_id":"agt_1",` +
		`"tenant_id":"ten_1","jti":"abcdefghijklmnopqrstuvwx","iat":1,"nbf":1,"exp":2,"scope":"charges:read charges:write"}`)
	b.Run("compact", func(b *testing.B) {
		ts, err := newTokenSigner(ec, AlgES256, "kid-1")
		require.NoError(b, err)
		b.ReportAllocs()
		for range b.N {
			if _, err := ts.sign(payload); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("go-jose", func(b *testing.B) {
		s, err := joseSigners(ec, AlgES256, "kid-1", "at+jwt")
		require.NoError(b, err)
		b.ReportAllocs()
		for range b.N {
			jws, err := s[0].Sign(payload)
			if err != nil {
				b.Fatal(err)
			}
			out, err := jws.CompactSerialize()
			if err != nil {
				b.Fatal(err)
			}
			if _, err := lowS(jose.ES256, out); err != nil {
				b.Fatal(err)
			}
		}
	})
}

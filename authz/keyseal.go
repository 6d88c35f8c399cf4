package authz

import (
	jose "github.com/go-jose/go-jose/v4"

	"github.com/perfectpay/perfectpay/internal/seal"
)

// KeySealer makes and opens other signing keys under the signing KEK
// exactly as the token signing keys are (a JWK thumbprint kid, the PKCS #8
// private half sealed by internal/seal with the kid bound as additional
// data), so the KEK guards one format. The audit signing key uses it
// (audit.KeySealer); its purpose prefix keeps it from opening as a token
// signing key of the same kid.
type KeySealer struct{ kek []byte }

// NewKeySealer returns a sealer for the 32-byte signing KEK.
func NewKeySealer(kek []byte) (*KeySealer, error) {
	if err := seal.CheckKey(kek); err != nil {
		return nil, err
	}
	return &KeySealer{kek: kek}, nil
}

// NewKeyPair generates a key pair for alg (ES256 or EdDSA) and seals its
// private half bound to purpose+kid. It returns the kid (the RFC 7638
// thumbprint), the public JWK and the sealed private key.
func (s *KeySealer) NewKeyPair(alg, purpose string) (kid string, publicJWK, sealed []byte, err error) {
	return newKeyPair(s.kek, alg, purpose)
}

// OpenSigners opens a key NewKeyPair sealed (or one sealed before the
// format byte existed) and returns one signer per JWS type. The key must
// be of alg's type.
func (s *KeySealer) OpenSigners(alg, purpose, kid string, sealed []byte, typs ...string) ([]jose.Signer, error) {
	return openSigners(s.kek, alg, purpose, kid, sealed, typs...)
}

// KEKID names the KEK without revealing it.
func (s *KeySealer) KEKID() string { return kekID(s.kek) }

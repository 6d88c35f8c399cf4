package authz

import "github.com/perfectpay/perfectpay/internal/seal"

// KeySealer seals other private keys under the signing KEK exactly as the
// token signing keys are sealed (internal/seal, the kid bound as additional
// data), so the KEK guards one sealing format. The audit signing key uses
// it (audit.KeySealer).
type KeySealer struct{ kek []byte }

// NewKeySealer returns a sealer for the 32-byte signing KEK.
func NewKeySealer(kek []byte) (*KeySealer, error) {
	if err := seal.CheckKey(kek); err != nil {
		return nil, err
	}
	return &KeySealer{kek: kek}, nil
}

// SealKey seals plain under the KEK, bound to kid.
func (s *KeySealer) SealKey(kid string, plain []byte) ([]byte, error) {
	return sealKey(s.kek, kid, plain)
}

// OpenKey opens what SealKey sealed for the same kid, including keys
// sealed before the format byte existed.
func (s *KeySealer) OpenKey(kid string, sealed []byte) ([]byte, error) {
	return openKey(s.kek, kid, sealed)
}

// KEKID names the KEK without revealing it.
func (s *KeySealer) KEKID() string { return kekID(s.kek) }

package authz

// KeySealer seals other private keys under the signing KEK in exactly the
// format of the token signing keys (AES-256-GCM, the kid bound as
// additional data), so the KEK guards one sealing format. The audit
// signing key uses it (audit.KeySealer).
type KeySealer struct{ kek []byte }

// NewKeySealer returns a sealer for the 32-byte signing KEK.
func NewKeySealer(kek []byte) (*KeySealer, error) {
	if _, err := newGCM(kek); err != nil {
		return nil, err
	}
	return &KeySealer{kek: kek}, nil
}

// SealKey seals plain under the KEK, bound to kid.
func (s *KeySealer) SealKey(kid string, plain []byte) ([]byte, error) {
	return sealKey(s.kek, kid, plain)
}

// OpenKey opens what SealKey sealed for the same kid.
func (s *KeySealer) OpenKey(kid string, sealed []byte) ([]byte, error) {
	return openKey(s.kek, kid, sealed)
}

// KEKID names the KEK without revealing it.
func (s *KeySealer) KEKID() string { return kekID(s.kek) }

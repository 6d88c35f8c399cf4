package webhooks

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"github.com/perfectpay/perfectpay/internal/seal"
)

// SecretPrefix starts every endpoint signing secret, as Standard Webhooks
// recommends: "whsec_" + base64 of the raw key.
const SecretPrefix = "whsec_"

// secretBytes is the size of a signing key (the spec asks for 24 to 64).
const secretBytes = 32

// NewSecret returns a fresh signing secret: "whsec_" + base64(32 random bytes).
func NewSecret() (string, error) {
	b := make([]byte, secretBytes)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return SecretPrefix + base64.StdEncoding.EncodeToString(b), nil
}

// DecodeSecret returns the raw HMAC key of a "whsec_…" secret.
func DecodeSecret(secret string) ([]byte, error) {
	raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, SecretPrefix))
	if err != nil || len(raw) == 0 {
		return nil, errors.New("webhooks: malformed signing secret")
	}
	return raw, nil
}

// SecretBox seals endpoint signing secrets at rest (internal/seal,
// AES-256-GCM). The endpoint id is the additional data, so a sealed secret
// copied onto another endpoint's row does not open.
type SecretBox struct {
	key []byte
}

// NewSecretBox returns a box keyed with a 32-byte key.
func NewSecretBox(key []byte) (*SecretBox, error) {
	if len(key) != seal.KeySize {
		return nil, fmt.Errorf("webhooks: secret key must be 32 bytes (got %d)", len(key))
	}
	return &SecretBox{key: bytes.Clone(key)}, nil
}

// Seal encrypts secret for endpoint id.
func (b *SecretBox) Seal(endpointID, secret string) ([]byte, error) {
	return seal.Seal(b.key, []byte(secret), []byte(endpointID))
}

// ErrSecretUnreadable means a sealed secret does not open with this key
// (wrong webhooks.secret_key, or tampering).
var ErrSecretUnreadable = errors.New("webhooks: sealed secret does not open (wrong webhooks.secret_key?)")

// Open decrypts a sealed secret of endpoint id.
func (b *SecretBox) Open(endpointID string, sealed []byte) (string, error) {
	pt, err := seal.Open(b.key, sealed, []byte(endpointID))
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrSecretUnreadable, err)
	}
	return string(pt), nil
}

// Package seal encrypts small secrets at rest: private signing keys, the
// vault's wrapped keys and card data, webhook signing secrets. Every one is
// sealed the same way, so there is one format to read, test and rotate.
//
// # Format
//
//	version (1 byte) | nonce (12 bytes) | ciphertext | tag (16 bytes)
//
// Version 1 is AES-256-GCM (crypto/aes, crypto/cipher) with a random
// 96-bit nonce and the caller's additional data, which binds a sealed value
// to its place (a row id, a key id, a purpose): copied anywhere else it
// does not open. A later algorithm or layout takes the next version byte;
// Open refuses versions it does not know.
//
// Values written before the format byte existed (nonce | ciphertext | tag,
// AES-256-GCM) are read by OpenLegacy and never written again.
package seal

import (
	"crypto/aes"
	"crypto/cipher"
	"errors"
	"fmt"
)

// KeySize is the size of every sealing key: AES-256.
const KeySize = 32

// V1 is the format byte of AES-256-GCM with a 12-byte random nonce.
const V1 byte = 1

// Overhead is how many bytes Seal adds to a plaintext.
const Overhead = 1 + nonceSize + tagSize

const (
	nonceSize = 12
	tagSize   = 16
)

// Errors of Seal and Open. A wrong key, wrong additional data and altered
// bytes are one error: GCM cannot tell them apart, and neither may we.
var (
	ErrKeySize = errors.New("seal: the key must be 32 bytes (AES-256)")
	ErrShort   = errors.New("seal: sealed value is too short (truncated)")
	ErrVersion = errors.New("seal: unknown format version")
	ErrAuth    = errors.New("seal: sealed value does not authenticate (wrong key, wrong additional data, or altered)")
)

// CheckKey reports whether key can seal: ErrKeySize otherwise.
func CheckKey(key []byte) error {
	if len(key) != KeySize {
		return fmt.Errorf("%w (got %d bytes)", ErrKeySize, len(key))
	}
	return nil
}

// aead returns AES-256-GCM whose Seal draws a random nonce and writes it
// before the ciphertext, and whose Open reads it from there.
func aead(key []byte) (cipher.AEAD, error) {
	if err := CheckKey(key); err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCMWithRandomNonce(block)
}

// Seal encrypts plain under key, bound to aad, in the current format.
func Seal(key, plain, aad []byte) ([]byte, error) {
	g, err := aead(key)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 1, Overhead+len(plain))
	out[0] = V1
	return g.Seal(out, nil, plain, aad), nil //nolint:gosec // G407: NewGCMWithRandomNonce draws the nonce itself and requires nil here
}

// Open decrypts what Seal sealed under the same key and aad.
func Open(key, sealed, aad []byte) ([]byte, error) {
	g, err := aead(key)
	if err != nil {
		return nil, err
	}
	if len(sealed) == 0 {
		return nil, ErrShort
	}
	if sealed[0] != V1 {
		return nil, fmt.Errorf("%w %d", ErrVersion, sealed[0])
	}
	return open(g, sealed[1:], aad)
}

// OpenLegacy opens a value sealed by Seal or, for stores that still hold
// values written before the format byte, one in that older layout
// (nonce | ciphertext | tag, AES-256-GCM). A legacy value whose random
// nonce happens to begin with a known format byte is still found: it fails
// authentication as a versioned value and opens as a legacy one. GCM's tag
// makes a value open under at most one reading.
func OpenLegacy(key, sealed, aad []byte) ([]byte, error) {
	g, err := aead(key)
	if err != nil {
		return nil, err
	}
	if len(sealed) > 0 && sealed[0] == V1 {
		plain, err := open(g, sealed[1:], aad)
		if err == nil {
			return plain, nil
		}
		if plain, lerr := open(g, sealed, aad); lerr == nil {
			return plain, nil
		}
		return nil, err
	}
	return open(g, sealed, aad)
}

func open(g cipher.AEAD, body, aad []byte) ([]byte, error) {
	if len(body) < nonceSize+tagSize {
		return nil, ErrShort
	}
	plain, err := g.Open(nil, nil, body, aad)
	if err != nil {
		return nil, ErrAuth
	}
	return plain, nil
}

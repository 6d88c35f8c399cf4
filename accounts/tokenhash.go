package accounts

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"strings"
)

// TokenHash is how the configuration holds a bearer token the server
// checks (the platform operator's, the metrics scraper's): never the token,
// only "sha256:<64 hex digits>" of it. The tokens are 256-bit random
// values made by NewConfigToken, so an unkeyed hash is enough: there is
// nothing to guess. The zero value matches nothing.
type TokenHash []byte

// ErrTokenHash is a malformed TokenHash in the configuration.
var ErrTokenHash = errors.New(`accounts: a token hash is "sha256:" followed by 64 hex digits`)

// ParseTokenHash reads "sha256:<hex>"; the empty string is the zero value.
func ParseTokenHash(s string) (TokenHash, error) {
	if s == "" {
		return nil, nil
	}
	hexPart, ok := strings.CutPrefix(s, "sha256:")
	if !ok || len(hexPart) != 2*sha256.Size {
		return nil, ErrTokenHash
	}
	b, err := hex.DecodeString(hexPart)
	if err != nil {
		return nil, ErrTokenHash
	}
	return TokenHash(b), nil
}

// HashToken returns the configuration form of token.
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// Set reports whether a hash is configured.
func (h TokenHash) Set() bool { return len(h) == sha256.Size }

// Matches reports, in constant time, whether token hashes to h.
func (h TokenHash) Matches(token string) bool {
	if !h.Set() {
		return false
	}
	sum := sha256.Sum256([]byte(token))
	return subtle.ConstantTimeCompare(h, sum[:]) == 1
}

// NewConfigToken makes a random bearer token with prefix (e.g. "op_") and
// the hash the configuration keeps of it. The token is shown once.
func NewConfigToken(prefix string) (token, hash string) {
	token = prefix + randomSecret()
	return token, HashToken(token)
}

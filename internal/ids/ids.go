// Package ids makes the prefixed, random identifiers used across the API
// (ten_…, key_…, ch_…) and random secrets.
package ids

import (
	"crypto/rand"
	"math/big"
	"strings"
	"unicode/utf8"
)

const alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// New returns prefix + "_" + 24 base62 characters (~142 random bits).
func New(prefix string) string {
	return prefix + "_" + Random(24)
}

// Random returns n characters drawn uniformly from base62 with crypto/rand.
func Random(n int) string {
	b := make([]byte, n)
	max := big.NewInt(int64(len(alphabet)))
	for i := range b {
		v, err := rand.Int(rand.Reader, max)
		if err != nil {
			panic("ids: crypto/rand failed: " + err.Error())
		}
		b[i] = alphabet[v.Int64()]
	}
	return string(b)
}

// Storable reports whether s can be held in a stored text column: valid
// UTF-8 without NUL. PostgreSQL's text type holds neither, so a lookup or a
// write with such a value fails there (a 500) instead of missing; ids from
// outside are checked with it before any lookup.
func Storable(s string) bool {
	return utf8.ValidString(s) && strings.IndexByte(s, 0) < 0
}

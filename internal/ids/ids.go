// Package ids makes the prefixed, random identifiers used across the API
// (ten_…, key_…, ch_…) and random secrets.
package ids

import (
	"crypto/rand"
	"strings"
	"unicode/utf8"
)

const alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// New returns prefix + "_" + 24 base62 characters (~142 random bits).
func New(prefix string) string {
	return prefix + "_" + Random(24)
}

// Random returns n characters drawn uniformly from base62 with crypto/rand.
// Random bytes are read in blocks; a byte maps to alphabet[b % 62] unless
// it is 248 or more (4 × 62), which would favour the first characters, and
// is skipped. One read serves an identifier, where a draw per character
// cost a read and a big.Int each.
func Random(n int) string {
	b := make([]byte, n)
	var buf [64]byte
	for i := 0; i < n; {
		if _, err := rand.Read(buf[:]); err != nil {
			panic("ids: crypto/rand failed: " + err.Error())
		}
		for _, c := range buf {
			if c >= 248 {
				continue
			}
			b[i] = alphabet[c%62]
			if i++; i == n {
				break
			}
		}
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

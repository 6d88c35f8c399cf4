package accounts

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/subtle"
	_ "embed"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"

	"github.com/perfectpay/perfectpay/internal/apierr"
)

// PasswordParams are the argon2id cost parameters (RFC 9106). Hashes keep
// the parameters they were made with, so raising them later only affects
// new hashes (and rehashes at the next sign-in).
type PasswordParams struct {
	Time      uint32 // iterations
	MemoryKiB uint32
	Threads   uint8
}

// DefaultPasswordParams follow OWASP's argon2id recommendation
// (19 MiB, 2 iterations, 1 lane).
var DefaultPasswordParams = PasswordParams{Time: 2, MemoryKiB: 19 * 1024, Threads: 1}

// Check reports parameters too weak (or too costly) to use.
func (p PasswordParams) Check() error {
	switch {
	case p.Time < 1 || p.Time > 10:
		return errors.New("time must be between 1 and 10")
	case p.MemoryKiB < 8*1024 || p.MemoryKiB > 1024*1024:
		return errors.New("memory_kib must be between 8192 (8 MiB) and 1048576 (1 GiB)")
	case p.Threads < 1 || p.Threads > 16:
		return errors.New("threads must be between 1 and 16")
	}
	return nil
}

// Password rules.
const (
	MinPasswordLen = 12
	MaxPasswordLen = 128 // argon2 takes any length; a bound keeps a request cheap
)

// Codes of refused passwords.
const (
	CodePasswordTooShort = apierr.Code("password_too_short")
	CodePasswordTooLong  = apierr.Code("password_too_long")
	CodePasswordCommon   = apierr.Code("password_too_common")
)

//go:embed common_passwords.txt
var commonPasswordsText []byte

var commonPasswords = sync.OnceValue(func() map[string]struct{} {
	m := map[string]struct{}{}
	sc := bufio.NewScanner(bytes.NewReader(commonPasswordsText))
	for sc.Scan() {
		if w := strings.TrimSpace(sc.Text()); w != "" && !strings.HasPrefix(w, "#") {
			m[strings.ToLower(w)] = struct{}{}
		}
	}
	return m
})

// CheckPassword applies the password rules: 12 to 128 characters, not on
// the built-in list of common passwords, not one character repeated, not
// the email or its local part.
func CheckPassword(pw, email string) error {
	n := utf8.RuneCountInString(pw)
	if n < MinPasswordLen {
		return apierr.Invalidf("password", CodePasswordTooShort, "A password has at least %d characters.", MinPasswordLen)
	}
	if n > MaxPasswordLen || !utf8.ValidString(pw) {
		return apierr.Invalidf("password", CodePasswordTooLong, "A password has at most %d characters.", MaxPasswordLen)
	}
	low := strings.ToLower(pw)
	if _, ok := commonPasswords()[low]; ok || repeated(low) || sequential(low) {
		return apierr.Invalidf("password", CodePasswordCommon, "This password is too common; choose another.")
	}
	if email != "" {
		e := strings.ToLower(email)
		local, _, _ := strings.Cut(e, "@")
		if low == e || (len(local) >= 4 && strings.Contains(low, local) && len(low)-len(local) < 6) {
			return apierr.Invalidf("password", CodePasswordCommon, "The password must not be built from your email address.")
		}
	}
	return nil
}

// repeated: one character, or one short group, repeated (aaaaaaaaaaaa, abcabcabcabc).
func repeated(s string) bool {
	for size := 1; size <= 4; size++ {
		if len(s)%size == 0 && strings.Repeat(s[:size], len(s)/size) == s {
			return true
		}
	}
	return false
}

// sequential: consecutive ASCII characters (123456789012 wraps at 0).
func sequential(s string) bool {
	for i := 1; i < len(s); i++ {
		d := int(s[i]) - int(s[i-1])
		if d != 1 && !(s[i-1] == '9' && s[i] == '0') {
			return false
		}
	}
	return true
}

// HashPassword hashes pw with argon2id and a random 16-byte salt, in the
// PHC string format ($argon2id$v=19$m=…,t=…,p=…$salt$hash).
func HashPassword(pw string, p PasswordParams) (string, error) {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	sum := argon2.IDKey([]byte(pw), salt, p.Time, p.MemoryKiB, p.Threads, 32)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.MemoryKiB, p.Time, p.Threads,
		b64.EncodeToString(salt), b64.EncodeToString(sum)), nil
}

// ErrPasswordHash is a stored hash this code cannot read.
var ErrPasswordHash = errors.New("accounts: unreadable password hash")

// VerifyPassword reports, comparing in constant time, whether pw matches
// the PHC hash, and whether the hash was made with other parameters than
// p (so the caller may rehash it).
func VerifyPassword(pw, phc string, p PasswordParams) (ok, stale bool, err error) {
	parts := strings.Split(phc, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return false, false, ErrPasswordHash
	}
	var version int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return false, false, ErrPasswordHash
	}
	var hp PasswordParams
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &hp.MemoryKiB, &hp.Time, &hp.Threads); err != nil || hp.Check() != nil {
		return false, false, ErrPasswordHash
	}
	b64 := base64.RawStdEncoding
	salt, err1 := b64.DecodeString(parts[4])
	want, err2 := b64.DecodeString(parts[5])
	if err1 != nil || err2 != nil || len(want) < 16 || len(want) > 64 {
		return false, false, ErrPasswordHash
	}
	got := argon2.IDKey([]byte(pw), salt, hp.Time, hp.MemoryKiB, hp.Threads, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1, hp != p, nil
}

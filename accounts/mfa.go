package accounts

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"image/png"
	"math/big"
	"strings"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/perfectpay/perfectpay/internal/seal"
)

// TOTP (RFC 6238) as authenticator apps expect it: SHA-1, six digits, 30
// seconds, one step of clock skew either way.
var totpOpts = totp.ValidateOpts{Period: 30, Skew: 0, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1}

// RecoveryCodeCount is how many recovery codes an enrolment gives.
const RecoveryCodeCount = 10

// TOTPEnrolment is what the enrolment page shows once: the secret (for
// typing), the otpauth URL and its QR code as a data: URI (PNG), so the page
// loads nothing from elsewhere.
type TOTPEnrolment struct {
	Secret string
	URL    string
	QR     string
}

func totpAAD(u *User) []byte { return []byte("totp|" + u.TenantID + "|" + u.ID) }

// newTOTP makes a secret for u and its sealed form.
func (p *People) newTOTP(u *User) (*TOTPEnrolment, []byte, error) {
	key, err := totp.Generate(totp.GenerateOpts{Issuer: p.cfg.Issuer, AccountName: u.Email, Period: 30,
		Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1, SecretSize: 20})
	if err != nil {
		return nil, nil, err
	}
	img, err := key.Image(240, 240)
	if err != nil {
		return nil, nil, err
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return nil, nil, err
	}
	sealed, err := seal.Seal(p.mfaKey, []byte(key.Secret()), totpAAD(u))
	if err != nil {
		return nil, nil, err
	}
	return &TOTPEnrolment{Secret: key.Secret(), URL: key.URL(),
		QR: "data:image/png;base64," + base64.StdEncoding.EncodeToString(buf.Bytes())}, sealed, nil
}

// totpStep finds the 30-second step (now, one before or one after) whose
// code is code, comparing in constant time; 0 when none matches.
func (p *People) totpStep(u *User, sealed []byte, code string, now time.Time) (int64, error) {
	secret, err := seal.Open(p.mfaKey, sealed, totpAAD(u))
	if err != nil {
		return 0, err
	}
	code = strings.TrimSpace(code)
	if len(code) != 6 {
		return 0, nil
	}
	var found int64
	for _, d := range []int64{-1, 0, 1} {
		at := now.Add(time.Duration(d) * 30 * time.Second)
		want, err := totp.GenerateCodeCustom(string(secret), at, totpOpts)
		if err != nil {
			return 0, err
		}
		if subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 {
			found = at.Unix() / 30
		}
	}
	return found, nil
}

const recoveryAlphabet = "abcdefghjkmnpqrstuvwxyz23456789" // no 0/o, 1/l/i

// newRecoveryCodes makes RecoveryCodeCount codes (xxxxx-xxxxx, ~49 bits
// each) and their hashes.
func (p *People) newRecoveryCodes(u *User) ([]string, [][]byte) {
	codes := make([]string, RecoveryCodeCount)
	hashes := make([][]byte, RecoveryCodeCount)
	for i := range codes {
		raw := randomFrom(recoveryAlphabet, 10)
		codes[i] = raw[:5] + "-" + raw[5:]
		hashes[i] = p.recoveryHash(u, codes[i])
	}
	return codes, hashes
}

// recoveryHash is the keyed hash a recovery code is stored under; the code
// is read without spaces, dashes or case.
func (p *People) recoveryHash(u *User, code string) []byte {
	c := strings.ToLower(strings.NewReplacer("-", "", " ", "").Replace(code))
	m := hmac.New(sha256.New, p.pepper)
	m.Write([]byte("recovery|" + u.TenantID + "|" + u.ID + "|" + c))
	return m.Sum(nil)
}

// randomFrom draws n characters uniformly from alphabet with crypto/rand.
func randomFrom(alphabet string, n int) string {
	b := make([]byte, n)
	max := big.NewInt(int64(len(alphabet)))
	for i := range b {
		v, err := rand.Int(rand.Reader, max)
		if err != nil {
			panic("accounts: crypto/rand failed: " + err.Error())
		}
		b[i] = alphabet[v.Int64()]
	}
	return string(b)
}

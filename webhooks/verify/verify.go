// Package verify checks Standard Webhooks 1.0 signatures on webhooks
// received from PerfectPay (or any Standard Webhooks sender). It depends on
// the standard library only, so receivers can import it alone.
//
//	v, err := verify.New(os.Getenv("WEBHOOK_SECRET")) // "whsec_…"
//	…
//	body, err := v.Request(r, 1<<20)
//	if err != nil { http.Error(w, "bad signature", 400); return }
//	// Deduplicate on r.Header.Get("webhook-id"): delivery is at least once.
//
// A message verifies when its webhook-timestamp is within Tolerance of now
// and any "v1," signature in webhook-signature (there may be several,
// space separated) is the HMAC-SHA256, under any of the secrets, of
// "{webhook-id}.{webhook-timestamp}.{body}". Signatures are compared in
// constant time.
package verify

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Header names (HTTP header names are case-insensitive).
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// DefaultTolerance is how far a timestamp may be from now (either way).
const DefaultTolerance = 5 * time.Minute

// Errors; every failure wraps one of them.
var (
	ErrMissingHeaders      = errors.New("verify: missing webhook-id, webhook-timestamp or webhook-signature")
	ErrInvalidTimestamp    = errors.New("verify: webhook-timestamp is not a unix time in seconds")
	ErrTooOld              = errors.New("verify: message timestamp too old")
	ErrTooNew              = errors.New("verify: message timestamp too far in the future")
	ErrNoMatchingSignature = errors.New("verify: no matching signature")
	ErrBodyTooLarge        = errors.New("verify: body too large")
)

// Verifier verifies messages against one or more secrets (several while a
// receiver rolls over to a rotated secret).
type Verifier struct {
	keys [][]byte
	// Tolerance is the accepted clock difference; DefaultTolerance if 0.
	Tolerance time.Duration
	// Now is the clock; time.Now if nil.
	Now func() time.Time
}

// New returns a verifier for secrets in the "whsec_<base64>" form (the
// prefix is optional).
func New(secrets ...string) (*Verifier, error) {
	if len(secrets) == 0 {
		return nil, errors.New("verify: at least one secret is required")
	}
	v := &Verifier{}
	for i, s := range secrets {
		k, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(strings.TrimSpace(s), "whsec_"))
		if err != nil || len(k) == 0 {
			return nil, fmt.Errorf("verify: secret %d is not whsec_ followed by base64", i+1)
		}
		v.keys = append(v.keys, k)
	}
	return v, nil
}

// NewRaw returns a verifier for raw HMAC keys.
func NewRaw(keys ...[]byte) *Verifier {
	v := &Verifier{}
	for _, k := range keys {
		v.keys = append(v.keys, append([]byte(nil), k...))
	}
	return v
}

// Verify checks body against the headers.
func (v *Verifier) Verify(body []byte, h http.Header) error {
	id, ts, sig := h.Get(HeaderID), h.Get(HeaderTimestamp), h.Get(HeaderSignature)
	if id == "" || ts == "" || sig == "" {
		return ErrMissingHeaders
	}
	sec, err := strconv.ParseInt(strings.TrimSpace(ts), 10, 64)
	if err != nil {
		return ErrInvalidTimestamp
	}
	now := time.Now
	if v.Now != nil {
		now = v.Now
	}
	tol := v.Tolerance
	if tol <= 0 {
		tol = DefaultTolerance
	}
	nowSec := now().Unix()
	if nowSec-sec > int64(tol/time.Second) {
		return ErrTooOld
	}
	if sec-nowSec > int64(tol/time.Second) {
		return ErrTooNew
	}
	var given [][]byte
	for _, part := range strings.Fields(sig) {
		ver, b64, ok := strings.Cut(part, ",")
		if !ok || ver != "v1" {
			continue
		}
		raw, err := base64.StdEncoding.DecodeString(b64)
		if err != nil || len(raw) != sha256.Size {
			continue
		}
		given = append(given, raw)
	}
	match := false
	for _, k := range v.keys {
		m := hmac.New(sha256.New, k)
		m.Write([]byte(id))
		m.Write([]byte{'.'})
		m.Write([]byte(strings.TrimSpace(ts)))
		m.Write([]byte{'.'})
		m.Write(body)
		want := m.Sum(nil)
		for _, g := range given {
			// Constant time, and no early exit, so timing tells nothing
			// about which signature or key matched.
			if hmac.Equal(want, g) {
				match = true
			}
		}
	}
	if !match {
		return ErrNoMatchingSignature
	}
	return nil
}

// Request reads r's body (at most maxBytes; 1 MiB if 0) and verifies it.
// It returns the body for decoding.
func (v *Verifier) Request(r *http.Request, maxBytes int64) ([]byte, error) {
	if maxBytes <= 0 {
		maxBytes = 1 << 20
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBytes+1))
	if err != nil {
		return nil, err
	}
	if int64(len(body)) > maxBytes {
		return nil, ErrBodyTooLarge
	}
	if err := v.Verify(body, r.Header); err != nil {
		return nil, err
	}
	return body, nil
}

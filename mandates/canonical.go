package mandates

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"
)

// Signer signs a mandate's canonical JSON as a compact JWS with the
// issuer's current signing key, verifiable offline against the JWKS. The
// issuer (authz) implements it; the mandate API serves the result at
// GET /v1/mandates/{id}/jws.
type Signer interface {
	SignMandate(ctx context.Context, payload []byte) (compactJWS string, err error)
}

// signedTerms is what a signed mandate states: who may spend what for whom,
// and nothing that changes over its life (status and counters are left
// out, so a signature stays true until the mandate is revoked or expires).
type signedTerms struct {
	Type        string    `json:"type"`
	ID          string    `json:"id"`
	Account     string    `json:"account"`
	Payer       string    `json:"payer"`
	Agent       string    `json:"agent"`
	ParentID    string    `json:"parent_id,omitempty"`
	Depth       int       `json:"depth"`
	Description string    `json:"description,omitempty"`
	Created     time.Time `json:"created"`
	Limits
}

// Canonical returns the mandate's terms as canonical JSON (RFC 8785, JSON
// Canonicalization Scheme): object members sorted by their UTF-16 code
// units, no insignificant white space, strings escaped minimally, integers
// in plain decimal. Equal terms always give identical bytes, so any party
// can re-derive the bytes a signature covers.
func (m *Mandate) Canonical() ([]byte, error) {
	l := m.Limits.Clone()
	l.Normalize()
	l.Currency = strings.ToLower(l.Currency) // as every object on the wire writes it
	doc := signedTerms{
		Type: AuthorizationDetailsType, ID: m.ID, Account: m.TenantID, Payer: m.Payer, Agent: m.Agent,
		ParentID: m.ParentID, Depth: m.Depth, Description: m.Description,
		Created: m.CreatedAt.UTC().Truncate(time.Microsecond), Limits: l,
	}
	raw, err := json.Marshal(doc)
	if err != nil {
		return nil, err
	}
	return CanonicalJSON(raw)
}

// CanonicalJSON re-encodes a JSON document canonically (RFC 8785). Numbers
// must be integers of magnitude at most 2^53 (money here is always integer
// minor units); other numbers are refused rather than rounded.
func CanonicalJSON(raw []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, fmt.Errorf("canonical json: trailing data")
	}
	var buf bytes.Buffer
	if err := writeCanonical(&buf, v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func writeCanonical(b *bytes.Buffer, v any) error {
	switch x := v.(type) {
	case nil:
		b.WriteString("null")
	case bool:
		b.WriteString(strconv.FormatBool(x))
	case json.Number:
		n, err := strconv.ParseInt(string(x), 10, 64)
		if err != nil || n > 1<<53 || n < -(1<<53) {
			return fmt.Errorf("canonical json: %s is not an exact integer", x)
		}
		b.WriteString(strconv.FormatInt(n, 10))
	case string:
		writeCanonicalString(b, x)
	case []any:
		b.WriteByte('[')
		for i, e := range x {
			if i > 0 {
				b.WriteByte(',')
			}
			if err := writeCanonical(b, e); err != nil {
				return err
			}
		}
		b.WriteByte(']')
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.SortFunc(keys, func(a, b string) int {
			return slices.Compare(utf16.Encode([]rune(a)), utf16.Encode([]rune(b)))
		})
		b.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				b.WriteByte(',')
			}
			writeCanonicalString(b, k)
			b.WriteByte(':')
			if err := writeCanonical(b, x[k]); err != nil {
				return err
			}
		}
		b.WriteByte('}')
	default:
		return fmt.Errorf("canonical json: unexpected %T", v)
	}
	return nil
}

// writeCanonicalString escapes as RFC 8785 §3.2.2.2 (ECMAScript
// JSON.stringify): quote, backslash and control characters only.
func writeCanonicalString(b *bytes.Buffer, s string) {
	const hex = "0123456789abcdef"
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\b':
			b.WriteString(`\b`)
		case '\f':
			b.WriteString(`\f`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		default:
			if r < 0x20 {
				b.WriteString(`\u00`)
				b.WriteByte(hex[r>>4])
				b.WriteByte(hex[r&0xf])
			} else {
				b.WriteRune(r)
			}
		}
	}
	b.WriteByte('"')
}

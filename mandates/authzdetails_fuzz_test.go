package mandates

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"

	"github.com/perfectpay/perfectpay/internal/apierr"
)

// FuzzParseAuthorizationDetails: the authorization_details parameter comes
// from any client. Parsing never panics; a refusal is always an
// *apierr.Invalid naming a parameter; what is accepted is either a
// reference or valid normalized terms, and prints back to a parameter that
// parses to the same details (normalization is stable).
func FuzzParseAuthorizationDetails(f *testing.F) {
	for _, s := range []string{
		`[{"type":"payment_mandate","mandate_id":"mdt_abc"}]`,
		`[{"type":"payment_mandate","currency":"usd","budget":5000,"max_amount_per_charge":2000,"payment_methods":["tok_x"],` +
			`"allowed_merchants":["Books.Example.com"],"period":"day","period_budget":3000,"valid_until":"2030-01-01T00:00:00Z","description":"books"}]`,
		`[{"type":"payment_mandate","currency":"JPY","budget":1,"payment_methods":["tok_1"],"allowed_categories":["5942"],` +
			`"blocked_categories":["7995"],"allowed_countries":["us"],"valid_from":"2026-01-01T00:00:00+02:00","max_charges":3,"approval_threshold":0}]`,
		`[{"type":"payment_mandate","mandate_id":"mdt_1"},{"type":"payment_mandate","currency":"USD","budget":5}]`,
		`[{"type":"payment_mandate","currency":"USD","budget":-1,"payment_methods":["tok_1"]}]`,
		`[{"type":"payment_mandate","currency":"USD","budget":1e3,"payment_methods":["tok_1"]}]`,
		`[{"type":"payment_mandate","currency":"USD","budget":9007199254740993,"payment_methods":["tok_1"]}]`,
		`[{"type":"payment_mandate","mandate_id":"mdt_1","colour":"red"}]`,
		`[{"type":"payment_mandate","mandate_id":"mdt_1","mandate_id":"mdt_2"}]`,
		`[null]`, `[]`, `{}`, `null`, `[[]]`, `"x"`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		ds, err := ParseAuthorizationDetails(raw)
		if err != nil {
			var inv *apierr.Invalid
			if !errors.As(err, &inv) || inv.Param == "" {
				t.Fatalf("ParseAuthorizationDetails(%q): %T %v, want *apierr.Invalid with a param", raw, err, err)
			}
			return
		}
		if len(ds) == 0 {
			t.Fatalf("ParseAuthorizationDetails(%q) accepted no details", raw)
		}
		for i := range ds {
			d := &ds[i]
			if d.Type != AuthorizationDetailsType {
				t.Fatalf("detail %d of %q has type %q", i, raw, d.Type)
			}
			if d.IsReference() == (d.Limits != nil) {
				t.Fatalf("detail %d of %q is neither a reference nor terms: %+v", i, raw, d)
			}
			if d.Limits != nil {
				if err := d.Limits.Validate(""); err != nil {
					t.Fatalf("detail %d of %q was accepted with invalid terms: %v", i, raw, err)
				}
			}
		}
		again, err := json.Marshal(ds)
		if err != nil {
			t.Fatalf("marshal %+v: %v", ds, err)
		}
		ds2, err := ParseAuthorizationDetails(again)
		if err != nil {
			t.Fatalf("the accepted details of %q print as %s, which is refused: %v", raw, again, err)
		}
		again2, err := json.Marshal(ds2)
		if err != nil || !bytes.Equal(again, again2) {
			t.Fatalf("normalization is not stable: %s then %s (%v)", again, again2, err)
		}
	})
}

// FuzzCanonicalJSON: mandate terms are signed over their RFC 8785 form.
// Canonicalization never panics, its output is valid JSON, and it is a
// fixed point (canonicalizing it again changes nothing), so two parties
// always sign and verify the same bytes.
func FuzzCanonicalJSON(f *testing.F) {
	for _, s := range []string{
		`{"b":2,"a":[1,"x",true,null,{"d":{},"c":[]}]}`,
		`{"unicode":"\u00e9\u2028\ud83d\ude00","esc":"\"\\\/\b\f\n\r\t\u0001"}`,
		`{"big":9007199254740992,"neg":-9007199254740992,"zero":-0}`,
		`{"f":1.5}`, `{"e":1e3}`, `1`, `"s"`, `[]`, `{"a":1}{"b":2}`, `{"a":1,"a":2}`, `{"\ud800":1}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		out, err := CanonicalJSON(raw)
		if err != nil {
			return
		}
		if !json.Valid(out) {
			t.Fatalf("CanonicalJSON(%q) = %q, not valid JSON", raw, out)
		}
		out2, err := CanonicalJSON(out)
		if err != nil {
			t.Fatalf("CanonicalJSON of its own output %q: %v", out, err)
		}
		if !bytes.Equal(out, out2) {
			t.Fatalf("not a fixed point: %q -> %q -> %q", raw, out, out2)
		}
	})
}

package mandates

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"

	"github.com/perfectpay/perfectpay/internal/apierr"
)

// FuzzLimits: a mandate's terms arrive as JSON (POST /v1/mandates, token
// requests, exchanges). Whatever decodes, Normalize and Validate never
// panic, a refusal is an *apierr.Invalid naming the field, and normalized
// valid terms stay the same when normalized again (what is signed and
// stored is what was checked).
func FuzzLimits(f *testing.F) {
	for _, s := range []string{
		`{"currency":"usd","budget":10000,"max_amount_per_charge":5000,"payment_methods":["tok_visa4242"]}`,
		`{"currency":"JPY","budget":1,"payment_methods":["tok_1","tok_1"],"allowed_merchants":["Books.Example.COM.","acct_x"],"period":"week","period_budget":1}`,
		`{"currency":"KWD","budget":999999999999,"payment_methods":["tok_1"],"allowed_categories":["5942","5942"],"blocked_categories":["7995"],"allowed_countries":["us","GB"]}`,
		`{"currency":"USD","budget":5,"payment_methods":["tok_1"],"valid_from":"2030-01-01T00:00:00Z","valid_until":"2029-01-01T00:00:00+14:00"}`,
		`{"currency":"USD","budget":5,"payment_methods":["tok_1"],"max_charges":0,"approval_threshold":-1}`,
		`{"currency":"USD","budget":5,"payment_methods":["tok_1"],"period":"fortnight","period_budget":6}`,
		`{"currency":"","budget":0}`, `{}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		var l Limits
		if json.Unmarshal(raw, &l) != nil {
			return
		}
		l.Normalize()
		err := l.Validate("terms.")
		if err != nil {
			var inv *apierr.Invalid
			if !errors.As(err, &inv) || inv.Param == "" {
				t.Fatalf("Validate(%s): %T %v, want *apierr.Invalid with a param", raw, err, err)
			}
			return
		}
		again := l.Clone()
		again.Normalize()
		if !reflect.DeepEqual(l, again) {
			t.Fatalf("normalizing valid terms again changed them: %+v -> %+v", l, again)
		}
		if err := again.Validate(""); err != nil {
			t.Fatalf("valid terms no longer valid after a second normalization: %v", err)
		}
	})
}

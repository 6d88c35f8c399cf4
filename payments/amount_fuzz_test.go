package payments

import (
	"strings"
	"testing"

	"github.com/perfectpay/perfectpay/internal/money"
)

// FuzzNormalizeCurrency: the currency of a charge or refund comes from the
// request. A code is accepted only when it is a known ISO 4217 code in any
// case, comes back in lower case, and normalizing it again is a no-op.
func FuzzNormalizeCurrency(f *testing.F) {
	for _, c := range []string{"usd", "USD", "Usd", "jpy", "xts", "", "us", "usdd", "u\u017fd", "ＵＳＤ", "\x00sd"} {
		f.Add(c)
	}
	f.Fuzz(func(t *testing.T, c string) {
		n, err := NormalizeCurrency(c)
		if err != nil {
			return
		}
		if len(n) != 3 || strings.ToLower(n) != n || !money.Valid(strings.ToUpper(n)) || !strings.EqualFold(n, c) || len(c) != 3 {
			t.Fatalf("NormalizeCurrency(%q) = %q", c, n)
		}
		if again, err := NormalizeCurrency(n); err != nil || again != n {
			t.Fatalf("NormalizeCurrency(%q) = %q, then %q, %v", c, n, again, err)
		}
	})
}

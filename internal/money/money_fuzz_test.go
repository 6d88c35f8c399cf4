package money

import (
	"strconv"
	"strings"
	"testing"
)

// FuzzCurrency: currency codes come from requests and mandate terms.
// Exponent and Valid agree, only upper-case three-letter codes are known,
// and Format never panics and writes the amount's digits and the code
// (for a known exponent, with exactly that many fraction digits).
func FuzzCurrency(f *testing.F) {
	for _, c := range []string{"USD", "usd", "JPY", "KWD", "BHD", "XTS", "", "US", "USDD", "EUR\x00", "ÉUR"} {
		f.Add(c, int64(12345))
	}
	f.Add("USD", int64(-1))
	f.Add("USD", int64(-9223372036854775808))
	f.Add("KWD", int64(9223372036854775807))
	f.Fuzz(func(t *testing.T, cur string, amount int64) {
		exp, ok := Exponent(cur)
		if ok != Valid(cur) {
			t.Fatalf("Exponent(%q) ok=%v but Valid=%v", cur, ok, Valid(cur))
		}
		if ok && (len(cur) != 3 || strings.ToUpper(cur) != cur || exp < 0 || exp > 4) {
			t.Fatalf("%q is known with exponent %d", cur, exp)
		}
		s := Format(amount, cur)
		num, code, found := strings.Cut(s, " ")
		if !found || !strings.HasPrefix(code, cur) {
			t.Fatalf("Format(%d, %q) = %q", amount, cur, s)
		}
		digits := strings.TrimPrefix(num, "-")
		if (amount < 0) != strings.HasPrefix(num, "-") {
			t.Fatalf("Format(%d, %q) = %q: sign", amount, cur, s)
		}
		if ok && exp > 0 {
			whole, frac, dot := strings.Cut(digits, ".")
			if !dot || len(frac) != exp {
				t.Fatalf("Format(%d, %q) = %q: want %d fraction digits", amount, cur, s, exp)
			}
			digits = whole + frac
		}
		u := strconv.FormatUint(absU(amount), 10)
		if strings.TrimLeft(digits, "0") != strings.TrimLeft(u, "0") {
			t.Fatalf("Format(%d, %q) = %q: digits %q", amount, cur, s, digits)
		}
	})
}

func absU(n int64) uint64 {
	if n < 0 {
		return uint64(-n)
	}
	return uint64(n)
}

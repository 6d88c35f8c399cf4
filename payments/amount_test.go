package payments

import (
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/internal/money"
)

func TestParseAmount(t *testing.T) {
	for in, want := range map[string]int64{"1": 1, "0": 0, "1050": 1050, "999999999999": money.MaxAmount} {
		got, err := ParseAmount(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got)
	}
	for _, in := range []string{"", "-1", "+1", "1.0", "10.5", "1e3", `"100"`, "01", " 1", "null", "0x10"} {
		_, err := ParseAmount(in)
		require.ErrorIs(t, err, ErrAmountSyntax, in)
	}
	for _, in := range []string{"1000000000000", "99999999999999999999999"} {
		_, err := ParseAmount(in)
		require.ErrorIs(t, err, ErrAmountRange, in)
	}
}

func TestParseDecimal(t *testing.T) {
	for _, tc := range []struct {
		in, cur string
		want    int64
	}{{"12.34", "USD", 1234}, {"12", "usd", 1200}, {"12.3", "EUR", 1230}, {"500", "JPY", 500}, {"1.5", "BHD", 1500}, {"0.001", "KWD", 1}} {
		got, err := ParseDecimal(tc.in, tc.cur)
		require.NoError(t, err, tc.in)
		assert.Equal(t, tc.want, got, tc.in)
	}
	for _, tc := range [][2]string{{"1.234", "USD"}, {"1.5", "JPY"}, {"1.", "USD"}, {".5", "USD"}, {"-1", "USD"}, {"1", "XYZ"}, {"1e2", "USD"}} {
		_, err := ParseDecimal(tc[0], tc[1])
		require.Error(t, err, tc)
	}
	_, err := ParseDecimal("10000000000", "USD")
	require.ErrorIs(t, err, ErrAmountRange)
}

func TestNormalizeCurrency(t *testing.T) {
	c, err := NormalizeCurrency("UsD")
	require.NoError(t, err)
	assert.Equal(t, "usd", c)
	_, err = NormalizeCurrency("xts")
	require.ErrorIs(t, err, ErrUnknownCurrency)
}

// FuzzParseAmount: a parsed amount is in range and prints back to exactly
// its input (so no float, sign or padding slipped through); a decimal
// amount round-trips through the currency's exponent.
func FuzzParseAmount(f *testing.F) {
	for _, s := range []string{"1", "0", "1050", "999999999999", "1000000000000", "-1", "1.5", "1e3", `"7"`, "007", ""} {
		f.Add(s, "USD")
	}
	f.Add("12.345", "BHD")
	f.Add("500", "JPY")
	f.Fuzz(func(t *testing.T, s, cur string) {
		if n, err := ParseAmount(s); err == nil {
			if n < 0 || n > money.MaxAmount || strconv.FormatInt(n, 10) != s {
				t.Fatalf("ParseAmount(%q) = %d", s, n)
			}
		}
		n, err := ParseDecimal(s, cur)
		if err != nil {
			return
		}
		exp, _ := money.Exponent(strings.ToUpper(cur))
		if n < 0 || n > money.MaxAmount {
			t.Fatalf("ParseDecimal(%q, %s) = %d out of range", s, cur, n)
		}
		whole, frac, _ := strings.Cut(s, ".")
		want := strings.TrimLeft(whole, "0") + frac + strings.Repeat("0", exp-len(frac))
		want = strings.TrimLeft(want, "0")
		if want == "" {
			want = "0"
		}
		if strconv.FormatInt(n, 10) != want {
			t.Fatalf("ParseDecimal(%q, %s) = %d, want %s", s, cur, n, want)
		}
	})
}

package payments

import (
	"errors"
	"strings"

	"github.com/perfectpay/perfectpay/internal/money"
)

// Amount errors.
var (
	ErrAmountSyntax    = errors.New("payments: amount must be a positive integer number of minor units (no sign, fraction, exponent or quotes)")
	ErrAmountRange     = errors.New("payments: amount is out of range")
	ErrUnknownCurrency = errors.New("payments: unknown currency")
)

// ParseAmount parses the JSON literal of an amount in minor units: a
// non-negative integer written with plain digits and no leading zeros.
// Floats ("10.5", "1e3"), strings, signs and values above
// money.MaxAmount are refused, so no amount is ever rounded.
func ParseAmount(raw string) (int64, error) {
	if raw == "" || len(raw) > 15 {
		if len(raw) > 15 && allDigits(raw) {
			return 0, ErrAmountRange
		}
		return 0, ErrAmountSyntax
	}
	if !allDigits(raw) || (len(raw) > 1 && raw[0] == '0') {
		return 0, ErrAmountSyntax
	}
	var n int64
	for i := 0; i < len(raw); i++ {
		n = n*10 + int64(raw[i]-'0')
	}
	if n > money.MaxAmount {
		return 0, ErrAmountRange
	}
	return n, nil
}

// ParseDecimal converts an amount written in major units ("12.34") into
// minor units of currency, using its ISO 4217 exponent: "12.34" USD is
// 1234, "500" JPY is 500, "1.5" BHD is 1500. More fraction digits than the
// currency has are refused rather than rounded.
func ParseDecimal(s, currency string) (int64, error) {
	exp, ok := money.Exponent(strings.ToUpper(currency))
	if !ok {
		return 0, ErrUnknownCurrency
	}
	whole, frac, hasDot := strings.Cut(s, ".")
	if whole == "" || !allDigits(whole) || (hasDot && (frac == "" || !allDigits(frac))) {
		return 0, ErrAmountSyntax
	}
	if len(frac) > exp {
		return 0, ErrAmountSyntax
	}
	whole = strings.TrimLeft(whole, "0")
	if len(whole) > 15 {
		return 0, ErrAmountRange
	}
	var n int64
	for i := 0; i < len(whole); i++ {
		n = n*10 + int64(whole[i]-'0')
	}
	for i := 0; i < exp; i++ {
		n *= 10
		if i < len(frac) {
			n += int64(frac[i] - '0')
		}
		if n > money.MaxAmount {
			return 0, ErrAmountRange
		}
	}
	if n > money.MaxAmount {
		return 0, ErrAmountRange
	}
	return n, nil
}

// NormalizeCurrency checks that c is a known ISO 4217 code (any case) and
// returns it in lower case, as the API shows currencies.
func NormalizeCurrency(c string) (string, error) {
	u := strings.ToUpper(c)
	// len(c) too: ToUpper maps some non-ASCII letters to ASCII ("uſd" is
	// "USD"), and only the three ASCII letters of the code are its name.
	if len(c) != 3 || len(u) != 3 || !money.Valid(u) {
		return "", ErrUnknownCurrency
	}
	return strings.ToLower(u), nil
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

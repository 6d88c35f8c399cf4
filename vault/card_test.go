package vault

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/internal/luhn"
)

func TestParseCardNumber(t *testing.T) {
	for _, tc := range []struct {
		in, number, brand string
		err               error
	}{
		{"4242424242424242", "4242424242424242", BrandVisa, nil},
		{"4242 4242 4242 4242", "4242424242424242", BrandVisa, nil},
		{"4242-4242-4242-4242", "4242424242424242", BrandVisa, nil},
		{"4222222222222", "4222222222222", BrandVisa, nil},
		{"5555555555554444", "5555555555554444", BrandMastercard, nil},
		{"2223003122003222", "2223003122003222", BrandMastercard, nil},
		{"378282246310005", "378282246310005", BrandAmex, nil},
		{"6011111111111117", "6011111111111117", BrandDiscover, nil},
		{"3566002020360505", "3566002020360505", BrandJCB, nil},
		{"36227206271667", "36227206271667", BrandDiners, nil},
		{"6200000000000005", "6200000000000005", BrandUnionPay, nil},
		{"4242424242424241", "", "", ErrInvalidNumber},  // Luhn
		{"37828224631000", "", "", ErrInvalidNumber},    // amex is 15 digits
		{"555555555555444", "", "", ErrInvalidNumber},   // mastercard is 16
		{" 4242424242424242", "", "", ErrInvalidNumber}, // leading separator
		{"4242424242424242 ", "", "", ErrInvalidNumber}, // trailing separator
		{"4242a42424242424", "", "", ErrInvalidNumber},  // letters
		{"１２３", "", "", ErrInvalidNumber},               // non-ASCII digits
		{"", "", "", ErrInvalidNumber},
		{"1234567812345670", "", "", ErrUnknownBrand},
		{strings.Repeat("4", 40), "", "", ErrInvalidNumber},
	} {
		n, b, err := ParseCardNumber(tc.in)
		if tc.err != nil {
			require.ErrorIs(t, err, tc.err, tc.in)
			assert.NotContains(t, err.Error(), "42", "errors never hold the number")
			continue
		}
		require.NoError(t, err, tc.in)
		assert.Equal(t, tc.number, n)
		assert.Equal(t, tc.brand, b, tc.in)
	}
}

func TestExpiryAndCVC(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	y, err := CheckExpiry(11, 2026, now)
	require.NoError(t, err, "valid through the end of its month")
	assert.Equal(t, 2026, y)
	y, err = CheckExpiry(1, 30, now)
	require.NoError(t, err)
	assert.Equal(t, 2030, y)
	_, err = CheckExpiry(10, 2026, now)
	require.ErrorIs(t, err, ErrExpiredCard)
	_, err = CheckExpiry(0, 2030, now)
	require.ErrorIs(t, err, ErrInvalidExpiry)
	_, err = CheckExpiry(12, 2099, now)
	require.ErrorIs(t, err, ErrInvalidExpiry)

	require.NoError(t, CheckCVC("123", BrandVisa))
	require.NoError(t, CheckCVC("1234", BrandAmex))
	require.ErrorIs(t, CheckCVC("1234", BrandVisa), ErrInvalidCVC)
	require.ErrorIs(t, CheckCVC("123", BrandAmex), ErrInvalidCVC)
	require.ErrorIs(t, CheckCVC("12a", BrandVisa), ErrInvalidCVC)
}

// FuzzParseCardNumber: whatever the input, a success is a Luhn-valid
// string of 12–19 ASCII digits of a known brand and length, made of the
// input's digits; a failure is one of the two sentinel errors.
func FuzzParseCardNumber(f *testing.F) {
	for _, s := range []string{"4242424242424242", "4242 4242 4242 4242", "378282246310005", "6011-1111-1111-1117",
		"36227206271667", "4242424242424241", "", "-", "4 2", "٤٢٤٢", "4242424242424242424242", "0000000000000"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, brand, err := ParseCardNumber(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidNumber) && !errors.Is(err, ErrUnknownBrand) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		if len(n) < 12 || len(n) > 19 || !luhn.Valid(n) || brand == "" || DetectBrand(n) != brand || !validLength(n, brand) {
			t.Fatalf("accepted a bad number %q (%s)", n, brand)
		}
		digits := strings.Map(func(r rune) rune {
			if r >= '0' && r <= '9' {
				return r
			}
			return -1
		}, s)
		if digits != n {
			t.Fatalf("number %q is not the input's digits %q", n, digits)
		}
	})
}

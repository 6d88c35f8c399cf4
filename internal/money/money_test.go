package money

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestFormat(t *testing.T) {
	for _, tc := range []struct {
		amount   int64
		currency string
		want     string
	}{
		{6000, "USD", "60.00 USD"},
		{5, "USD", "0.05 USD"},
		{0, "EUR", "0.00 EUR"},
		{-1050, "EUR", "-10.50 EUR"},
		{500, "JPY", "500 JPY"},
		{1234, "KWD", "1.234 KWD"},
		{MaxAmount, "USD", "9999999999.99 USD"},
		{42, "XXX", "42 XXX"},
	} {
		assert.Equal(t, tc.want, Format(tc.amount, tc.currency))
	}
}

func TestExponent(t *testing.T) {
	e, ok := Exponent("USD")
	assert.True(t, ok)
	assert.Equal(t, 2, e)
	e, ok = Exponent("JPY")
	assert.True(t, ok)
	assert.Equal(t, 0, e)
	_, ok = Exponent("usd")
	assert.False(t, ok, "codes are upper case")
	assert.False(t, Valid("ABC"))
}

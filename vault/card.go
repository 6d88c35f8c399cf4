package vault

import (
	"errors"
	"strings"
	"time"

	"github.com/perfectpay/perfectpay/internal/luhn"
)

// Card brands the vault recognises.
const (
	BrandVisa       = "visa"
	BrandMastercard = "mastercard"
	BrandAmex       = "amex"
	BrandDiscover   = "discover"
	BrandJCB        = "jcb"
	BrandDiners     = "diners"
	BrandUnionPay   = "unionpay"
)

// Validation errors. Their messages never contain the card data.
var (
	ErrInvalidNumber = errors.New("vault: the card number is not a valid card number")
	ErrUnknownBrand  = errors.New("vault: the card number belongs to no supported brand")
	ErrInvalidExpiry = errors.New("vault: the expiry month or year is invalid")
	ErrExpiredCard   = errors.New("vault: the card has expired")
	ErrInvalidCVC    = errors.New("vault: the security code is invalid")
)

// brandRule is one IIN range of a brand and the PAN lengths it issues.
type brandRule struct {
	brand   string
	lo, hi  int // inclusive range over the first `digits` digits
	digits  int
	lengths []int
}

// brandRules are checked in order; the first match wins. Ranges follow the
// networks' published IIN tables (ISO/IEC 7812 prefixes).
var brandRules = []brandRule{
	{BrandAmex, 34, 34, 2, []int{15}},
	{BrandAmex, 37, 37, 2, []int{15}},
	{BrandDiners, 300, 305, 3, []int{14, 15, 16, 17, 18, 19}},
	{BrandDiners, 36, 36, 2, []int{14, 15, 16, 17, 18, 19}},
	{BrandDiners, 38, 39, 2, []int{14, 15, 16, 17, 18, 19}},
	{BrandDiscover, 6011, 6011, 4, []int{16, 17, 18, 19}},
	{BrandDiscover, 644, 649, 3, []int{16, 17, 18, 19}},
	{BrandDiscover, 65, 65, 2, []int{16, 17, 18, 19}},
	{BrandJCB, 3528, 3589, 4, []int{16, 17, 18, 19}},
	{BrandMastercard, 51, 55, 2, []int{16}},
	{BrandMastercard, 2221, 2720, 4, []int{16}},
	{BrandUnionPay, 62, 62, 2, []int{16, 17, 18, 19}},
	{BrandUnionPay, 81, 81, 2, []int{16, 17, 18, 19}},
	{BrandVisa, 4, 4, 1, []int{13, 16, 19}},
}

// ParseCardNumber normalises a card number (spaces and dashes between
// digits are dropped), checks its characters, length and Luhn checksum and
// detects its brand. It returns the bare digits and the brand.
func ParseCardNumber(s string) (number, brand string, err error) {
	if len(s) > 32 {
		return "", "", ErrInvalidNumber
	}
	var b strings.Builder
	b.Grow(19)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			b.WriteByte(c)
		case (c == ' ' || c == '-') && i > 0 && i < len(s)-1:
			// a separator between digit groups
		default:
			return "", "", ErrInvalidNumber
		}
	}
	number = b.String()
	if len(number) < 12 || len(number) > 19 || !luhn.Valid(number) {
		return "", "", ErrInvalidNumber
	}
	brand = DetectBrand(number)
	if brand == "" {
		return "", "", ErrUnknownBrand
	}
	if !validLength(number, brand) {
		return "", "", ErrInvalidNumber
	}
	return number, brand, nil
}

// DetectBrand returns the brand of a string of digits by its prefix, or ""
// when none matches. It does not check length or checksum.
func DetectBrand(digits string) string {
	for _, r := range brandRules {
		if r.match(digits) {
			return r.brand
		}
	}
	return ""
}

func (r brandRule) match(digits string) bool {
	if len(digits) < r.digits {
		return false
	}
	n := 0
	for i := 0; i < r.digits; i++ {
		c := digits[i]
		if c < '0' || c > '9' {
			return false
		}
		n = n*10 + int(c-'0')
	}
	return n >= r.lo && n <= r.hi
}

func validLength(number, brand string) bool {
	for _, r := range brandRules {
		if r.brand == brand && r.match(number) {
			for _, l := range r.lengths {
				if len(number) == l {
					return true
				}
			}
			return false
		}
	}
	return false
}

// CheckExpiry validates month (1–12) and year (four digits, or two digits
// meaning 20YY) and refuses a card whose expiry month is over at now (a
// card is valid through the last day of its month, in UTC). It returns the
// four-digit year.
func CheckExpiry(month, year int, now time.Time) (int, error) {
	if year >= 0 && year < 100 {
		year += 2000
	}
	if month < 1 || month > 12 || year < 2000 || year > 2100 {
		return 0, ErrInvalidExpiry
	}
	now = now.UTC()
	if year < now.Year() || (year == now.Year() && month < int(now.Month())) {
		return 0, ErrExpiredCard
	}
	if year > now.Year()+50 {
		return 0, ErrInvalidExpiry
	}
	return year, nil
}

// CheckCVC requires 4 digits for American Express and 3 for every other brand.
func CheckCVC(cvc, brand string) error {
	want := 3
	if brand == BrandAmex {
		want = 4
	}
	if len(cvc) != want {
		return ErrInvalidCVC
	}
	for i := 0; i < len(cvc); i++ {
		if cvc[i] < '0' || cvc[i] > '9' {
			return ErrInvalidCVC
		}
	}
	return nil
}

package mandates

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/internal/apierr"
)

func ptr[T any](v T) *T { return &v }

func validLimits() Limits {
	return Limits{
		Currency: "USD", Budget: 10_000, MaxAmountPerCharge: ptr[int64](5_000),
		PaymentMethods: []string{"tok_visa4242"},
	}
}

func TestValidate(t *testing.T) {
	from := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name  string
		edit  func(l *Limits)
		param string
		code  apierr.Code
	}{
		{"valid", func(l *Limits) {}, "", ""},
		{"full", func(l *Limits) {
			l.Period, l.PeriodBudget, l.MaxCharges = "week", ptr[int64](2000), ptr[int64](10)
			l.AllowedMerchants = []string{"acct_123", "Books.Example.com."}
			l.AllowedCategories, l.BlockedCategories = []string{"5942"}, []string{"7995"}
			l.AllowedCountries = []string{"us", "DE"}
			l.ValidFrom, l.ValidUntil = &from, ptr(from.Add(time.Hour))
			l.ApprovalThreshold = ptr[int64](0)
		}, "", ""},
		{"currency missing", func(l *Limits) { l.Currency = "" }, "currency", CodeMissing},
		{"currency unknown", func(l *Limits) { l.Currency = "ABC" }, "currency", CodeInvalid},
		{"budget missing", func(l *Limits) { l.Budget = 0 }, "budget", CodeMissing},
		{"budget negative", func(l *Limits) { l.Budget = -5 }, "budget", CodeInvalid},
		{"budget too large", func(l *Limits) { l.Budget = 1 << 60 }, "budget", CodeInvalid},
		{"cap zero", func(l *Limits) { l.MaxAmountPerCharge = ptr[int64](0) }, "max_amount_per_charge", CodeInvalid},
		{"cap above budget", func(l *Limits) { l.MaxAmountPerCharge = ptr[int64](10_001) }, "max_amount_per_charge", CodeInvalid},
		{"period without budget", func(l *Limits) { l.Period = "day" }, "period_budget", CodeMissing},
		{"period budget without period", func(l *Limits) { l.PeriodBudget = ptr[int64](5) }, "period", CodeMissing},
		{"period unknown", func(l *Limits) { l.Period, l.PeriodBudget = "year", ptr[int64](5) }, "period", CodeInvalid},
		{"period budget above budget", func(l *Limits) { l.Period, l.PeriodBudget = "day", ptr[int64](20_000) }, "period_budget", CodeInvalid},
		{"max charges zero", func(l *Limits) { l.MaxCharges = ptr[int64](0) }, "max_charges", CodeInvalid},
		{"no payment methods", func(l *Limits) { l.PaymentMethods = nil }, "payment_methods", CodeMissing},
		{"bad payment method", func(l *Limits) { l.PaymentMethods = []string{"4242424242424242"} }, "payment_methods", CodeInvalid},
		{"bad merchant", func(l *Limits) { l.AllowedMerchants = []string{"https://shop.example.com/"} }, "allowed_merchants", CodeInvalid},
		{"ip is no domain", func(l *Limits) { l.AllowedMerchants = []string{"10.0.0.1"} }, "allowed_merchants", CodeInvalid},
		{"single label", func(l *Limits) { l.AllowedMerchants = []string{"localhost"} }, "allowed_merchants", CodeInvalid},
		{"empty list", func(l *Limits) { l.AllowedMerchants = []string{} }, "allowed_merchants", CodeInvalid},
		{"bad mcc", func(l *Limits) { l.AllowedCategories = []string{"594"} }, "allowed_categories", CodeInvalid},
		{"bad blocked mcc", func(l *Limits) { l.BlockedCategories = []string{"59a2"} }, "blocked_categories", CodeInvalid},
		{"allowed and blocked", func(l *Limits) { l.AllowedCategories, l.BlockedCategories = []string{"5942"}, []string{"5942"} }, "blocked_categories", CodeInvalid},
		{"bad country", func(l *Limits) { l.AllowedCountries = []string{"UK"} }, "allowed_countries", CodeInvalid},
		{"window inverted", func(l *Limits) { l.ValidFrom, l.ValidUntil = ptr(from.Add(time.Hour)), &from }, "valid_until", CodeInvalid},
		{"negative threshold", func(l *Limits) { l.ApprovalThreshold = ptr[int64](-1) }, "approval_threshold", CodeInvalid},
		{"too many", func(l *Limits) {
			for i := range MaxListLen + 1 {
				l.AllowedCategories = append(l.AllowedCategories, rune4(i))
			}
		}, "allowed_categories", CodeInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := validLimits()
			tc.edit(&l)
			l.Normalize()
			err := l.Validate("")
			if tc.param == "" {
				require.NoError(t, err)
				return
			}
			var fe *apierr.Invalid
			require.True(t, errors.As(err, &fe), "want an *apierr.Invalid, got %v", err)
			assert.Equal(t, tc.param, fe.Param)
			assert.Equal(t, tc.code, fe.Code)
			assert.NotEmpty(t, fe.Message)
		})
	}
}

func rune4(i int) string {
	return string([]byte{'1', byte('0' + i/100%10), byte('0' + i/10%10), byte('0' + i%10)})
}

func TestNormalize(t *testing.T) {
	l := validLimits()
	l.Currency = "usd"
	l.AllowedMerchants = []string{"Shop.Example.COM.", "acct_B", "shop.example.com"}
	l.AllowedCountries = []string{"us", "DE", "US"}
	ts := time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.FixedZone("X", 3600))
	l.ValidFrom = &ts
	l.Normalize()
	assert.Equal(t, "USD", l.Currency)
	assert.Equal(t, []string{"acct_B", "shop.example.com"}, l.AllowedMerchants)
	assert.Equal(t, []string{"DE", "US"}, l.AllowedCountries)
	assert.Equal(t, time.UTC, l.ValidFrom.Location())
	assert.Equal(t, 123456000, l.ValidFrom.Nanosecond())
}

func TestValidateTerms(t *testing.T) {
	m := &Mandate{Limits: validLimits(), Payer: "cus_42", Agent: "agt_1"}
	require.NoError(t, m.ValidateTerms())
	for _, tc := range []struct {
		edit  func(m *Mandate)
		param string
	}{
		{func(m *Mandate) { m.Payer = "" }, "payer"},
		{func(m *Mandate) { m.Payer = "has space" }, "payer"},
		{func(m *Mandate) { m.Agent = "" }, "agent"},
		{func(m *Mandate) { m.Agent = "a\x00b" }, "agent"},
		{func(m *Mandate) { m.Description = string(make([]rune, MaxDescriptionLen+1)) }, "description"},
		{func(m *Mandate) { m.Currency = "" }, "currency"},
	} {
		c := *m.Clone()
		tc.edit(&c)
		var fe *apierr.Invalid
		require.ErrorAs(t, c.ValidateTerms(), &fe)
		assert.Equal(t, tc.param, fe.Param)
	}
}

func TestPeriodStart(t *testing.T) {
	// Wednesday 2026-03-18 15:04 UTC, given in another zone.
	ts := time.Date(2026, 3, 18, 16, 4, 0, 0, time.FixedZone("CET", 3600))
	assert.Equal(t, time.Date(2026, 3, 18, 0, 0, 0, 0, time.UTC), PeriodStart(PeriodDay, ts))
	assert.Equal(t, time.Date(2026, 3, 16, 0, 0, 0, 0, time.UTC), PeriodStart(PeriodWeek, ts), "ISO weeks start on Monday")
	assert.Equal(t, time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), PeriodStart(PeriodMonth, ts))
	sunday := time.Date(2026, 3, 22, 23, 59, 0, 0, time.UTC)
	assert.Equal(t, time.Date(2026, 3, 16, 0, 0, 0, 0, time.UTC), PeriodStart(PeriodWeek, sunday))
	assert.True(t, PeriodStart("", ts).IsZero())
	ps := PeriodStartsAt(ts)
	assert.Equal(t, PeriodStart(PeriodWeek, ts), ps.For(PeriodWeek))

	m := &Mandate{Limits: Limits{Period: PeriodDay}, PeriodSpent: 700, PeriodStart: ptr(PeriodStart(PeriodDay, ts))}
	assert.Equal(t, int64(700), m.PeriodSpentAt(ts))
	assert.Equal(t, int64(0), m.PeriodSpentAt(ts.Add(24*time.Hour)), "a new day starts from zero")
}

func TestClone(t *testing.T) {
	m := &Mandate{Limits: validLimits(), PeriodStart: ptr(time.Now())}
	c := m.Clone()
	c.PaymentMethods[0] = "tok_other"
	*c.MaxAmountPerCharge = 1
	assert.Equal(t, "tok_visa4242", m.PaymentMethods[0])
	assert.Equal(t, int64(5000), *m.MaxAmountPerCharge)
}

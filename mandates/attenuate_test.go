package mandates

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/internal/apierr"
)

var (
	poolTokens     = []string{"tok_a", "tok_b", "tok_c", "tok_d", "tok_e", "tok_f"}
	poolMerchants  = []string{"acct_books", "acct_music", "acct_games", "books.example.com", "music.example.org", "shop.example.net"}
	poolCategories = []string{"5942", "5735", "5815", "5816", "7995", "5411", "5812"}
	poolCountries  = []string{"US", "DE", "FR", "GB", "JP", "CA"}
	periods        = []string{PeriodDay, PeriodWeek, PeriodMonth}
	baseTime       = time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
)

// between returns a uniform value in [lo, hi] (hi >= lo).
func between(r *rand.Rand, lo, hi int64) int64 { return lo + r.Int64N(hi-lo+1) }

func subset(r *rand.Rand, from []string, nonEmpty bool) []string {
	var out []string
	for _, v := range from {
		if r.IntN(2) == 0 {
			out = append(out, v)
		}
	}
	if nonEmpty && len(out) == 0 {
		out = []string{from[r.IntN(len(from))]}
	}
	return out
}

func maybe(r *rand.Rand) bool { return r.IntN(2) == 0 }

// randomParent returns random valid limits.
func randomParent(r *rand.Rand) Limits {
	l := Limits{Currency: []string{"USD", "EUR", "JPY"}[r.IntN(3)], Budget: between(r, 1000, 1_000_000)}
	if maybe(r) {
		l.MaxAmountPerCharge = ptr(between(r, 1, l.Budget))
	}
	if maybe(r) {
		l.Period, l.PeriodBudget = periods[r.IntN(3)], ptr(between(r, 1, l.Budget))
	}
	if maybe(r) {
		l.MaxCharges = ptr(between(r, 1, 1000))
	}
	l.PaymentMethods = subset(r, poolTokens, true)
	if maybe(r) {
		l.AllowedMerchants = subset(r, poolMerchants, true)
	}
	if maybe(r) {
		l.AllowedCategories = subset(r, poolCategories, true)
	}
	if maybe(r) {
		for _, c := range subset(r, poolCategories, false) {
			if !slices.Contains(l.AllowedCategories, c) {
				l.BlockedCategories = append(l.BlockedCategories, c)
			}
		}
	}
	if maybe(r) {
		l.AllowedCountries = subset(r, poolCountries, true)
	}
	if maybe(r) {
		l.ValidFrom = ptr(baseTime.Add(time.Duration(r.IntN(100)) * time.Hour))
	}
	if maybe(r) {
		l.ValidUntil = ptr(baseTime.Add(time.Duration(200+r.IntN(100)) * time.Hour))
	}
	if maybe(r) {
		l.ApprovalThreshold = ptr(between(r, 0, l.Budget))
	}
	l.Normalize()
	return l
}

// randomNarrowing returns random limits inside p.
func randomNarrowing(r *rand.Rand, p Limits) Limits {
	c := Limits{Currency: p.Currency, Budget: between(r, 1, p.Budget)}
	if p.Period != "" && maybe(r) {
		c.Budget = between(r, 1, min(c.Budget, *p.PeriodBudget)) // fits in one parent period
	}
	switch {
	case p.Period != "" && c.Budget > *p.PeriodBudget:
		// A period that contains every parent period, with no larger budget.
		outer := []string{p.Period}
		if p.Period == PeriodDay {
			outer = periods
		}
		c.Period = outer[r.IntN(len(outer))]
		c.PeriodBudget = ptr(between(r, 1, min(*p.PeriodBudget, c.Budget)))
	case maybe(r):
		c.Period, c.PeriodBudget = periods[r.IntN(3)], ptr(between(r, 1, c.Budget))
	}
	switch {
	case p.MaxAmountPerCharge != nil:
		c.MaxAmountPerCharge = ptr(between(r, 1, min(*p.MaxAmountPerCharge, c.Budget)))
	case maybe(r):
		c.MaxAmountPerCharge = ptr(between(r, 1, c.Budget))
	}
	switch {
	case p.MaxCharges != nil:
		c.MaxCharges = ptr(between(r, 1, *p.MaxCharges))
	case maybe(r):
		c.MaxCharges = ptr(between(r, 1, 1000))
	}
	c.PaymentMethods = subset(r, p.PaymentMethods, true)
	narrowSet := func(parent, pool []string) []string {
		if len(parent) > 0 {
			return subset(r, parent, true)
		}
		if len(pool) > 0 && maybe(r) {
			return subset(r, pool, true)
		}
		return nil
	}
	c.AllowedMerchants = narrowSet(p.AllowedMerchants, poolMerchants)
	c.AllowedCategories = narrowSet(p.AllowedCategories, slices.DeleteFunc(slices.Clone(poolCategories), func(s string) bool {
		return slices.Contains(p.BlockedCategories, s)
	}))
	c.AllowedCountries = narrowSet(p.AllowedCountries, poolCountries)
	for _, b := range p.BlockedCategories {
		// Keep the parent's blocks, except (sometimes) those the child's
		// allow-list already excludes.
		if len(c.AllowedCategories) == 0 || maybe(r) {
			c.BlockedCategories = append(c.BlockedCategories, b)
		}
	}
	for _, extra := range subset(r, poolCategories, false) {
		if !slices.Contains(c.AllowedCategories, extra) && !slices.Contains(c.BlockedCategories, extra) {
			c.BlockedCategories = append(c.BlockedCategories, extra)
		}
	}
	if len(c.BlockedCategories) == 0 {
		c.BlockedCategories = nil
	}
	switch {
	case p.ValidFrom != nil:
		c.ValidFrom = ptr(p.ValidFrom.Add(time.Duration(r.IntN(50)) * time.Hour))
	case maybe(r):
		c.ValidFrom = ptr(baseTime.Add(-time.Duration(r.IntN(500)) * time.Hour))
	}
	switch {
	case p.ValidUntil != nil:
		c.ValidUntil = ptr(p.ValidUntil.Add(-time.Duration(r.IntN(50)) * time.Hour))
	case maybe(r):
		c.ValidUntil = ptr(baseTime.Add(time.Duration(160+r.IntN(500)) * time.Hour))
	}
	switch {
	case p.ApprovalThreshold != nil:
		c.ApprovalThreshold = ptr(between(r, 0, *p.ApprovalThreshold))
	case maybe(r):
		c.ApprovalThreshold = ptr(between(r, 0, c.Budget))
	}
	c.Normalize()
	return c
}

// widenings each widen one field of a child of p, or report that the field
// cannot be widened for this pair.
var widenings = map[string]func(r *rand.Rand, c *Limits, p Limits) bool{
	"currency": func(r *rand.Rand, c *Limits, p Limits) bool {
		c.Currency = map[string]string{"USD": "EUR", "EUR": "JPY", "JPY": "USD"}[p.Currency]
		return true
	},
	"budget": func(r *rand.Rand, c *Limits, p Limits) bool {
		c.Budget = p.Budget + between(r, 1, 1000)
		return true
	},
	"max_amount_per_charge": func(r *rand.Rand, c *Limits, p Limits) bool {
		if p.MaxAmountPerCharge == nil {
			return false
		}
		if maybe(r) || *p.MaxAmountPerCharge >= c.Budget {
			c.MaxAmountPerCharge = nil
		} else {
			c.MaxAmountPerCharge = ptr(between(r, *p.MaxAmountPerCharge+1, c.Budget))
		}
		return true
	},
	"period": func(r *rand.Rand, c *Limits, p Limits) bool {
		if p.Period == "" || c.Budget <= *p.PeriodBudget {
			return false
		}
		if maybe(r) {
			c.Period, c.PeriodBudget = "", nil
			return true
		}
		for _, q := range periods {
			if !periodContains(q, p.Period) {
				c.Period, c.PeriodBudget = q, ptr(between(r, 1, min(*p.PeriodBudget, c.Budget)))
				return true
			}
		}
		return false // a daily parent: every period contains a day
	},
	"period_budget": func(r *rand.Rand, c *Limits, p Limits) bool {
		if p.Period == "" || c.Budget <= *p.PeriodBudget || c.Period == "" {
			return false
		}
		c.PeriodBudget = ptr(between(r, *p.PeriodBudget+1, c.Budget))
		return true
	},
	"max_charges": func(r *rand.Rand, c *Limits, p Limits) bool {
		if p.MaxCharges == nil {
			return false
		}
		if maybe(r) {
			c.MaxCharges = nil
		} else {
			c.MaxCharges = ptr(*p.MaxCharges + between(r, 1, 10))
		}
		return true
	},
	"payment_methods": func(r *rand.Rand, c *Limits, p Limits) bool {
		return addOutsider(r, &c.PaymentMethods, p.PaymentMethods, poolTokens, nil)
	},
	"allowed_merchants": func(r *rand.Rand, c *Limits, p Limits) bool {
		return widenSet(r, &c.AllowedMerchants, p.AllowedMerchants, poolMerchants, nil)
	},
	"allowed_categories": func(r *rand.Rand, c *Limits, p Limits) bool {
		return widenSet(r, &c.AllowedCategories, p.AllowedCategories, poolCategories, c.BlockedCategories)
	},
	"allowed_countries": func(r *rand.Rand, c *Limits, p Limits) bool {
		return widenSet(r, &c.AllowedCountries, p.AllowedCountries, poolCountries, nil)
	},
	"blocked_categories": func(r *rand.Rand, c *Limits, p Limits) bool {
		if len(p.BlockedCategories) == 0 || len(c.AllowedCategories) > 0 {
			return false
		}
		b := p.BlockedCategories[r.IntN(len(p.BlockedCategories))]
		c.BlockedCategories = slices.DeleteFunc(c.BlockedCategories, func(s string) bool { return s == b })
		if len(c.BlockedCategories) == 0 {
			c.BlockedCategories = nil
		}
		return true
	},
	"valid_from": func(r *rand.Rand, c *Limits, p Limits) bool {
		if p.ValidFrom == nil {
			return false
		}
		if maybe(r) {
			c.ValidFrom = nil
		} else {
			c.ValidFrom = ptr(p.ValidFrom.Add(-time.Duration(1+r.IntN(100)) * time.Minute))
		}
		return true
	},
	"valid_until": func(r *rand.Rand, c *Limits, p Limits) bool {
		if p.ValidUntil == nil {
			return false
		}
		if maybe(r) {
			c.ValidUntil = nil
		} else {
			c.ValidUntil = ptr(p.ValidUntil.Add(time.Duration(1+r.IntN(100)) * time.Minute))
		}
		return true
	},
	"approval_threshold": func(r *rand.Rand, c *Limits, p Limits) bool {
		if p.ApprovalThreshold == nil {
			return false
		}
		if maybe(r) || *p.ApprovalThreshold >= money999 {
			c.ApprovalThreshold = nil
		} else {
			c.ApprovalThreshold = ptr(*p.ApprovalThreshold + between(r, 1, 100))
		}
		return true
	},
}

const money999 = 999_999_999_999

// addOutsider adds a value of pool that parent lacks (and avoid holds not).
func addOutsider(r *rand.Rand, set *[]string, parent, pool, avoid []string) bool {
	var out []string
	for _, v := range pool {
		if !slices.Contains(parent, v) && !slices.Contains(avoid, v) {
			out = append(out, v)
		}
	}
	if len(out) == 0 {
		return false
	}
	*set = append(slices.Clone(*set), out[r.IntN(len(out))])
	return true
}

// widenSet drops a parent restriction or adds a value outside it.
func widenSet(r *rand.Rand, set *[]string, parent, pool, avoid []string) bool {
	if len(parent) == 0 {
		return false
	}
	if maybe(r) {
		*set = nil
		return true
	}
	return addOutsider(r, set, parent, pool, avoid)
}

func TestNarrowerProperties(t *testing.T) {
	r := rand.New(rand.NewPCG(20260601, 6))
	widened := map[string]int{}
	for i := range 5000 {
		p := randomParent(r)
		require.NoError(t, p.Validate(""), "generator made invalid parent %+v", p)
		c := randomNarrowing(r, p)
		require.NoError(t, c.Validate(""), "generator made invalid child %+v", c)
		require.NoError(t, Narrower(&c, &p), "iteration %d: a narrowing was refused\nparent %+v\nchild %+v", i, p, c)
		require.NoError(t, Narrower(&p, &p), "a mandate is a subset of itself")

		for field, widen := range widenings {
			w := c.Clone()
			if !widen(r, &w, p) {
				continue
			}
			w.Normalize()
			if w.Validate("") != nil {
				continue // not a valid mandate at all; creation refuses it earlier
			}
			err := Narrower(&w, &p)
			var fe *apierr.Invalid
			require.ErrorAs(t, err, &fe, "iteration %d: widening %s passed\nparent %+v\nchild %+v", i, field, p, w)
			assert.Equal(t, CodeWidens, fe.Code)
			require.Equal(t, field, fe.Param, "iteration %d: %s", i, fe.Message)
			widened[field]++
		}
	}
	for field := range widenings {
		assert.Greater(t, widened[field], 50, "widening of %s was exercised too rarely", field)
	}
	t.Logf("widenings checked: %v", widened)
}

func TestNarrowerExamples(t *testing.T) {
	parent := Limits{Currency: "USD", Budget: 10_000, Period: PeriodMonth, PeriodBudget: ptr[int64](3_000),
		PaymentMethods: []string{"tok_a", "tok_b"}, BlockedCategories: []string{"7995"}}
	for _, tc := range []struct {
		name  string
		child Limits
		field string
	}{
		{"fits in one period", Limits{Currency: "USD", Budget: 3_000, PaymentMethods: []string{"tok_a"}, BlockedCategories: []string{"7995"}}, ""},
		{"same period smaller", Limits{Currency: "USD", Budget: 5_000, Period: PeriodMonth, PeriodBudget: ptr[int64](1_000), PaymentMethods: []string{"tok_a"}, BlockedCategories: []string{"7995"}}, ""},
		{"weekly does not bound monthly", Limits{Currency: "USD", Budget: 5_000, Period: PeriodWeek, PeriodBudget: ptr[int64](1_000), PaymentMethods: []string{"tok_a"}, BlockedCategories: []string{"7995"}}, "period"},
		{"no period", Limits{Currency: "USD", Budget: 5_000, PaymentMethods: []string{"tok_a"}, BlockedCategories: []string{"7995"}}, "period"},
		{"allow-list excludes the block", Limits{Currency: "USD", Budget: 100, PaymentMethods: []string{"tok_a"}, AllowedCategories: []string{"5942"}}, ""},
		{"block dropped", Limits{Currency: "USD", Budget: 100, PaymentMethods: []string{"tok_a"}}, "blocked_categories"},
		{"other card", Limits{Currency: "USD", Budget: 100, PaymentMethods: []string{"tok_z"}, BlockedCategories: []string{"7995"}}, "payment_methods"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Narrower(&tc.child, &parent)
			if tc.field == "" {
				require.NoError(t, err)
				return
			}
			var fe *apierr.Invalid
			require.ErrorAs(t, err, &fe)
			assert.Equal(t, tc.field, fe.Param)
		})
	}
}

func TestCheckChild(t *testing.T) {
	parent := &Mandate{ID: "mdt_p", TenantID: "ten_1", Limits: validLimits(), Payer: "cus_1", Agent: "a", Status: StatusActive, Depth: 1}
	child := &Mandate{TenantID: "ten_1", Limits: validLimits(), Payer: "cus_1", Agent: "b", ParentID: "mdt_p", Depth: 2}
	require.NoError(t, CheckChild(child, parent, 3))
	var fe *apierr.Invalid
	require.ErrorAs(t, CheckChild(child, parent, 1), &fe)
	assert.Equal(t, "parent_id", fe.Param)
	bad := *child
	bad.Payer = "cus_2"
	require.ErrorAs(t, CheckChild(&bad, parent, 3), &fe)
	assert.Equal(t, "payer", fe.Param)
	bad = *child
	bad.Depth = 5
	require.ErrorAs(t, CheckChild(&bad, parent, 9), &fe)
	assert.Equal(t, "depth", fe.Param)
	suspended := *parent
	suspended.Status = StatusSuspended
	require.ErrorAs(t, CheckChild(child, &suspended, 3), &fe)
	assert.Contains(t, fe.Message, "suspended")
}

// Package mandates is the mandate: what an agent may spend on a payer's
// behalf (limits, window, merchants, categories), its lifecycle, the subset
// check that lets a mandate be sub-delegated only ever narrower, its atomic
// budget reservations, and its canonical JSON for signing.
package mandates

import (
	"encoding/json"
	"strings"
	"time"
)

// Statuses of a mandate.
const (
	StatusPendingApproval = "pending_approval"
	StatusActive          = "active"
	StatusSuspended       = "suspended"
	StatusRevoked         = "revoked"
	StatusExpired         = "expired"
	StatusExhausted       = "exhausted"
)

// Statuses lists every status (for validating list filters).
var Statuses = []string{StatusPendingApproval, StatusActive, StatusSuspended, StatusRevoked, StatusExpired, StatusExhausted}

// Terminal reports whether a mandate in status s can never charge again.
func Terminal(s string) bool { return s == StatusRevoked || s == StatusExpired }

// Periods of a period budget. Periods are calendar periods in UTC: a day
// starts at 00:00, a week on Monday 00:00 (ISO 8601), a month on the 1st.
const (
	PeriodDay   = "day"
	PeriodWeek  = "week"
	PeriodMonth = "month"
)

// PayerSelf, given as the payer when creating a mandate, names the tenant
// itself as the payer (e.g. a company's procurement agent). It is stored as
// the tenant's id, and such a mandate is active at once.
const PayerSelf = "self"

// Limits are a mandate's terms: what its agent may spend, on which cards,
// where and when. Optional fields are nil or empty when absent, and an
// absent restriction means unrestricted. Amounts are minor units of
// Currency. The same fields form the payment_mandate authorization details
// type (see AuthorizationDetail).
type Limits struct {
	Currency string `json:"currency"`
	// MaxAmountPerCharge caps each charge (absent: only the budget caps it).
	MaxAmountPerCharge *int64 `json:"max_amount_per_charge,omitempty"`
	// Budget is the total the mandate may ever spend.
	Budget int64 `json:"budget"`
	// Period and PeriodBudget cap the spending per calendar period (UTC).
	Period       string `json:"period,omitempty"`
	PeriodBudget *int64 `json:"period_budget,omitempty"`
	// MaxCharges caps the number of charges.
	MaxCharges *int64 `json:"max_charges,omitempty"`
	// PaymentMethods are the payer's card tokens (tok_…) the mandate may
	// charge; at least one. Any other card is refused.
	PaymentMethods []string `json:"payment_methods"`
	// AllowedMerchants are merchant account ids (acct_…) or verified
	// merchant domains.
	AllowedMerchants []string `json:"allowed_merchants,omitempty"`
	// AllowedCategories and BlockedCategories are ISO 18245 merchant
	// category codes (four digits).
	AllowedCategories []string `json:"allowed_categories,omitempty"`
	BlockedCategories []string `json:"blocked_categories,omitempty"`
	// AllowedCountries are ISO 3166-1 alpha-2 codes of the merchant's country.
	AllowedCountries []string   `json:"allowed_countries,omitempty"`
	ValidFrom        *time.Time `json:"valid_from,omitempty"`
	ValidUntil       *time.Time `json:"valid_until,omitempty"`
	// ApprovalThreshold: charges above it need a human's approval (0: every
	// charge does).
	ApprovalThreshold *int64 `json:"approval_threshold,omitempty"`
}

// Mandate is a payer's permission for an agent to spend within Limits.
type Mandate struct {
	ID       string `json:"id"`
	TenantID string `json:"-"`
	Limits
	// Description says in natural language what the mandate is for; it is
	// shown to the approver.
	Description string `json:"description,omitempty"`
	// Payer is the tenant's reference of the customer who pays (the tenant's
	// own id when the tenant pays).
	Payer string `json:"payer"`
	// Agent is the OAuth client id of the agent that may spend.
	Agent string `json:"agent"`
	// ParentID is the mandate this one was sub-delegated from; Depth is 0
	// for a root mandate and parent's depth + 1 for a child.
	ParentID string `json:"parent_id,omitempty"`
	Depth    int    `json:"depth"`
	Status   string `json:"status"`

	// Counters. PeriodSpent is what was spent in the period starting at
	// PeriodStart; it counts as 0 once that period is over (see PeriodSpentAt).
	Spent       int64      `json:"spent"`
	PeriodSpent int64      `json:"period_spent"`
	PeriodStart *time.Time `json:"period_start,omitempty"`
	ChargeCount int64      `json:"charge_count"`

	CreatedAt  time.Time  `json:"created"`
	UpdatedAt  time.Time  `json:"updated"`
	ApprovedAt *time.Time `json:"approved_at,omitempty"`
	RevokedAt  *time.Time `json:"revoked_at,omitempty"`
}

// MarshalJSON writes the mandate as the API shows it: the currency in lower
// case, as every object of the API writes currencies. Inside, a mandate keeps
// ISO 4217's upper case (Normalize), which the policy and amount formatting
// read; input is accepted in either case. The signed terms (Canonical) are
// a document of their own and are not written through here.
func (m Mandate) MarshalJSON() ([]byte, error) {
	return json.Marshal(m.Wire())
}

// WireMandate is a mandate as the API writes it (see MarshalJSON). It has
// no methods, so views that embed it keep their own fields.
type WireMandate Mandate

// Wire returns a copy of m with its currency in lower case.
func (m *Mandate) Wire() *WireMandate {
	w := WireMandate(*m)
	w.Currency = strings.ToLower(w.Currency)
	return &w
}

// MarshalJSON writes the detail with its currency in lower case, like a
// mandate (an access token's authorization_details claim is written here).
func (d AuthorizationDetail) MarshalJSON() ([]byte, error) {
	type plain AuthorizationDetail
	p := plain(d)
	if d.Limits != nil {
		l := *d.Limits
		l.Currency = strings.ToLower(l.Currency)
		p.Limits = &l
	}
	return json.Marshal(p)
}

// Clone returns a deep copy (stores keep copies, never callers' pointers).
func (m *Mandate) Clone() *Mandate {
	c := *m
	c.Limits = m.Limits.Clone()
	c.PeriodStart = clonePtr(m.PeriodStart)
	c.ApprovedAt = clonePtr(m.ApprovedAt)
	c.RevokedAt = clonePtr(m.RevokedAt)
	return &c
}

// Clone returns a deep copy.
func (l Limits) Clone() Limits {
	c := l
	c.MaxAmountPerCharge = clonePtr(l.MaxAmountPerCharge)
	c.PeriodBudget = clonePtr(l.PeriodBudget)
	c.MaxCharges = clonePtr(l.MaxCharges)
	c.ApprovalThreshold = clonePtr(l.ApprovalThreshold)
	c.ValidFrom = clonePtr(l.ValidFrom)
	c.ValidUntil = clonePtr(l.ValidUntil)
	c.PaymentMethods = cloneSlice(l.PaymentMethods)
	c.AllowedMerchants = cloneSlice(l.AllowedMerchants)
	c.AllowedCategories = cloneSlice(l.AllowedCategories)
	c.BlockedCategories = cloneSlice(l.BlockedCategories)
	c.AllowedCountries = cloneSlice(l.AllowedCountries)
	return c
}

func clonePtr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}

// cloneSlice copies s, keeping nil as nil and empty as nil.
func cloneSlice(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return append([]string(nil), s...)
}

// PeriodStart is the start of the calendar period (UTC) containing t.
// It returns the zero time for an empty period.
func PeriodStart(period string, t time.Time) time.Time {
	t = t.UTC()
	y, mo, d := t.Date()
	switch period {
	case PeriodDay:
		return time.Date(y, mo, d, 0, 0, 0, 0, time.UTC)
	case PeriodWeek:
		day := time.Date(y, mo, d, 0, 0, 0, 0, time.UTC)
		back := (int(day.Weekday()) + 6) % 7 // days since Monday
		return day.AddDate(0, 0, -back)
	case PeriodMonth:
		return time.Date(y, mo, 1, 0, 0, 0, 0, time.UTC)
	}
	return time.Time{}
}

// PeriodStarts are the starts of the day, week and month containing t. The
// stores take all three so that one statement can pick each mandate's own.
type PeriodStarts struct{ Day, Week, Month time.Time }

// PeriodStartsAt returns the period starts of t.
func PeriodStartsAt(t time.Time) PeriodStarts {
	return PeriodStarts{Day: PeriodStart(PeriodDay, t), Week: PeriodStart(PeriodWeek, t), Month: PeriodStart(PeriodMonth, t)}
}

// For returns the start of period.
func (p PeriodStarts) For(period string) time.Time {
	switch period {
	case PeriodDay:
		return p.Day
	case PeriodWeek:
		return p.Week
	case PeriodMonth:
		return p.Month
	}
	return time.Time{}
}

// PeriodSpentAt is what counts against the period budget at time now: the
// stored period_spent while its period lasts, 0 once a new period began.
func (m *Mandate) PeriodSpentAt(now time.Time) int64 {
	if m.Period == "" || m.PeriodStart == nil || m.PeriodStart.Before(PeriodStart(m.Period, now)) {
		return 0
	}
	return m.PeriodSpent
}

// ChargePeriod is the period start a charge at now is counted in: the
// current period's, or the stored one if it is later (a node whose clock
// lags never moves the period back).
func (m *Mandate) ChargePeriod(now time.Time) time.Time {
	ps := PeriodStart(m.Period, now)
	if m.PeriodStart != nil && m.PeriodStart.After(ps) {
		return *m.PeriodStart
	}
	return ps
}

// ActiveAt reports whether now lies in the mandate's validity window.
func (l *Limits) ActiveAt(now time.Time) bool {
	if l.ValidFrom != nil && now.Before(*l.ValidFrom) {
		return false
	}
	if l.ValidUntil != nil && !now.Before(*l.ValidUntil) {
		return false
	}
	return true
}

// Remaining is the budget left.
func (m *Mandate) Remaining() int64 { return m.Budget - m.Spent }

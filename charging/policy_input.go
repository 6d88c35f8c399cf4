package charging

import (
	"time"

	"github.com/perfectpay/perfectpay/mandates"
	"github.com/perfectpay/perfectpay/policies"
)

// policyChain maps the mandate chain (root first) onto the policy's input
// types, with each mandate's counters as of now: the spending of a period
// that is over counts as 0.
func policyChain(chain []mandates.Mandate, now time.Time) []policies.Mandate {
	out := make([]policies.Mandate, len(chain))
	for i := range chain {
		m := &chain[i]
		out[i] = policies.Mandate{
			ID: m.ID, Status: m.Status, Agent: m.Agent, Payer: m.Payer, ParentID: m.ParentID, Depth: m.Depth,
			Limits: policyLimits(&m.Limits), Spent: m.Spent, ChargeCount: m.ChargeCount,
			PeriodSpent: m.PeriodSpentAt(now),
		}
	}
	return out
}

// policyDetails maps the token's authorization details onto the policy's
// input types.
func policyDetails(details []mandates.AuthorizationDetail) []policies.AuthorizationDetail {
	out := make([]policies.AuthorizationDetail, len(details))
	for i := range details {
		d := &details[i]
		out[i] = policies.AuthorizationDetail{Type: d.Type, MandateID: d.MandateID}
		if d.Limits != nil {
			l := policyLimits(d.Limits)
			out[i].Limits = &l
		}
	}
	return out
}

func policyLimits(l *mandates.Limits) policies.Limits {
	return policies.Limits{
		Currency: l.Currency, MaxAmountPerCharge: l.MaxAmountPerCharge, Budget: l.Budget,
		Period: l.Period, PeriodBudget: l.PeriodBudget, MaxCharges: l.MaxCharges,
		PaymentMethods: l.PaymentMethods, AllowedMerchants: l.AllowedMerchants,
		AllowedCategories: l.AllowedCategories, BlockedCategories: l.BlockedCategories,
		AllowedCountries: l.AllowedCountries, ValidFrom: l.ValidFrom, ValidUntil: l.ValidUntil,
		ApprovalThreshold: l.ApprovalThreshold,
	}
}

package web

import (
	"context"
	"fmt"
	"strings"

	"github.com/perfectpay/perfectpay/internal/money"
	"github.com/perfectpay/perfectpay/mandates"
)

// Terms states a mandate's limits in plain words, one sentence each, e.g.
// "Shopping Agent may spend up to 200.00 USD in total". merchant names an
// allowed merchant (an acct_ id or a domain) for people; nil shows them as given.
func Terms(l *mandates.Limits, agent string, merchant func(string) string) []string {
	if agent == "" {
		agent = "The agent"
	}
	cur := strings.ToUpper(l.Currency)
	amt := func(v int64) string { return money.Format(v, cur) }
	out := []string{fmt.Sprintf("%s may spend up to %s in total.", agent, amt(l.Budget))}
	if l.MaxAmountPerCharge != nil {
		out = append(out, fmt.Sprintf("At most %s per purchase.", amt(*l.MaxAmountPerCharge)))
	}
	if l.Period != "" && l.PeriodBudget != nil {
		out = append(out, fmt.Sprintf("At most %s per %s.", amt(*l.PeriodBudget), l.Period))
	}
	if l.MaxCharges != nil {
		out = append(out, fmt.Sprintf("At most %d purchases.", *l.MaxCharges))
	}
	if len(l.AllowedMerchants) > 0 {
		names := make([]string, len(l.AllowedMerchants))
		for i, m := range l.AllowedMerchants {
			names[i] = m
			if merchant != nil {
				names[i] = merchant(m)
			}
		}
		out = append(out, "Only at "+joinAnd(names)+".")
	}
	if len(l.AllowedCategories) > 0 {
		out = append(out, "Only in merchant categories "+joinAnd(l.AllowedCategories)+".")
	}
	if len(l.BlockedCategories) > 0 {
		out = append(out, "Never in merchant categories "+joinAnd(l.BlockedCategories)+".")
	}
	if len(l.AllowedCountries) > 0 {
		out = append(out, "Only at merchants in "+joinAnd(l.AllowedCountries)+".")
	}
	switch {
	case l.ValidFrom != nil && l.ValidUntil != nil:
		out = append(out, fmt.Sprintf("From %s until %s.", l.ValidFrom.UTC().Format("2 Jan 2006"), l.ValidUntil.UTC().Format("2 Jan 2006")))
	case l.ValidUntil != nil:
		out = append(out, fmt.Sprintf("Until %s.", l.ValidUntil.UTC().Format("2 Jan 2006")))
	case l.ValidFrom != nil:
		out = append(out, fmt.Sprintf("From %s.", l.ValidFrom.UTC().Format("2 Jan 2006")))
	}
	if l.ApprovalThreshold != nil {
		if *l.ApprovalThreshold == 0 {
			out = append(out, "Every purchase needs your approval.")
		} else {
			out = append(out, fmt.Sprintf("Purchases over %s need your approval.", amt(*l.ApprovalThreshold)))
		}
	}
	return out
}

func joinAnd(s []string) string {
	switch len(s) {
	case 0:
		return ""
	case 1:
		return s[0]
	}
	return strings.Join(s[:len(s)-1], ", ") + " and " + s[len(s)-1]
}

// agentName is the agent's display name, or its id.
func (p *Pages) agentName(ctx context.Context, tenantID, id string) string {
	if p.Issuer == nil {
		return id
	}
	a, err := p.Issuer.GetAgent(ctx, tenantID, id)
	if err != nil || a.Name == "" {
		return id
	}
	return a.Name
}

// merchantName is a merchant's display name (acct_ ids), or what was given.
func (p *Pages) merchantName(ctx context.Context) func(string) string {
	return func(ref string) string {
		if p.Merchants == nil || !strings.HasPrefix(ref, "acct_") {
			return ref
		}
		m, err := p.Merchants.Get(ctx, ref)
		if err != nil || m.DisplayName == "" {
			return ref
		}
		return m.DisplayName
	}
}

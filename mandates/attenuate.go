package mandates

import (
	"slices"

	"github.com/perfectpay/perfectpay/internal/apierr"
	"github.com/perfectpay/perfectpay/internal/money"
)

// Narrower checks that child's limits are a subset of parent's: every charge
// (and every history of charges) the child permits, the parent permits too.
// It returns nil, or an *apierr.Invalid with Code CodeWidens naming the first
// field that widens the parent.
//
// An absent restriction means unrestricted, so a child may add a
// restriction the parent lacks but may never drop one the parent has:
//
//   - currency: equal;
//   - budget, max_amount_per_charge, max_charges, approval_threshold: ≤
//     (present whenever the parent's is present);
//   - payment_methods: ⊆ (both always present);
//   - allowed_merchants, allowed_categories, allowed_countries: ⊆ when the
//     parent lists any, anything when it does not;
//   - blocked_categories: every category the parent blocks stays excluded,
//     either blocked by the child or left out of the child's allow-list;
//   - valid_from / valid_until: the child's window lies inside the parent's;
//   - period budget: every parent period's spending stays within the
//     parent's period_budget. That holds when the child's whole budget fits
//     in it, or when the child has a period_budget no larger under a period
//     that contains every parent period (the same period, or a week or a
//     month for a daily parent; a month does not contain every week).
//
// Limits are compared as written: a child listing a merchant's account id
// under a parent that lists the merchant's domain is refused, because the
// check does not look up who owns a domain.
func Narrower(child, parent *Limits) error {
	widens := func(field, format string, args ...any) error {
		fe := invalid(field, format, args...)
		fe.Code = CodeWidens
		return fe
	}
	cur := parent.Currency
	if child.Currency != parent.Currency {
		return widens("currency", "currency %s differs from the parent mandate's %s.", child.Currency, parent.Currency)
	}
	if child.Budget > parent.Budget {
		return widens("budget", "budget %s exceeds the parent mandate's budget of %s.", money.Format(child.Budget, cur), money.Format(parent.Budget, cur))
	}
	if err := capNarrower("max_amount_per_charge", child.MaxAmountPerCharge, parent.MaxAmountPerCharge, cur, true, widens); err != nil {
		return err
	}
	if err := periodNarrower(child, parent, widens); err != nil {
		return err
	}
	if err := capNarrower("max_charges", child.MaxCharges, parent.MaxCharges, "", false, widens); err != nil {
		return err
	}
	for _, f := range []struct {
		name          string
		child, parent []string
		always        bool
	}{
		{"payment_methods", child.PaymentMethods, parent.PaymentMethods, true},
		{"allowed_merchants", child.AllowedMerchants, parent.AllowedMerchants, false},
		{"allowed_categories", child.AllowedCategories, parent.AllowedCategories, false},
		{"allowed_countries", child.AllowedCountries, parent.AllowedCountries, false},
	} {
		if len(f.parent) == 0 && !f.always {
			continue
		}
		if len(f.child) == 0 {
			return widens(f.name, "%s is unrestricted, but the parent mandate restricts it.", f.name)
		}
		for _, v := range f.child {
			if !slices.Contains(f.parent, v) {
				return widens(f.name, "%s includes %s, which the parent mandate does not allow.", f.name, v)
			}
		}
	}
	for _, b := range parent.BlockedCategories {
		excluded := slices.Contains(child.BlockedCategories, b) ||
			(len(child.AllowedCategories) > 0 && !slices.Contains(child.AllowedCategories, b))
		if !excluded {
			return widens("blocked_categories", "category %s is blocked by the parent mandate and must stay blocked.", b)
		}
	}
	if parent.ValidFrom != nil && (child.ValidFrom == nil || child.ValidFrom.Before(*parent.ValidFrom)) {
		return widens("valid_from", "valid_from must not be before the parent mandate's %s.", parent.ValidFrom.Format("2006-01-02T15:04:05Z07:00"))
	}
	if parent.ValidUntil != nil && (child.ValidUntil == nil || child.ValidUntil.After(*parent.ValidUntil)) {
		return widens("valid_until", "valid_until must not be after the parent mandate's %s.", parent.ValidUntil.Format("2006-01-02T15:04:05Z07:00"))
	}
	return capNarrower("approval_threshold", child.ApprovalThreshold, parent.ApprovalThreshold, cur, true, widens)
}

// capNarrower checks an optional upper bound: present in the child whenever
// present in the parent, and no larger.
func capNarrower(field string, child, parent *int64, cur string, isMoney bool, widens func(string, string, ...any) error) error {
	if parent == nil {
		return nil
	}
	show := func(v int64) any {
		if isMoney {
			return money.Format(v, cur)
		}
		return v
	}
	if child == nil {
		return widens(field, "%s is unrestricted, but the parent mandate sets it to %v.", field, show(*parent))
	}
	if *child > *parent {
		return widens(field, "%s %v exceeds the parent mandate's %v.", field, show(*child), show(*parent))
	}
	return nil
}

// periodContains reports whether every period of kind inner lies inside a
// single period of kind outer.
func periodContains(outer, inner string) bool {
	return outer == inner || (inner == PeriodDay && (outer == PeriodWeek || outer == PeriodMonth))
}

func periodNarrower(child, parent *Limits, widens func(string, string, ...any) error) error {
	if parent.Period == "" {
		return nil
	}
	pb := *parent.PeriodBudget
	if child.Budget <= pb {
		return nil // the child can never spend more than pb in all, let alone per period
	}
	if child.Period == "" {
		return widens("period", "period is unrestricted, but the parent mandate allows %s per %s.", money.Format(pb, parent.Currency), parent.Period)
	}
	if !periodContains(child.Period, parent.Period) {
		return widens("period", "a %s period budget does not bound the parent mandate's %s period budget.", child.Period, parent.Period)
	}
	if *child.PeriodBudget > pb {
		return widens("period_budget", "period_budget %s exceeds the parent mandate's %s per %s.",
			money.Format(*child.PeriodBudget, parent.Currency), money.Format(pb, parent.Currency), parent.Period)
	}
	return nil
}

// CheckChild checks that child may be sub-delegated from parent: the parent
// is active, the child has the same tenant and payer, its depth is the
// parent's + 1 and within maxDepth, and its limits are Narrower.
func CheckChild(child, parent *Mandate, maxDepth int) error {
	if parent.Status != StatusActive {
		return invalid("parent_id", "the parent mandate %s is %s; only an active mandate can be sub-delegated.", parent.ID, parent.Status)
	}
	if child.TenantID != parent.TenantID {
		return invalid("parent_id", "the parent mandate belongs to another account.")
	}
	if child.Payer != parent.Payer {
		return &apierr.Invalid{Param: "payer", Code: CodeWidens, Message: "a child mandate has its parent's payer."}
	}
	if child.Depth != parent.Depth+1 {
		return invalid("depth", "a child mandate's depth is its parent's depth + 1 (%d).", parent.Depth+1)
	}
	if child.Depth > maxDepth {
		return invalid("parent_id", "delegation depth %d exceeds the maximum of %d.", child.Depth, maxDepth)
	}
	return Narrower(&child.Limits, &parent.Limits)
}

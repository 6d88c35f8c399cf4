package memory

import (
	"context"
	"maps"
	"slices"

	"github.com/perfectpay/perfectpay/charging"
	"github.com/perfectpay/perfectpay/compliance"
	"github.com/perfectpay/perfectpay/store"
)

var _ compliance.Repo = (*Tx)(nil)

func (tx *Tx) RecordDecisionInput(_ context.Context, d *charging.Decision) error {
	p := &tx.d.pipeline
	cur, ok := p.decisions[d.ID]
	if !ok || cur.TenantID != d.TenantID {
		return store.ErrNotFound
	}
	cur.Input = slices.Clone(d.Input)
	put(tx, p.decisions, d.ID, cur)
	return nil
}

func (tx *Tx) PutPolicyVersion(_ context.Context, v *compliance.PolicyVersion) error {
	if _, ok := tx.d.pipeline.policyVersions[v.Version]; ok {
		return nil
	}
	c := *v
	c.Modules = maps.Clone(v.Modules)
	put(tx, tx.d.pipeline.policyVersions, v.Version, c)
	return nil
}

func (tx *Tx) GetPolicyVersion(_ context.Context, version string) (*compliance.PolicyVersion, error) {
	v, ok := tx.d.pipeline.policyVersions[version]
	if !ok {
		return nil, store.ErrNotFound
	}
	v.Modules = maps.Clone(v.Modules)
	return &v, nil
}

func cloneDecision(d charging.Decision) charging.Decision {
	d.Reasons = slices.Clone(d.Reasons)
	d.Input = slices.Clone(d.Input)
	return d
}

// DecisionRecords reads the decisions in (created, id) order, a
// tenant's from the index of its decisions and all tenants' from the
// index of every decision, starting at the later of Since and the page's
// cursor, and copies only the page: a page costs its rows.
func (tx *Tx) DecisionRecords(_ context.Context, f compliance.DecisionFilter) ([]charging.Decision, error) {
	p := &tx.d.pipeline
	from, after := timedKey{at: stampOf(f.Since)}, timedKey{}
	if !f.AfterTime.IsZero() {
		after = timedKey{stampOf(f.AfterTime), f.AfterID}
		if compareTimed(after, from) > 0 {
			from = after
		}
	}
	var until *stamp
	if !f.Until.IsZero() {
		u := stampOf(f.Until)
		until = &u
	}
	var out []charging.Decision
	// take adds the decision at k unless it is the cursor's; it says
	// whether to go on.
	take := func(k timedKey) bool {
		if until != nil && k.at.compare(*until) >= 0 {
			return false
		}
		if !f.AfterTime.IsZero() && compareTimed(k, after) <= 0 {
			return true
		}
		out = append(out, cloneDecision(p.decisions[k.id]))
		return f.Limit <= 0 || len(out) < f.Limit
	}
	if f.TenantID == "" {
		p.byAge.walkFrom(from, take)
	} else {
		p.byTenant.walkFrom(tenantTimed{f.TenantID, from}, func(k tenantTimed) bool {
			return k.tenantID == f.TenantID && take(k.timedKey)
		})
	}
	return out, nil
}

func (tx *Tx) DecisionRecord(_ context.Context, tenantID, id string) (*charging.Decision, error) {
	d, ok := tx.d.pipeline.decisions[id]
	if !ok || d.TenantID != tenantID {
		return nil, store.ErrNotFound
	}
	d = cloneDecision(d)
	return &d, nil
}

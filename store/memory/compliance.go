package memory

import (
	"cmp"
	"context"
	"maps"
	"slices"
	"strings"

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

func (tx *Tx) DecisionRecords(_ context.Context, f compliance.DecisionFilter) ([]charging.Decision, error) {
	var out []charging.Decision
	for _, d := range tx.d.pipeline.decisions {
		switch {
		case f.TenantID != "" && d.TenantID != f.TenantID,
			!f.Since.IsZero() && d.CreatedAt.Before(f.Since),
			!f.Until.IsZero() && !d.CreatedAt.Before(f.Until),
			!f.AfterTime.IsZero() && cmp.Or(d.CreatedAt.Compare(f.AfterTime), strings.Compare(d.ID, f.AfterID)) <= 0:
			continue
		}
		out = append(out, cloneDecision(d))
	}
	slices.SortFunc(out, func(a, b charging.Decision) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), strings.Compare(a.ID, b.ID))
	})
	if f.Limit > 0 && len(out) > f.Limit {
		out = out[:f.Limit]
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

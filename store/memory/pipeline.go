package memory

import (
	"context"
	"slices"
	"time"

	"github.com/perfectpay/perfectpay/accounts"
	"github.com/perfectpay/perfectpay/charging"
	"github.com/perfectpay/perfectpay/compliance"
	"github.com/perfectpay/perfectpay/store"
)

var _ charging.Repo = (*Tx)(nil)

type pipelineData struct {
	approvals table[string, charging.Approval]
	decisions table[string, charging.Decision]
	byCharge  table[string, string] // tenant + "/" + charge id -> decision id
	holds     table[string, charging.Hold]
	// policyVersions are the kept policy versions (see compliance).
	policyVersions table[string, compliance.PolicyVersion]
	// verifications are the tenants' business verifications, which decide
	// whether live-mode charges are made (see accounts.Verifications).
	verifications table[string, accounts.Verification]
}

func newPipelineData() pipelineData {
	return pipelineData{approvals: table[string, charging.Approval]{}, decisions: table[string, charging.Decision]{},
		byCharge: table[string, string]{}, holds: table[string, charging.Hold]{},
		policyVersions: table[string, compliance.PolicyVersion]{}, verifications: table[string, accounts.Verification]{}}
}

func cloneApproval(a charging.Approval) charging.Approval {
	a.Purchase = slices.Clone(a.Purchase)
	a.Reasons = slices.Clone(a.Reasons)
	if a.ResolvedAt != nil {
		t := *a.ResolvedAt
		a.ResolvedAt = &t
	}
	return a
}

func (tx *Tx) CreateApproval(_ context.Context, a *charging.Approval) error {
	if _, ok := tx.d.pipeline.approvals[a.ID]; ok {
		return store.ErrConflict
	}
	put(tx, tx.d.pipeline.approvals, a.ID, cloneApproval(*a))
	return nil
}

func (tx *Tx) GetApproval(_ context.Context, tenantID, id string) (*charging.Approval, error) {
	a, ok := tx.d.pipeline.approvals[id]
	if !ok || a.TenantID != tenantID {
		return nil, store.ErrNotFound
	}
	a = cloneApproval(a)
	a.Object = "approval"
	return &a, nil
}

func (tx *Tx) UpdateApproval(_ context.Context, a *charging.Approval, from string) error {
	cur, ok := tx.d.pipeline.approvals[a.ID]
	if !ok || cur.TenantID != a.TenantID || cur.Status != from {
		return store.ErrConflict
	}
	cur.Status, cur.ResolvedAt, cur.ResolvedBy, cur.ChargeID = a.Status, a.ResolvedAt, a.ResolvedBy, a.ChargeID
	put(tx, tx.d.pipeline.approvals, a.ID, cloneApproval(cur))
	return nil
}

func (tx *Tx) CreateDecision(_ context.Context, d *charging.Decision) error {
	p := &tx.d.pipeline
	if _, ok := p.decisions[d.ID]; ok {
		return store.ErrConflict
	}
	if d.ChargeID != "" {
		k := d.TenantID + "/" + d.ChargeID
		if _, ok := p.byCharge[k]; ok {
			return store.ErrConflict
		}
		put(tx, p.byCharge, k, d.ID)
	}
	c := *d
	c.Reasons = slices.Clone(d.Reasons)
	put(tx, p.decisions, d.ID, c)
	return nil
}

func (tx *Tx) SetDecisionOutcome(_ context.Context, tenantID, chargeID, outcome string) error {
	p := &tx.d.pipeline
	id, ok := p.byCharge[tenantID+"/"+chargeID]
	if !ok {
		return nil
	}
	d := p.decisions[id]
	d.Outcome = outcome
	put(tx, p.decisions, id, d)
	return nil
}

func (tx *Tx) Velocity(_ context.Context, tenantID, agentID, mandateID string, q charging.VelocityQuery) (agent, mandate charging.Counts, err error) {
	if !q.Needed() {
		return agent, mandate, nil
	}
	for _, d := range tx.d.pipeline.decisions {
		if d.TenantID != tenantID || d.CreatedAt.Before(q.Since) {
			continue
		}
		allow := d.Result == "allow"
		decline := d.Result == "deny" || d.Outcome == "failed"
		if d.AgentID == agentID {
			agent.Charges += b2i(allow)
			agent.Declines += b2i(decline)
		}
		if d.MandateID == mandateID {
			mandate.Charges += b2i(allow)
			mandate.Declines += b2i(decline)
		}
	}
	capAt := func(n *int, c int) { *n = min(*n, c) }
	capAt(&agent.Charges, q.AgentCharges)
	capAt(&agent.Declines, q.AgentDeclines)
	capAt(&mandate.Charges, q.MandateCharges)
	capAt(&mandate.Declines, q.MandateDeclines)
	return agent, mandate, nil
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func (tx *Tx) CreateHold(_ context.Context, h *charging.Hold) error {
	if _, ok := tx.d.pipeline.holds[h.ChargeID]; ok {
		return store.ErrConflict
	}
	put(tx, tx.d.pipeline.holds, h.ChargeID, cloneHold(*h))
	return nil
}

func cloneHold(h charging.Hold) charging.Hold {
	h.Reservation.Chain = slices.Clone(h.Reservation.Chain)
	h.Reservation.Exhausted = slices.Clone(h.Reservation.Exhausted)
	if h.Reservation.Periods != nil {
		p := make(map[string]time.Time, len(h.Reservation.Periods))
		for k, v := range h.Reservation.Periods {
			p[k] = v
		}
		h.Reservation.Periods = p
	}
	return h
}

func (tx *Tx) LockHold(_ context.Context, tenantID, chargeID string) (*charging.Hold, error) {
	h, ok := tx.d.pipeline.holds[chargeID]
	if !ok || h.TenantID != tenantID {
		return nil, store.ErrNotFound
	}
	h = cloneHold(h)
	return &h, nil
}

func (tx *Tx) UpdateHold(_ context.Context, h *charging.Hold) error {
	if _, ok := tx.d.pipeline.holds[h.ChargeID]; !ok {
		return store.ErrNotFound
	}
	put(tx, tx.d.pipeline.holds, h.ChargeID, cloneHold(*h))
	return nil
}

func (tx *Tx) DecisionOfCharge(_ context.Context, tenantID, chargeID string) (*charging.Decision, error) {
	id, ok := tx.d.pipeline.byCharge[tenantID+"/"+chargeID]
	if !ok {
		return nil, store.ErrNotFound
	}
	d := tx.d.pipeline.decisions[id]
	d.Reasons = slices.Clone(d.Reasons)
	return &d, nil
}

func (tx *Tx) LedgerSnapshot(_ context.Context, tenantID string) (*charging.LedgerSnapshot, error) {
	s := &charging.LedgerSnapshot{}
	for _, m := range tx.d.mandates.mandates {
		if tenantID == "" || m.TenantID == tenantID {
			s.Mandates = append(s.Mandates, charging.LedgerMandate{ID: m.ID, TenantID: m.TenantID, ParentID: m.ParentID, Spent: m.Spent})
		}
	}
	agent := map[string]bool{}
	for _, c := range tx.d.payments.charges {
		if c.MandateID != "" && (tenantID == "" || c.TenantID == tenantID) {
			agent[c.ID] = true
			s.Charges = append(s.Charges, charging.LedgerCharge{ID: c.ID, TenantID: c.TenantID, MandateID: c.MandateID,
				Status: c.Status, Amount: c.Amount, Captured: c.AmountCaptured})
		}
	}
	for _, r := range tx.d.payments.refunds {
		if agent[r.ChargeID] {
			s.Refunds = append(s.Refunds, charging.LedgerRefund{ChargeID: r.ChargeID, Status: r.Status, Amount: r.Amount})
		}
	}
	return s, nil
}

// Prefetch runs reads one after the other: the memory store has no round
// trips to save.
func (tx *Tx) Prefetch(_ context.Context, reads ...func(tx charging.Tx) error) error {
	var first error
	for _, read := range reads {
		if err := read(tx); err != nil && first == nil {
			first = err
		}
	}
	return first
}

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
	// byAge holds every decision by creation, then id: a batch of
	// retention's PruneDecisions reads the decisions it deletes. Nothing
	// changes a decision's creation time, and only PruneDecisions deletes
	// one, so CreateDecision and PruneDecisions keep it.
	byAge *ordered[timedKey]
	// byTenant holds every decision by tenant, creation, then id: a page
	// of a tenant's decision records (DecisionRecords) reads that tenant's.
	// Kept with byAge.
	byTenant *ordered[tenantTimed]
	// recent lists each agent's and each mandate's decisions by time (see
	// recentKey), so that Velocity reads only the window it counts.
	recent map[string][]recentDecision
	holds  table[string, charging.Hold]
	// policyVersions are the kept policy versions (see compliance).
	policyVersions table[string, compliance.PolicyVersion]
	// verifications are the tenants' business verifications, which decide
	// whether live-mode charges are made (see accounts.Verifications).
	verifications table[string, accounts.Verification]
}

func newPipelineData() pipelineData {
	return pipelineData{approvals: table[string, charging.Approval]{}, decisions: table[string, charging.Decision]{},
		byCharge: table[string, string]{}, byAge: newOrdered(compareTimed, nil),
		byTenant: newOrdered(compareTenantTimed, nil), holds: table[string, charging.Hold]{}, recent: map[string][]recentDecision{},
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
	p.byAge.add(tx, timedKey{stampOf(c.CreatedAt), c.ID})
	p.byTenant.add(tx, tenantTimed{c.TenantID, timedKey{stampOf(c.CreatedAt), c.ID}})
	if c.Result == "allow" {
		tx.noteRecent(d.TenantID, "charges", c)
	}
	if c.Result == "deny" || c.Outcome == "failed" {
		tx.noteRecent(d.TenantID, "declines", c)
	}
	return nil
}

// recentDecision is one entry of pipelineData.recent.
type recentDecision struct {
	at time.Time
	id string
}

// recentKey names the time list of the charges (allowed decisions) or
// the declines (refusals and failed charges) of an agent ("a") or a
// mandate ("m").
func recentKey(tenantID, count, kind, id string) string {
	return tenantID + "/" + count + "/" + kind + "/" + id
}

// noteRecent adds d to its agent's and its mandate's list for count.
func (tx *Tx) noteRecent(tenantID, count string, d charging.Decision) {
	r := recentDecision{at: d.CreatedAt, id: d.ID}
	tx.editRecent(recentKey(tenantID, count, "a", d.AgentID), func(l []recentDecision) []recentDecision {
		return insertRecent(tx, l, r)
	})
	tx.editRecent(recentKey(tenantID, count, "m", d.MandateID), func(l []recentDecision) []recentDecision {
		return insertRecent(tx, l, r)
	})
}

// forgetRecent takes d out of its agent's and its mandate's list for count.
func (tx *Tx) forgetRecent(tenantID, count string, d charging.Decision) {
	drop := func(l []recentDecision) []recentDecision {
		for i := len(l) - 1; i >= 0; i-- {
			if l[i].id == d.ID {
				return slices.Delete(slices.Clone(l), i, i+1)
			}
		}
		return l
	}
	tx.editRecent(recentKey(tenantID, count, "a", d.AgentID), drop)
	tx.editRecent(recentKey(tenantID, count, "m", d.MandateID), drop)
}

// editRecent replaces the list at k by f's. A list is only ever
// replaced, appended to past its length or resliced, never written in
// place, so undo restores the previous slice header.
func (tx *Tx) editRecent(k string, f func([]recentDecision) []recentDecision) {
	p := &tx.d.pipeline
	old, had := p.recent[k]
	tx.undo = append(tx.undo, func() {
		if had {
			p.recent[k] = old
		} else {
			delete(p.recent, k)
		}
	})
	p.recent[k] = f(old)
}

// insertRecent adds r to l in time order, first dropping from the front
// the entries whose decision is gone (pruned).
func insertRecent(tx *Tx, l []recentDecision, r recentDecision) []recentDecision {
	for len(l) > 0 {
		if _, ok := tx.d.pipeline.decisions[l[0].id]; ok {
			break
		}
		l = l[1:]
	}
	i := len(l)
	for i > 0 && l[i-1].at.After(r.at) {
		i--
	}
	if i == len(l) {
		return append(l, r)
	}
	return slices.Insert(slices.Clone(l), i, r) // out of order: a fresh array
}

// countRecent counts the entries of the list at k made since since, up
// to limit: a binary search, whatever the list's length.
func (tx *Tx) countRecent(k string, since time.Time, limit int) int {
	if limit <= 0 {
		return 0
	}
	l := tx.d.pipeline.recent[k]
	first, _ := slices.BinarySearchFunc(l, since, func(r recentDecision, t time.Time) int { return r.at.Compare(t) })
	return min(len(l)-first, limit)
}

func (tx *Tx) SetDecisionOutcome(_ context.Context, tenantID, chargeID, outcome string) error {
	p := &tx.d.pipeline
	id, ok := p.byCharge[tenantID+"/"+chargeID]
	if !ok {
		return nil
	}
	d := p.decisions[id]
	was := d.Outcome
	d.Outcome = outcome
	put(tx, p.decisions, id, d)
	if d.Result != "deny" && (was == "failed") != (outcome == "failed") {
		if outcome == "failed" {
			tx.noteRecent(tenantID, "declines", d)
		} else {
			tx.forgetRecent(tenantID, "declines", d)
		}
	}
	return nil
}

func (tx *Tx) Velocity(_ context.Context, tenantID, agentID, mandateID string, q charging.VelocityQuery) (agent, mandate charging.Counts, err error) {
	if !q.Needed() {
		return agent, mandate, nil
	}
	agent.Charges = tx.countRecent(recentKey(tenantID, "charges", "a", agentID), q.Since, q.AgentCharges)
	agent.Declines = tx.countRecent(recentKey(tenantID, "declines", "a", agentID), q.Since, q.AgentDeclines)
	mandate.Charges = tx.countRecent(recentKey(tenantID, "charges", "m", mandateID), q.Since, q.MandateCharges)
	mandate.Declines = tx.countRecent(recentKey(tenantID, "declines", "m", mandateID), q.Since, q.MandateDeclines)
	return agent, mandate, nil
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

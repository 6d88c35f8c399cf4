package memory

import (
	"cmp"
	"context"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/perfectpay/perfectpay/payments"
	"github.com/perfectpay/perfectpay/store"
)

var _ payments.Repo = (*Tx)(nil)

type paymentsData struct {
	charges   table[string, payments.Charge]
	chargeSeq table[string, int64] // charge id -> insertion order, for pagination
	seq       int64
	refunds   table[string, payments.Refund]
	// chargeByKey: tenant + "/" + idempotency key -> charge id
	chargeByKey table[string, string]
	// unresolved holds the ids of the charges that are pending or have a
	// reversal pending, and pendingRefunds those of the pending refunds:
	// the resolver's work lists, so its minute costs what is left to
	// resolve, not every charge and refund ever made. putCharge and
	// putRefund keep them.
	unresolved     table[string, struct{}]
	pendingRefunds table[string, struct{}]
	// owned lists the charge ids of each tenant and of each merchant, in
	// one mode, in creation order (see chargeOwners): a page of
	// ListCharges walks back from its cursor and stops at its limit. A
	// list may still hold a charge whose merchant or mode an update
	// changed since; ListCharges skips it.
	owned table[string, []string]
	// scrubbable holds the charges retention's scrub empties once they
	// are old enough (see scrubbable), by last update, then id: a batch
	// of ScrubCharges reads the charges it scrubs. putCharge keeps it.
	scrubbable *ordered[timedKey]
	// lastUse is the creation of the latest charge of each tenant and
	// payment method, for the token shred (see shred.go).
	lastUse table[useKey, stamp]
}

func newPaymentsData() *paymentsData {
	return &paymentsData{
		charges:     table[string, payments.Charge]{},
		chargeSeq:   table[string, int64]{},
		refunds:     table[string, payments.Refund]{},
		chargeByKey: table[string, string]{},

		unresolved:     table[string, struct{}]{},
		pendingRefunds: table[string, struct{}]{},
		owned:          table[string, []string]{},
		scrubbable:     newOrdered(compareTimed, nil),
		lastUse:        table[useKey, stamp]{},
	}
}

// scrubbable tells whether retention's scrub empties c's free text once
// its last update is old enough: it is settled, has free text, no
// reversal pending and no claim under way.
func scrubbable(c *payments.Charge) bool {
	settled := c.Status == payments.StatusSucceeded || c.Status == payments.StatusCanceled || c.Status == payments.StatusFailed
	text := c.Description != "" || len(c.Metadata) > 0 || c.Purchase != nil || c.FailureMessage != ""
	return settled && text && !c.ReversalPending && c.Claim == ""
}

// chargeOwners names the lists of owned a charge belongs to: its
// tenant's, and its merchant's when it has one, in its mode.
func chargeOwners(c *payments.Charge) []string {
	mode := "/test"
	if c.Livemode {
		mode = "/live"
	}
	keys := []string{"tenant/" + c.TenantID + mode}
	if c.MerchantID != "" {
		keys = append(keys, "merchant/"+c.MerchantID+mode)
	}
	return keys
}

// listCharge puts the id of c, created as number seq, in the lists of its
// owners, where it is not yet: at the end when it is the newest, as it is
// when created, else where its seq belongs.
func (tx *Tx) listCharge(c *payments.Charge, seq int64) {
	p := tx.d.payments
	for _, k := range chargeOwners(c) {
		l := p.owned[k]
		i := tx.chargesBefore(l, seq)
		switch {
		case i == len(l):
			put(tx, p.owned, k, append(l, c.ID))
		case l[i] != c.ID:
			put(tx, p.owned, k, slices.Insert(slices.Clone(l), i, c.ID))
		}
	}
}

// chargesBefore is the number of charges of the list l created before
// the charge numbered seq.
func (tx *Tx) chargesBefore(l []string, seq int64) int {
	p := tx.d.payments
	return sort.Search(len(l), func(i int) bool { return p.chargeSeq[l[i]] >= seq })
}

// putCharge stores c (a clone the caller no longer touches) and keeps the
// owners' lists, the resolver's list of unresolved charges, the scrub's
// index and the tokens' last use.
func (tx *Tx) putCharge(c payments.Charge) {
	p := tx.d.payments
	old, had := p.charges[c.ID]
	if !had || !slices.Equal(chargeOwners(&old), chargeOwners(&c)) {
		tx.listCharge(&c, p.chargeSeq[c.ID])
	}
	put(tx, p.charges, c.ID, c)
	tx.noteUse(&old, had, &c)
	if was, is := had && scrubbable(&old), scrubbable(&c); was != is || (is && !old.Updated.Equal(c.Updated)) {
		if was {
			p.scrubbable.drop(tx, timedKey{stampOf(old.Updated), c.ID})
		}
		if is {
			p.scrubbable.add(tx, timedKey{stampOf(c.Updated), c.ID})
		}
	}
	_, listed := p.unresolved[c.ID]
	switch unresolved := c.Status == payments.StatusPending || c.ReversalPending; {
	case unresolved && !listed:
		put(tx, p.unresolved, c.ID, struct{}{})
	case !unresolved && listed:
		del(tx, p.unresolved, c.ID)
	}
}

// putRefund stores r and keeps the resolver's list of pending refunds.
func (tx *Tx) putRefund(r payments.Refund) {
	p := tx.d.payments
	put(tx, p.refunds, r.ID, r)
	_, listed := p.pendingRefunds[r.ID]
	switch pending := r.Status == payments.RefundPending; {
	case pending && !listed:
		put(tx, p.pendingRefunds, r.ID, struct{}{})
	case !pending && listed:
		del(tx, p.pendingRefunds, r.ID)
	}
}

func cloneCharge(c payments.Charge) payments.Charge {
	c.Metadata = maps.Clone(c.Metadata)
	if c.Purchase != nil {
		p := *c.Purchase
		p.LineItems = slices.Clone(p.LineItems)
		c.Purchase = &p
	}
	c.CapturedAt = cloneTime(c.CapturedAt)
	c.CanceledAt = cloneTime(c.CanceledAt)
	c.ClaimUntil = cloneTime(c.ClaimUntil)
	return c
}

func (tx *Tx) CreateCharge(_ context.Context, c *payments.Charge) error {
	p := tx.d.payments
	if _, ok := p.charges[c.ID]; ok {
		return store.ErrConflict
	}
	if _, ok := tx.d.tenants[c.TenantID]; !ok {
		return store.ErrNotFound
	}
	if c.IdempotencyKey != "" {
		k := c.TenantID + "/" + c.IdempotencyKey
		if _, ok := p.chargeByKey[k]; ok {
			return store.ErrConflict
		}
		put(tx, p.chargeByKey, k, c.ID)
	}
	setVar(tx, &p.seq, p.seq+1)
	put(tx, p.chargeSeq, c.ID, p.seq)
	tx.putCharge(cloneCharge(*c))
	return nil
}

func (tx *Tx) ChargeByIdempotencyKey(ctx context.Context, tenantID, key string) (*payments.Charge, error) {
	id, ok := tx.d.payments.chargeByKey[tenantID+"/"+key]
	if !ok {
		return nil, store.ErrNotFound
	}
	return tx.GetCharge(ctx, tenantID, id)
}

func (tx *Tx) GetCharge(_ context.Context, tenantID, id string) (*payments.Charge, error) {
	c, ok := tx.d.payments.charges[id]
	if !ok || c.TenantID != tenantID {
		return nil, store.ErrNotFound
	}
	c = cloneCharge(c)
	return &c, nil
}

// LockCharge needs no lock: memory transactions are serialized.
func (tx *Tx) LockCharge(ctx context.Context, tenantID, id string) (*payments.Charge, error) {
	return tx.GetCharge(ctx, tenantID, id)
}

func (tx *Tx) UpdateCharge(_ context.Context, c *payments.Charge, fromStatus string) error {
	p := tx.d.payments
	old, ok := p.charges[c.ID]
	if !ok || old.TenantID != c.TenantID {
		return store.ErrNotFound
	}
	if old.Status != fromStatus {
		return store.ErrConflict
	}
	// Only the charge's state changes, as PostgreSQL's statement writes it:
	// what the charge was made with (amount, card, owner, description,
	// metadata, creation) stays as it was inserted.
	n := cloneCharge(old)
	n.Status, n.AmountCaptured, n.AmountRefunded, n.AuthCode = c.Status, c.AmountCaptured, c.AmountRefunded, c.AuthCode
	n.FailureCode, n.FailureMessage, n.DeclineCode = c.FailureCode, c.FailureMessage, c.DeclineCode
	n.Attempts, n.ReversalPending, n.Updated = c.Attempts, c.ReversalPending, c.Updated
	n.CapturedAt, n.CanceledAt = cloneTime(c.CapturedAt), cloneTime(c.CanceledAt)
	n.Claim, n.ClaimUntil = c.Claim, cloneTime(c.ClaimUntil)
	if n.AmountCaptured > n.Amount || n.AmountRefunded < 0 || n.AmountRefunded > n.AmountCaptured {
		return store.ErrConflict // the Postgres CHECK constraints
	}
	tx.putCharge(n)
	return nil
}

// ListCharges walks the owner's list back from the cursor: a page reads
// what it returns, not every charge in the store.
func (tx *Tx) ListCharges(_ context.Context, tenantID string, f payments.ListFilter) ([]payments.Charge, error) {
	p := tx.d.payments
	mine := func(c *payments.Charge) bool {
		if f.MerchantID != "" {
			return c.MerchantID == f.MerchantID && c.Livemode == f.Livemode
		}
		return c.TenantID == tenantID && c.Livemode == f.Livemode
	}
	owner := payments.Charge{TenantID: tenantID, MerchantID: f.MerchantID, Livemode: f.Livemode}
	keys := chargeOwners(&owner)
	l := p.owned[keys[len(keys)-1]]
	end := len(l)
	if f.StartingAfter != "" {
		c, ok := p.charges[f.StartingAfter]
		if !ok || !mine(&c) {
			return nil, store.ErrNotFound
		}
		end = tx.chargesBefore(l, p.chargeSeq[f.StartingAfter])
	}
	var out []payments.Charge
	if f.Limit > 0 && end > 0 {
		out = make([]payments.Charge, 0, min(f.Limit, end))
	}
	for i := end - 1; i >= 0 && (f.Limit <= 0 || len(out) < f.Limit); i-- {
		if c := p.charges[l[i]]; mine(&c) {
			out = append(out, cloneCharge(c))
		}
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

// ChargesToResolve reads the list of unresolved charges, not the table.
// Charges updated at the same instant come in id order.
func (tx *Tx) ChargesToResolve(_ context.Context, before time.Time, limit int) ([]payments.Charge, error) {
	p := tx.d.payments
	due := make([]dueRow, 0, len(p.unresolved))
	for id := range p.unresolved {
		if c := p.charges[id]; (c.Status == payments.StatusPending || c.ReversalPending) && c.Updated.Before(before) {
			due = append(due, dueRow{id, c.Updated})
		}
	}
	due = firstDue(due, limit)
	if len(due) == 0 {
		return nil, nil
	}
	out := make([]payments.Charge, len(due))
	for i, d := range due {
		out[i] = cloneCharge(p.charges[d.id])
	}
	return out, nil
}

// dueRow is a row of a resolver's work list: its id and last update.
type dueRow struct {
	id string
	at time.Time
}

// firstDue sorts rows by update, then id, and keeps the first limit.
func firstDue(rows []dueRow, limit int) []dueRow {
	slices.SortFunc(rows, func(a, b dueRow) int { return cmp.Or(a.at.Compare(b.at), strings.Compare(a.id, b.id)) })
	return rows[:min(len(rows), max(limit, 0))]
}

func (tx *Tx) CreateRefund(_ context.Context, r *payments.Refund) error {
	p := tx.d.payments
	if _, ok := p.refunds[r.ID]; ok {
		return store.ErrConflict
	}
	if c, ok := p.charges[r.ChargeID]; !ok || c.TenantID != r.TenantID {
		return store.ErrNotFound
	}
	tx.putRefund(*r)
	return nil
}

func (tx *Tx) GetRefund(_ context.Context, tenantID, id string) (*payments.Refund, error) {
	r, ok := tx.d.payments.refunds[id]
	if !ok || r.TenantID != tenantID {
		return nil, store.ErrNotFound
	}
	return &r, nil
}

func (tx *Tx) UpdateRefund(_ context.Context, r *payments.Refund, fromStatus string) error {
	p := tx.d.payments
	old, ok := p.refunds[r.ID]
	if !ok || old.TenantID != r.TenantID {
		return store.ErrNotFound
	}
	if old.Status != fromStatus {
		return store.ErrConflict
	}
	tx.putRefund(*r)
	return nil
}

// RefundsToResolve reads the list of pending refunds, not the table.
func (tx *Tx) RefundsToResolve(_ context.Context, before time.Time, limit int) ([]payments.Refund, error) {
	p := tx.d.payments
	due := make([]dueRow, 0, len(p.pendingRefunds))
	for id := range p.pendingRefunds {
		if r := p.refunds[id]; r.Status == payments.RefundPending && r.Updated.Before(before) {
			due = append(due, dueRow{id, r.Updated})
		}
	}
	due = firstDue(due, limit)
	if len(due) == 0 {
		return nil, nil
	}
	out := make([]payments.Refund, len(due))
	for i, d := range due {
		out[i] = p.refunds[d.id]
	}
	return out, nil
}

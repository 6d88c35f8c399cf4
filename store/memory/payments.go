package memory

import (
	"context"
	"maps"
	"slices"
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
}

func newPaymentsData() *paymentsData {
	return &paymentsData{
		charges:     table[string, payments.Charge]{},
		chargeSeq:   table[string, int64]{},
		refunds:     table[string, payments.Refund]{},
		chargeByKey: table[string, string]{},
	}
}

func cloneCharge(c payments.Charge) payments.Charge {
	c.Metadata = maps.Clone(c.Metadata)
	if c.Purchase != nil {
		p := *c.Purchase
		p.LineItems = slices.Clone(p.LineItems)
		c.Purchase = &p
	}
	c.CapturedAt = cloneTimePtr(c.CapturedAt)
	c.CanceledAt = cloneTimePtr(c.CanceledAt)
	c.ClaimUntil = cloneTimePtr(c.ClaimUntil)
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
	put(tx, p.charges, c.ID, cloneCharge(*c))
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
	if c.AmountCaptured > c.Amount || c.AmountRefunded < 0 || c.AmountRefunded > c.AmountCaptured {
		return store.ErrConflict // the Postgres CHECK constraints
	}
	put(tx, p.charges, c.ID, cloneCharge(*c))
	return nil
}

func (tx *Tx) ListCharges(_ context.Context, tenantID string, f payments.ListFilter) ([]payments.Charge, error) {
	p := tx.d.payments
	mine := func(c *payments.Charge) bool {
		if f.MerchantID != "" {
			return c.MerchantID == f.MerchantID && c.Livemode == f.Livemode
		}
		return c.TenantID == tenantID && c.Livemode == f.Livemode
	}
	var cursor int64 = 1<<63 - 1
	if f.StartingAfter != "" {
		c, ok := p.charges[f.StartingAfter]
		if !ok || !mine(&c) {
			return nil, store.ErrNotFound
		}
		cursor = p.chargeSeq[f.StartingAfter]
	}
	var out []payments.Charge
	for id, c := range p.charges {
		if mine(&c) && p.chargeSeq[id] < cursor {
			out = append(out, cloneCharge(c))
		}
	}
	slices.SortFunc(out, func(a, b payments.Charge) int {
		return int(p.chargeSeq[b.ID] - p.chargeSeq[a.ID])
	})
	if f.Limit > 0 && len(out) > f.Limit {
		out = out[:f.Limit]
	}
	return out, nil
}

func (tx *Tx) ChargesToResolve(_ context.Context, before time.Time, limit int) ([]payments.Charge, error) {
	var out []payments.Charge
	for _, c := range tx.d.payments.charges {
		if (c.Status == payments.StatusPending || c.ReversalPending) && c.Updated.Before(before) {
			out = append(out, cloneCharge(c))
		}
	}
	slices.SortFunc(out, func(a, b payments.Charge) int { return a.Updated.Compare(b.Updated) })
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

func (tx *Tx) CreateRefund(_ context.Context, r *payments.Refund) error {
	p := tx.d.payments
	if _, ok := p.refunds[r.ID]; ok {
		return store.ErrConflict
	}
	if c, ok := p.charges[r.ChargeID]; !ok || c.TenantID != r.TenantID {
		return store.ErrNotFound
	}
	put(tx, p.refunds, r.ID, *r)
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
	put(tx, p.refunds, r.ID, *r)
	return nil
}

func (tx *Tx) RefundsToResolve(_ context.Context, before time.Time, limit int) ([]payments.Refund, error) {
	var out []payments.Refund
	for _, r := range tx.d.payments.refunds {
		if r.Status == payments.RefundPending && r.Updated.Before(before) {
			out = append(out, r)
		}
	}
	slices.SortFunc(out, func(a, b payments.Refund) int {
		if c := a.Updated.Compare(b.Updated); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

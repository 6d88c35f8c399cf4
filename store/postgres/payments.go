package postgres

import (
	"context"
	"encoding/json"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/perfectpay/perfectpay/payments"
	"github.com/perfectpay/perfectpay/store"
)

var _ payments.Repo = (*Tx)(nil)

const chargeCols = `id, tenant_id, livemode, status, amount, amount_captured, amount_refunded, currency, capture_now,
	payment_method, card, description, metadata, coalesce(mandate_id, ''), coalesce(agent_id, ''), coalesce(merchant_id, ''),
	purchase, auth_code, failure_code, failure_message, decline_code, attempts, reversal_pending,
	created_at, updated_at, captured_at, canceled_at, claim, claim_until, coalesce(idempotency_key, '')`

func scanCharge(row pgx.Row) (*payments.Charge, error) {
	var c payments.Charge
	var card, meta, purchase []byte
	err := row.Scan(&c.ID, &c.TenantID, &c.Livemode, &c.Status, &c.Amount, &c.AmountCaptured, &c.AmountRefunded,
		&c.Currency, &c.CaptureNow, &c.PaymentMethod, &card, &c.Description, &meta, &c.MandateID, &c.AgentID,
		&c.MerchantID, &purchase, &c.AuthCode, &c.FailureCode, &c.FailureMessage, &c.DeclineCode, &c.Attempts,
		&c.ReversalPending, &c.Created, &c.Updated, &c.CapturedAt, &c.CanceledAt, &c.Claim, &c.ClaimUntil, &c.IdempotencyKey)
	if err != nil {
		return nil, mapErr(err)
	}
	if err := json.Unmarshal(card, &c.Card); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(meta, &c.Metadata); err != nil {
		return nil, err
	}
	if purchase != nil {
		c.Purchase = &payments.Purchase{}
		if err := json.Unmarshal(purchase, c.Purchase); err != nil {
			return nil, err
		}
	}
	return &c, nil
}

func chargeJSON(c *payments.Charge) (card, meta, purchase any, err error) {
	cb, err := json.Marshal(c.Card)
	if err != nil {
		return nil, nil, nil, err
	}
	m := c.Metadata
	if m == nil {
		m = map[string]string{}
	}
	mb, err := json.Marshal(m)
	if err != nil {
		return nil, nil, nil, err
	}
	if c.Purchase != nil {
		pb, err := json.Marshal(c.Purchase)
		if err != nil {
			return nil, nil, nil, err
		}
		purchase = string(pb)
	}
	return string(cb), string(mb), purchase, nil
}

func (t *Tx) CreateCharge(ctx context.Context, c *payments.Charge) error {
	card, meta, purchase, err := chargeJSON(c)
	if err != nil {
		return err
	}
	return t.later(ctx, `INSERT INTO charges (id, tenant_id, livemode, status, amount, amount_captured, amount_refunded,
		currency, capture_now, payment_method, card, description, metadata, mandate_id, agent_id, merchant_id, purchase,
		auth_code, failure_code, failure_message, decline_code, attempts, reversal_pending, created_at, updated_at,
		captured_at, canceled_at, idempotency_key)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23,
		$24, $25, $26, $27, $28)`,
		[]any{c.ID, c.TenantID, c.Livemode, c.Status, c.Amount, c.AmountCaptured, c.AmountRefunded, c.Currency, c.CaptureNow,
			c.PaymentMethod, card, c.Description, meta, nullStr(c.MandateID), nullStr(c.AgentID), nullStr(c.MerchantID),
			purchase, c.AuthCode, c.FailureCode, c.FailureMessage, c.DeclineCode, c.Attempts, c.ReversalPending,
			c.Created, c.Updated, nullTime(c.CapturedAt), nullTime(c.CanceledAt), nullStr(c.IdempotencyKey)}, nil)
}

func (t *Tx) ChargeByIdempotencyKey(ctx context.Context, tenantID, key string) (*payments.Charge, error) {
	return scanCharge(t.tx.QueryRow(ctx, `SELECT `+chargeCols+` FROM charges WHERE tenant_id = $1 AND idempotency_key = $2`, tenantID, key))
}

// chargeByID selects a charge by id, then checks its tenant. The check is
// IS NOT DISTINCT FROM (the same as = on these non-null values) because no
// index serves it: a plan cached while the table was empty otherwise took
// an index led by tenant_id as readily as the primary key, and read every
// charge of the tenant until the table was first analyzed.
const chargeByID = `SELECT ` + chargeCols + ` FROM charges WHERE id = $1 AND tenant_id IS NOT DISTINCT FROM $2`

func (t *Tx) GetCharge(ctx context.Context, tenantID, id string) (*payments.Charge, error) {
	return scanCharge(t.tx.QueryRow(ctx, chargeByID, id, tenantID))
}

func (t *Tx) LockCharge(ctx context.Context, tenantID, id string) (*payments.Charge, error) {
	c, err := scanCharge(t.tx.QueryRow(ctx, chargeByID+` FOR UPDATE`, id, tenantID))
	if p, ok := t.tx.(*pipeTx); ok && err == nil {
		p.lock(chargeLock(tenantID, id), c.Status)
	}
	return c, err
}

func chargeLock(tenantID, id string) string { return "charge\x00" + tenantID + "\x00" + id }

const updateChargeSQL = `UPDATE charges SET status = $4, amount_captured = $5, amount_refunded = $6, auth_code = $7,
		failure_code = $8, failure_message = $9, decline_code = $10, attempts = $11, reversal_pending = $12,
		updated_at = $13, captured_at = $14, canceled_at = $15, claim = $16, claim_until = $17
		WHERE id = $1 AND tenant_id IS NOT DISTINCT FROM $2 AND status = $3` // by the key: see chargeByID

// UpdateCharge writes c if its status is still fromStatus. A charge this
// transaction locked (LockCharge) in that status cannot have changed since,
// so its update is queued for the next round trip (see pipeTx).
func (t *Tx) UpdateCharge(ctx context.Context, c *payments.Charge, fromStatus string) error {
	args := []any{c.ID, c.TenantID, fromStatus, c.Status, c.AmountCaptured, c.AmountRefunded, c.AuthCode, c.FailureCode,
		c.FailureMessage, c.DeclineCode, c.Attempts, c.ReversalPending, c.Updated, nullTime(c.CapturedAt), nullTime(c.CanceledAt),
		c.Claim, nullTime(c.ClaimUntil)}
	if p, ok := t.tx.(*pipeTx); ok {
		if st, locked := p.locked(chargeLock(c.TenantID, c.ID)); locked && st == fromStatus {
			p.lock(chargeLock(c.TenantID, c.ID), c.Status)
			p.later(updateChargeSQL, args, nil)
			return nil
		}
	}
	tag, err := t.tx.Exec(ctx, updateChargeSQL, args...)
	if err != nil {
		return mapErr(err)
	}
	if tag.RowsAffected() == 0 {
		var exists bool
		if err := t.tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM charges WHERE id = $1 AND tenant_id = $2)`, c.ID, c.TenantID).Scan(&exists); err != nil {
			return mapErr(err)
		}
		if !exists {
			return store.ErrNotFound
		}
		return store.ErrConflict
	}
	return nil
}

func (t *Tx) ListCharges(ctx context.Context, tenantID string, f payments.ListFilter) ([]payments.Charge, error) {
	who, whoArg := "tenant_id = $1", tenantID
	if f.MerchantID != "" {
		who, whoArg = "merchant_id = $1", f.MerchantID
	}
	cursor := int64(1<<63 - 1)
	if f.StartingAfter != "" {
		err := t.tx.QueryRow(ctx, `SELECT seq FROM charges WHERE id = $2 AND `+who+` AND livemode = $3`,
			whoArg, f.StartingAfter, f.Livemode).Scan(&cursor)
		if err != nil {
			return nil, mapErr(err)
		}
	}
	rows, err := t.tx.Query(ctx, `SELECT `+chargeCols+` FROM charges
		WHERE `+who+` AND livemode = $2 AND seq < $3 ORDER BY seq DESC LIMIT $4`, whoArg, f.Livemode, cursor, f.Limit)
	if err != nil {
		return nil, mapErr(err)
	}
	return collectCharges(rows)
}

func collectCharges(rows pgx.Rows) ([]payments.Charge, error) {
	defer rows.Close()
	var out []payments.Charge
	for rows.Next() {
		c, err := scanCharge(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, *c)
	}
	return out, mapErr(rows.Err())
}

func (t *Tx) ChargesToResolve(ctx context.Context, before time.Time, limit int) ([]payments.Charge, error) {
	rows, err := t.tx.Query(ctx, `SELECT `+chargeCols+` FROM charges
		WHERE (status = 'pending' OR reversal_pending) AND updated_at < $1 ORDER BY updated_at, id LIMIT $2`, before, limit)
	if err != nil {
		return nil, mapErr(err)
	}
	return collectCharges(rows)
}

const refundCols = `id, tenant_id, livemode, charge_id, amount, currency, status, reason, failure_code, created_at, updated_at`

func scanRefund(row pgx.Row) (*payments.Refund, error) {
	r := payments.Refund{Object: "refund"}
	err := row.Scan(&r.ID, &r.TenantID, &r.Livemode, &r.ChargeID, &r.Amount, &r.Currency, &r.Status, &r.Reason,
		&r.FailureCode, &r.Created, &r.Updated)
	if err != nil {
		return nil, mapErr(err)
	}
	return &r, nil
}

func (t *Tx) CreateRefund(ctx context.Context, r *payments.Refund) error {
	_, err := t.tx.Exec(ctx, `INSERT INTO refunds (`+refundCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
		r.ID, r.TenantID, r.Livemode, r.ChargeID, r.Amount, r.Currency, r.Status, r.Reason, r.FailureCode, r.Created, r.Updated)
	return mapErr(err)
}

func (t *Tx) GetRefund(ctx context.Context, tenantID, id string) (*payments.Refund, error) {
	return scanRefund(t.tx.QueryRow(ctx, `SELECT `+refundCols+` FROM refunds WHERE id = $1 AND tenant_id = $2`, id, tenantID))
}

func (t *Tx) UpdateRefund(ctx context.Context, r *payments.Refund, fromStatus string) error {
	tag, err := t.tx.Exec(ctx, `UPDATE refunds SET status = $4, failure_code = $5, updated_at = $6
		WHERE id = $1 AND tenant_id = $2 AND status = $3`, r.ID, r.TenantID, fromStatus, r.Status, r.FailureCode, r.Updated)
	if err != nil {
		return mapErr(err)
	}
	if tag.RowsAffected() == 0 {
		return store.ErrConflict
	}
	return nil
}

func (t *Tx) RefundsToResolve(ctx context.Context, before time.Time, limit int) ([]payments.Refund, error) {
	rows, err := t.tx.Query(ctx, `SELECT `+refundCols+` FROM refunds WHERE status = 'pending' AND updated_at < $1
		ORDER BY updated_at, id LIMIT $2`, before, limit)
	if err != nil {
		return nil, mapErr(err)
	}
	defer rows.Close()
	var out []payments.Refund
	for rows.Next() {
		r, err := scanRefund(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, *r)
	}
	return out, mapErr(rows.Err())
}

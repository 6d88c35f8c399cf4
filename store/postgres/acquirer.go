package postgres

import (
	"context"

	"github.com/perfectpay/perfectpay/payments"
	"github.com/perfectpay/perfectpay/store"
)

var _ payments.AcquirerRepo = (*Tx)(nil)

// SimAuthorization reads the authorization FOR UPDATE: two nodes capturing,
// voiding or refunding one authorization take turns.
func (t *Tx) SimAuthorization(ctx context.Context, ref string) (*payments.SimAuth, error) {
	var a payments.SimAuth
	err := t.tx.QueryRow(ctx, `SELECT approved, auth_code, decline_code, amount, captured, refunded, voided
		FROM sim_authorizations WHERE reference = $1 FOR UPDATE`, ref).Scan(
		&a.Result.Approved, &a.Result.AuthCode, &a.Result.DeclineCode, &a.Amount, &a.Captured, &a.Refunded, &a.Voided)
	if err != nil {
		return nil, mapErr(err)
	}
	return &a, nil
}

func (t *Tx) CreateSimAuthorization(ctx context.Context, ref string, a payments.SimAuth) error {
	tag, err := t.tx.Exec(ctx, `INSERT INTO sim_authorizations
		(reference, approved, auth_code, decline_code, amount, captured, refunded, voided)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (reference) DO NOTHING`,
		ref, a.Result.Approved, a.Result.AuthCode, a.Result.DeclineCode, a.Amount, a.Captured, a.Refunded, a.Voided)
	if err != nil {
		return mapErr(err)
	}
	if tag.RowsAffected() == 0 {
		return store.ErrConflict
	}
	return nil
}

func (t *Tx) UpdateSimAuthorization(ctx context.Context, ref string, a payments.SimAuth) error {
	tag, err := t.tx.Exec(ctx, `UPDATE sim_authorizations SET captured = $2, refunded = $3, voided = $4 WHERE reference = $1`,
		ref, a.Captured, a.Refunded, a.Voided)
	if err != nil {
		return mapErr(err)
	}
	if tag.RowsAffected() == 0 {
		return store.ErrNotFound
	}
	return nil
}

func (t *Tx) SimRefund(ctx context.Context, ref string) (*payments.SimRefund, error) {
	var r payments.SimRefund
	err := t.tx.QueryRow(ctx, `SELECT charge_reference, amount, approved, decline_code FROM sim_refunds WHERE reference = $1`, ref).Scan(
		&r.ChargeRef, &r.Amount, &r.Result.Approved, &r.Result.DeclineCode)
	if err != nil {
		return nil, mapErr(err)
	}
	return &r, nil
}

func (t *Tx) CreateSimRefund(ctx context.Context, ref string, r payments.SimRefund) error {
	tag, err := t.tx.Exec(ctx, `INSERT INTO sim_refunds (reference, charge_reference, amount, approved, decline_code)
		VALUES ($1, $2, $3, $4, $5) ON CONFLICT (reference) DO NOTHING`,
		ref, r.ChargeRef, r.Amount, r.Result.Approved, r.Result.DeclineCode)
	if err != nil {
		return mapErr(err)
	}
	if tag.RowsAffected() == 0 {
		return store.ErrConflict
	}
	return nil
}

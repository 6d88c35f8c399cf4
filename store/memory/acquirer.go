package memory

import (
	"context"

	"github.com/perfectpay/perfectpay/payments"
	"github.com/perfectpay/perfectpay/store"
)

var _ payments.AcquirerRepo = (*Tx)(nil)

// acquirerData is the simulated acquirer's ledger, by reference.
type acquirerData struct {
	auths   table[string, payments.SimAuth]
	refunds table[string, payments.SimRefund]
}

func newAcquirerData() acquirerData {
	return acquirerData{auths: table[string, payments.SimAuth]{}, refunds: table[string, payments.SimRefund]{}}
}

func (tx *Tx) SimAuthorization(_ context.Context, ref string) (*payments.SimAuth, error) {
	a, ok := tx.d.acquirer.auths[ref]
	if !ok {
		return nil, store.ErrNotFound
	}
	return &a, nil
}

func (tx *Tx) CreateSimAuthorization(_ context.Context, ref string, a payments.SimAuth) error {
	if _, ok := tx.d.acquirer.auths[ref]; ok {
		return store.ErrConflict
	}
	put(tx, tx.d.acquirer.auths, ref, a)
	return nil
}

func (tx *Tx) UpdateSimAuthorization(_ context.Context, ref string, a payments.SimAuth) error {
	old, ok := tx.d.acquirer.auths[ref]
	if !ok {
		return store.ErrNotFound
	}
	// The decision and the authorized amount never change.
	old.Captured, old.Refunded, old.Voided = a.Captured, a.Refunded, a.Voided
	put(tx, tx.d.acquirer.auths, ref, old)
	return nil
}

func (tx *Tx) SimRefund(_ context.Context, ref string) (*payments.SimRefund, error) {
	r, ok := tx.d.acquirer.refunds[ref]
	if !ok {
		return nil, store.ErrNotFound
	}
	return &r, nil
}

func (tx *Tx) CreateSimRefund(_ context.Context, ref string, r payments.SimRefund) error {
	if _, ok := tx.d.acquirer.refunds[ref]; ok {
		return store.ErrConflict
	}
	put(tx, tx.d.acquirer.refunds, ref, r)
	return nil
}

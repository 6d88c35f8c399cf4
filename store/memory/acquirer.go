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
	return find(tx.d.acquirer.auths, ref)
}

func (tx *Tx) CreateSimAuthorization(_ context.Context, ref string, a payments.SimAuth) error {
	return insert(tx, tx.d.acquirer.auths, ref, a)
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
	return find(tx.d.acquirer.refunds, ref)
}

func (tx *Tx) CreateSimRefund(_ context.Context, ref string, r payments.SimRefund) error {
	return insert(tx, tx.d.acquirer.refunds, ref, r)
}

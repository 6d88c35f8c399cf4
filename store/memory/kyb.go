package memory

import (
	"context"

	"github.com/perfectpay/perfectpay/accounts"
	"github.com/perfectpay/perfectpay/store"
)

var _ accounts.VerificationRepo = (*Tx)(nil)

func (tx *Tx) GetVerification(_ context.Context, tenantID string) (*accounts.Verification, error) {
	v, ok := tx.d.pipeline.verifications[tenantID]
	if !ok {
		return nil, store.ErrNotFound
	}
	return &v, nil
}

func (tx *Tx) PutVerification(_ context.Context, v *accounts.Verification) error {
	if _, ok := tx.d.tenants[v.TenantID]; !ok {
		return store.ErrConflict // the foreign key
	}
	put(tx, tx.d.pipeline.verifications, v.TenantID, *v)
	return nil
}

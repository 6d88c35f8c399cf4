package postgres

import (
	"context"

	"github.com/perfectpay/perfectpay/accounts"
	"github.com/perfectpay/perfectpay/store"
)

var _ accounts.ErasureRepo = (*Tx)(nil)

func (t *Tx) SetUserEmail(ctx context.Context, tenantID, id, email string) error {
	tag, err := t.tx.Exec(ctx, `UPDATE users SET email = $3 WHERE id = $1 AND tenant_id = $2`, id, tenantID, email)
	if err != nil {
		return mapErr(err)
	}
	if tag.RowsAffected() == 0 {
		return store.ErrNotFound
	}
	return nil
}

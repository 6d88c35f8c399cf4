package memory

import (
	"context"

	"github.com/perfectpay/perfectpay/accounts"
	"github.com/perfectpay/perfectpay/store"
)

var _ accounts.ErasureRepo = (*Tx)(nil)

func (tx *Tx) SetUserEmail(_ context.Context, tenantID, id, email string) error {
	p := tx.people()
	u, ok := p.users[id]
	if !ok || u.TenantID != tenantID {
		return store.ErrNotFound
	}
	if other, ok := p.byEmail[tenantID+"/"+email]; ok && other != id {
		return store.ErrConflict
	}
	del(tx, p.byEmail, tenantID+"/"+u.Email)
	c := u.Clone()
	c.Email = email
	put(tx, p.users, id, *c)
	put(tx, p.byEmail, tenantID+"/"+email, id)
	return nil
}

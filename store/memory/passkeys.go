package memory

import (
	"context"
	"slices"
	"time"

	"github.com/perfectpay/perfectpay/accounts"
	"github.com/perfectpay/perfectpay/store"
)

var _ accounts.PasskeyRepo = (*Tx)(nil)

func clonePasskey(k accounts.Passkey) accounts.Passkey {
	k.ID, k.PublicKey, k.AAGUID = slices.Clone(k.ID), slices.Clone(k.PublicKey), slices.Clone(k.AAGUID)
	k.Transports = slices.Clone(k.Transports)
	if k.LastUsedAt != nil {
		t := *k.LastUsedAt
		k.LastUsedAt = &t
	}
	return k
}

func (tx *Tx) AddPasskey(_ context.Context, k *accounts.Passkey) error {
	p := tx.people()
	if _, ok := p.passkeys[string(k.ID)]; ok {
		return store.ErrConflict
	}
	if u, ok := p.users[k.UserID]; !ok || u.TenantID != k.TenantID {
		return store.ErrNotFound
	}
	put(tx, p.passkeys, string(k.ID), clonePasskey(*k))
	return nil
}

func (tx *Tx) ListPasskeys(_ context.Context, tenantID, userID string) ([]accounts.Passkey, error) {
	var out []accounts.Passkey
	for _, k := range tx.people().passkeys {
		if k.TenantID == tenantID && k.UserID == userID {
			out = append(out, clonePasskey(k))
		}
	}
	slices.SortFunc(out, func(a, b accounts.Passkey) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return slices.Compare(a.ID, b.ID)
	})
	return out, nil
}

func (tx *Tx) UsePasskey(_ context.Context, tenantID, userID string, id []byte, signCount uint32, at time.Time) error {
	p := tx.people()
	k, ok := p.passkeys[string(id)]
	if !ok || k.TenantID != tenantID || k.UserID != userID {
		return store.ErrNotFound
	}
	k = clonePasskey(k)
	k.SignCount, k.LastUsedAt = signCount, &at
	put(tx, p.passkeys, string(id), k)
	return nil
}

package memory

import (
	"cmp"
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

// userPasskey is a passkey's key in passkeysByUser: id is its credential
// id, the table's key.
type userPasskey struct{ tenantID, userID, id string }

func compareUserPasskeys(a, b userPasskey) int {
	return cmp.Or(cmp.Compare(a.tenantID, b.tenantID), cmp.Compare(a.userID, b.userID), cmp.Compare(a.id, b.id))
}

// userPasskeys are the credential ids of the user's passkeys, ascending,
// read from passkeysByUser from the user's first key.
func (p *peopleData) userPasskeys(tenantID, userID string) []string {
	var ids []string
	p.passkeysByUser.walkFrom(userPasskey{tenantID, userID, ""}, func(k userPasskey) bool {
		if k.tenantID != tenantID || k.userID != userID {
			return false
		}
		ids = append(ids, k.id)
		return true
	})
	return ids
}

func (tx *Tx) AddPasskey(_ context.Context, k *accounts.Passkey) error {
	p := tx.people()
	id := string(k.ID)
	if _, ok := p.passkeys[id]; ok {
		return store.ErrConflict
	}
	if u, ok := p.users[k.UserID]; !ok || u.TenantID != k.TenantID {
		return store.ErrNotFound
	}
	c := clonePasskey(*k)
	put(tx, p.passkeys, id, c)
	p.passkeysByUser.add(tx, userPasskey{c.TenantID, c.UserID, id})
	return nil
}

// ListPasskeys returns the user's passkeys, oldest first, then by
// credential id. It reads them from passkeysByUser.
func (tx *Tx) ListPasskeys(_ context.Context, tenantID, userID string) ([]accounts.Passkey, error) {
	p := tx.people()
	var out []accounts.Passkey
	for _, id := range p.userPasskeys(tenantID, userID) {
		out = append(out, clonePasskey(p.passkeys[id]))
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

package memory

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/perfectpay/perfectpay/store"
	"github.com/perfectpay/perfectpay/vault"
)

var _ vault.Repo = (*Tx)(nil)

type vaultData struct {
	tenantKeys table[string, vault.TenantKey]
	liveKey    table[string, string] // tenant id -> id of its live key
	// liveByID holds the ids of the keys not destroyed, in order: the KEK
	// rotation pages through them (TenantKeysToRewrap).
	liveByID *ordered[string]
	// liveByVersion counts the keys not destroyed under each KEK version
	// (CountTenantKeys); putTenantKey keeps it.
	liveByVersion table[int, int]

	tokens table[string, vault.Token]
	// shreddable is the token shred's index (see shred.go).
	shreddable *ordered[shredKey]
}

func newVaultData() *vaultData {
	return &vaultData{
		tenantKeys:    table[string, vault.TenantKey]{},
		liveKey:       table[string, string]{},
		liveByID:      newOrdered(strings.Compare, nil),
		liveByVersion: table[int, int]{},
		tokens:        table[string, vault.Token]{},
		shreddable:    newShreddable(),
	}
}

func cloneTenantKey(k vault.TenantKey) vault.TenantKey {
	k.Wrapped = slices.Clone(k.Wrapped)
	k.RewrappedAt = cloneTime(k.RewrappedAt)
	k.DestroyedAt = cloneTime(k.DestroyedAt)
	return k
}

func cloneToken(t vault.Token) vault.Token {
	t.WrappedDEK = slices.Clone(t.WrappedDEK)
	t.Ciphertext = slices.Clone(t.Ciphertext)
	t.DeletedAt = cloneTime(t.DeletedAt)
	return t
}

func (tx *Tx) EnsureTenantKey(_ context.Context, k *vault.TenantKey) (*vault.TenantKey, error) {
	v := tx.d.vault
	if id, ok := v.liveKey[k.TenantID]; ok {
		got := cloneTenantKey(v.tenantKeys[id])
		return &got, nil
	}
	if _, ok := tx.d.tenants[k.TenantID]; !ok {
		return nil, store.ErrNotFound
	}
	if _, ok := v.tenantKeys[k.ID]; ok {
		return nil, store.ErrConflict
	}
	tx.putTenantKey(cloneTenantKey(*k))
	put(tx, v.liveKey, k.TenantID, k.ID)
	if k.DestroyedAt == nil {
		v.liveByID.add(tx, k.ID)
	}
	got := cloneTenantKey(*k)
	return &got, nil
}

func (tx *Tx) GetTenantKey(_ context.Context, id string) (*vault.TenantKey, error) {
	k, ok := tx.d.vault.tenantKeys[id]
	if !ok {
		return nil, store.ErrNotFound
	}
	k = cloneTenantKey(k)
	return &k, nil
}

func (tx *Tx) LiveTenantKey(ctx context.Context, tenantID string) (*vault.TenantKey, error) {
	id, ok := tx.d.vault.liveKey[tenantID]
	if !ok {
		return nil, store.ErrNotFound
	}
	return tx.GetTenantKey(ctx, id)
}

// TenantKeysToRewrap walks the live keys by id from afterID: a rotation
// reads each key once over all its pages.
func (tx *Tx) TenantKeysToRewrap(_ context.Context, version int, afterID string, limit int) ([]vault.TenantKey, error) {
	var out []vault.TenantKey
	if limit <= 0 {
		return out, nil
	}
	v := tx.d.vault
	v.liveByID.walkFrom(afterID, func(id string) bool {
		if k := v.tenantKeys[id]; id > afterID && k.DestroyedAt == nil && k.KEKVersion != version {
			out = append(out, cloneTenantKey(k))
		}
		return len(out) < limit
	})
	return out, nil
}

func (tx *Tx) RewrapTenantKey(_ context.Context, id string, fromVersion, toVersion int, wrapped []byte, at time.Time) error {
	k, ok := tx.d.vault.tenantKeys[id]
	if !ok {
		return store.ErrNotFound
	}
	if k.DestroyedAt != nil || k.KEKVersion != fromVersion {
		return store.ErrConflict
	}
	k.KEKVersion, k.Wrapped, k.RewrappedAt = toVersion, slices.Clone(wrapped), &at
	tx.putTenantKey(k)
	return nil
}

func (tx *Tx) DestroyTenantKey(_ context.Context, tenantID string, at time.Time) (*vault.TenantKey, error) {
	v := tx.d.vault
	id, ok := v.liveKey[tenantID]
	if !ok {
		return nil, store.ErrNotFound
	}
	k := v.tenantKeys[id]
	k.Wrapped, k.DestroyedAt = nil, &at
	tx.putTenantKey(k)
	del(tx, v.liveKey, tenantID)
	v.liveByID.drop(tx, id)
	out := cloneTenantKey(k)
	return &out, nil
}

// putTenantKey writes k, a copy the table may keep, and moves it between
// the counts of liveByVersion as its version or destruction changed:
// every write of a tenant key goes through it.
func (tx *Tx) putTenantKey(k vault.TenantKey) {
	v := tx.d.vault
	old, had := v.tenantKeys[k.ID]
	put(tx, v.tenantKeys, k.ID, k)
	if had && old.DestroyedAt == nil {
		addCount(tx, v.liveByVersion, old.KEKVersion, -1)
	}
	if k.DestroyedAt == nil {
		addCount(tx, v.liveByVersion, k.KEKVersion, 1)
	}
}

// CountTenantKeys copies liveByVersion: one entry per KEK version, not
// one per key.
func (tx *Tx) CountTenantKeys(context.Context) (map[int]int, error) {
	return maps.Clone(map[int]int(tx.d.vault.liveByVersion)), nil
}

func (tx *Tx) CreateToken(_ context.Context, t *vault.Token) error {
	v := tx.d.vault
	if _, ok := v.tokens[t.ID]; ok {
		return store.ErrConflict
	}
	k, ok := v.tenantKeys[t.TenantKeyID]
	if !ok || k.TenantID != t.TenantID {
		return store.ErrNotFound
	}
	tx.putToken(cloneToken(*t))
	return nil
}

func (tx *Tx) GetToken(_ context.Context, tenantID, id string) (*vault.Token, error) {
	t, ok := tx.d.vault.tokens[id]
	if !ok || t.TenantID != tenantID {
		return nil, store.ErrNotFound
	}
	t = cloneToken(t)
	return &t, nil
}

func (tx *Tx) GetTokenAndKey(ctx context.Context, tenantID, id string) (*vault.Token, *vault.TenantKey, error) {
	t, err := tx.GetToken(ctx, tenantID, id)
	if err != nil {
		return nil, nil, err
	}
	k, err := tx.GetTenantKey(ctx, t.TenantKeyID)
	if errors.Is(err, store.ErrNotFound) {
		return t, nil, nil
	}
	return t, k, err
}

func (tx *Tx) DeleteToken(_ context.Context, tenantID, id string, at time.Time) error {
	t, ok := tx.d.vault.tokens[id]
	if !ok || t.TenantID != tenantID || t.DeletedAt != nil {
		return store.ErrNotFound
	}
	t.WrappedDEK, t.Ciphertext, t.DeletedAt = nil, nil, &at
	tx.putToken(t)
	return nil
}

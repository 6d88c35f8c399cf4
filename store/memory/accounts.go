package memory

import (
	"context"
	"slices"

	"github.com/perfectpay/perfectpay/accounts"
	"github.com/perfectpay/perfectpay/store"
)

var _ accounts.Repo = (*Tx)(nil)

func (tx *Tx) CreateTenant(_ context.Context, t *accounts.Tenant) error {
	if _, ok := tx.d.tenants[t.ID]; ok {
		return store.ErrConflict
	}
	put(tx, tx.d.tenants, t.ID, *t)
	return nil
}

func (tx *Tx) GetTenant(_ context.Context, id string) (*accounts.Tenant, error) {
	t, ok := tx.d.tenants[id]
	if !ok {
		return nil, store.ErrNotFound
	}
	return &t, nil
}

func (tx *Tx) UpdateTenant(_ context.Context, t *accounts.Tenant) error {
	if _, ok := tx.d.tenants[t.ID]; !ok {
		return store.ErrNotFound
	}
	put(tx, tx.d.tenants, t.ID, *t)
	return nil
}

func cloneKey(k accounts.APIKey) accounts.APIKey {
	k.Hash = slices.Clone(k.Hash)
	k.Scopes = slices.Clone(k.Scopes)
	return k
}

func (tx *Tx) CreateAPIKey(_ context.Context, k *accounts.APIKey) error {
	if _, ok := tx.d.apiKeys[k.ID]; ok {
		return store.ErrConflict
	}
	if _, ok := tx.d.keyByHash[string(k.Hash)]; ok {
		return store.ErrConflict
	}
	if _, ok := tx.d.tenants[k.TenantID]; !ok {
		return store.ErrNotFound
	}
	tx.putAPIKey(cloneKey(*k))
	put(tx, tx.d.keyByHash, string(k.Hash), k.ID)
	return nil
}

// listedKey is an API key's key in keysByTenant.
func listedKey(k *accounts.APIKey) tenantTimed {
	return tenantTimed{k.TenantID, timedKey{stampOf(k.CreatedAt), k.ID}}
}

// putAPIKey writes k, a copy the table may keep, and moves its entry in
// keysByTenant when its key changed (an update may rewrite the creation):
// every write of an API key goes through it.
func (tx *Tx) putAPIKey(k accounts.APIKey) {
	old, had := tx.d.apiKeys[k.ID]
	put(tx, tx.d.apiKeys, k.ID, k)
	relist(tx, tx.d.keysByTenant, had, listedKey(&old), listedKey(&k))
}

func (tx *Tx) GetAPIKeyByHash(_ context.Context, hash []byte) (*accounts.APIKey, error) {
	id, ok := tx.d.keyByHash[string(hash)]
	if !ok {
		return nil, store.ErrNotFound
	}
	k := cloneKey(tx.d.apiKeys[id])
	return &k, nil
}

func (tx *Tx) GetAPIKeyAndTenant(ctx context.Context, hash []byte) (*accounts.APIKey, *accounts.Tenant, error) {
	k, err := tx.GetAPIKeyByHash(ctx, hash)
	if err != nil {
		return nil, nil, err
	}
	t, err := tx.GetTenant(ctx, k.TenantID)
	if err != nil {
		return nil, nil, err
	}
	return k, t, nil
}

func (tx *Tx) GetAPIKey(_ context.Context, tenantID, id string) (*accounts.APIKey, error) {
	k, ok := tx.d.apiKeys[id]
	if !ok || k.TenantID != tenantID {
		return nil, store.ErrNotFound
	}
	k = cloneKey(k)
	return &k, nil
}

// ListAPIKeys reads the tenant's keys, by creation then id, from
// keysByTenant: from the tenant's first key to its last.
func (tx *Tx) ListAPIKeys(_ context.Context, tenantID string) ([]accounts.APIKey, error) {
	var out []accounts.APIKey
	tx.d.keysByTenant.walkFrom(tenantTimed{tenantID, timedKey{at: firstStamp}}, func(k tenantTimed) bool {
		if k.tenantID != tenantID {
			return false
		}
		out = append(out, cloneKey(tx.d.apiKeys[k.id]))
		return true
	})
	return out, nil
}

func (tx *Tx) UpdateAPIKey(_ context.Context, k *accounts.APIKey) error {
	old, ok := tx.d.apiKeys[k.ID]
	if !ok || old.TenantID != k.TenantID {
		return store.ErrNotFound
	}
	tx.putAPIKey(cloneKey(*k))
	return nil
}

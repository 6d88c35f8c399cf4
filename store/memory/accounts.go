package memory

import (
	"context"
	"slices"
	"strings"

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
	put(tx, tx.d.apiKeys, k.ID, cloneKey(*k))
	put(tx, tx.d.keyByHash, string(k.Hash), k.ID)
	return nil
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

func (tx *Tx) ListAPIKeys(_ context.Context, tenantID string) ([]accounts.APIKey, error) {
	var out []accounts.APIKey
	for _, k := range tx.d.apiKeys {
		if k.TenantID == tenantID {
			out = append(out, cloneKey(k))
		}
	}
	slices.SortFunc(out, func(a, b accounts.APIKey) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out, nil
}

func (tx *Tx) UpdateAPIKey(_ context.Context, k *accounts.APIKey) error {
	old, ok := tx.d.apiKeys[k.ID]
	if !ok || old.TenantID != k.TenantID {
		return store.ErrNotFound
	}
	put(tx, tx.d.apiKeys, k.ID, cloneKey(*k))
	return nil
}

package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/perfectpay/perfectpay/accounts"
	"github.com/perfectpay/perfectpay/store"
)

var _ accounts.Repo = (*Tx)(nil)

func (t *Tx) CreateTenant(ctx context.Context, tn *accounts.Tenant) error {
	_, err := t.tx.Exec(ctx, `INSERT INTO tenants (id, name, status, created_at) VALUES ($1, $2, $3, $4)`,
		tn.ID, tn.Name, tn.Status, tn.CreatedAt)
	return mapErr(err)
}

// tenantCols are a tenant's columns as tenantDest scans them, from the
// table named t.
const tenantCols = `t.id, t.name, t.status, t.created_at`

func tenantDest(tn *accounts.Tenant) []any { return []any{&tn.ID, &tn.Name, &tn.Status, &tn.CreatedAt} }

func (t *Tx) GetTenant(ctx context.Context, id string) (*accounts.Tenant, error) {
	var tn accounts.Tenant
	err := t.tx.QueryRow(ctx, `SELECT `+tenantCols+` FROM tenants t WHERE t.id = $1`, id).Scan(tenantDest(&tn)...)
	if err != nil {
		return nil, mapErr(err)
	}
	return &tn, nil
}

func (t *Tx) UpdateTenant(ctx context.Context, tn *accounts.Tenant) error {
	tag, err := t.tx.Exec(ctx, `UPDATE tenants SET name = $2, status = $3 WHERE id = $1`, tn.ID, tn.Name, tn.Status)
	if err != nil {
		return mapErr(err)
	}
	if tag.RowsAffected() == 0 {
		return store.ErrNotFound
	}
	return nil
}

const keyCols = `id, tenant_id, kind, mode, prefix, last4, hash, scopes, name, created_at, expires_at, revoked_at, coalesce(rolled_to, '')`

func scanKey(row pgx.Row) (*accounts.APIKey, error) {
	var k accounts.APIKey
	err := row.Scan(&k.ID, &k.TenantID, &k.Kind, &k.Mode, &k.Prefix, &k.Last4, &k.Hash, &k.Scopes, &k.Name,
		&k.CreatedAt, &k.ExpiresAt, &k.RevokedAt, &k.RolledTo)
	if err != nil {
		return nil, mapErr(err)
	}
	return &k, nil
}

func (t *Tx) CreateAPIKey(ctx context.Context, k *accounts.APIKey) error {
	scopes := k.Scopes
	if scopes == nil {
		scopes = []string{}
	}
	_, err := t.tx.Exec(ctx, `INSERT INTO api_keys (id, tenant_id, kind, mode, prefix, last4, hash, scopes, name, created_at, expires_at, revoked_at, rolled_to)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`,
		k.ID, k.TenantID, k.Kind, k.Mode, k.Prefix, k.Last4, k.Hash, scopes, k.Name, k.CreatedAt,
		nullTime(k.ExpiresAt), nullTime(k.RevokedAt), nullStr(k.RolledTo))
	return mapErr(err)
}

func (t *Tx) GetAPIKeyByHash(ctx context.Context, hash []byte) (*accounts.APIKey, error) {
	return scanKey(t.tx.QueryRow(ctx, `SELECT `+keyCols+` FROM api_keys WHERE hash = $1`, hash))
}

func (t *Tx) GetAPIKeyAndTenant(ctx context.Context, hash []byte) (*accounts.APIKey, *accounts.Tenant, error) {
	var k accounts.APIKey
	var tn accounts.Tenant
	err := t.tx.QueryRow(ctx, `SELECT k.id, k.tenant_id, k.kind, k.mode, k.prefix, k.last4, k.hash, k.scopes, k.name, k.created_at,
		k.expires_at, k.revoked_at, coalesce(k.rolled_to, ''), `+tenantCols+`
		FROM api_keys k JOIN tenants t ON t.id = k.tenant_id WHERE k.hash = $1`, hash).
		Scan(append([]any{&k.ID, &k.TenantID, &k.Kind, &k.Mode, &k.Prefix, &k.Last4, &k.Hash, &k.Scopes, &k.Name,
			&k.CreatedAt, &k.ExpiresAt, &k.RevokedAt, &k.RolledTo}, tenantDest(&tn)...)...)
	if err != nil {
		return nil, nil, mapErr(err)
	}
	return &k, &tn, nil
}

func (t *Tx) GetAPIKey(ctx context.Context, tenantID, id string) (*accounts.APIKey, error) {
	return scanKey(t.tx.QueryRow(ctx, `SELECT `+keyCols+` FROM api_keys WHERE id = $1 AND tenant_id = $2`, id, tenantID))
}

func (t *Tx) ListAPIKeys(ctx context.Context, tenantID string) ([]accounts.APIKey, error) {
	rows, err := t.tx.Query(ctx, `SELECT `+keyCols+` FROM api_keys WHERE tenant_id = $1 ORDER BY created_at, id`, tenantID)
	if err != nil {
		return nil, mapErr(err)
	}
	defer rows.Close()
	var out []accounts.APIKey
	for rows.Next() {
		k, err := scanKey(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, *k)
	}
	return out, mapErr(rows.Err())
}

func (t *Tx) UpdateAPIKey(ctx context.Context, k *accounts.APIKey) error {
	tag, err := t.tx.Exec(ctx, `UPDATE api_keys SET name = $3, expires_at = $4, revoked_at = $5, rolled_to = $6
		WHERE id = $1 AND tenant_id = $2`, k.ID, k.TenantID, k.Name, nullTime(k.ExpiresAt), nullTime(k.RevokedAt), nullStr(k.RolledTo))
	if err != nil {
		return mapErr(err)
	}
	if tag.RowsAffected() == 0 {
		return store.ErrNotFound
	}
	return nil
}

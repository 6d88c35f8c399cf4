package postgres

import (
	"context"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/perfectpay/perfectpay/store"
	"github.com/perfectpay/perfectpay/vault"
)

var _ vault.Repo = (*Tx)(nil)

const tenantKeyCols = `id, tenant_id, kek_version, wrapped, created_at, rewrapped_at, destroyed_at`

func scanTenantKey(row pgx.Row) (*vault.TenantKey, error) {
	var k vault.TenantKey
	if err := row.Scan(&k.ID, &k.TenantID, &k.KEKVersion, &k.Wrapped, &k.CreatedAt, &k.RewrappedAt, &k.DestroyedAt); err != nil {
		return nil, mapErr(err)
	}
	return &k, nil
}

func (t *Tx) EnsureTenantKey(ctx context.Context, k *vault.TenantKey) (*vault.TenantKey, error) {
	// A concurrent first tokenization of the same tenant waits on the
	// unique index and then inserts nothing; the SELECT (a new snapshot
	// under READ COMMITTED) sees the winner's key.
	_, err := t.tx.Exec(ctx, `INSERT INTO vault_tenant_keys (id, tenant_id, kek_version, wrapped, created_at)
		VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tenant_id) WHERE destroyed_at IS NULL DO NOTHING`,
		k.ID, k.TenantID, k.KEKVersion, k.Wrapped, k.CreatedAt)
	if err != nil {
		return nil, mapErr(err)
	}
	return t.LiveTenantKey(ctx, k.TenantID)
}

func (t *Tx) LiveTenantKey(ctx context.Context, tenantID string) (*vault.TenantKey, error) {
	return scanTenantKey(t.tx.QueryRow(ctx, `SELECT `+tenantKeyCols+` FROM vault_tenant_keys
		WHERE tenant_id = $1 AND destroyed_at IS NULL`, tenantID))
}

func (t *Tx) GetTenantKey(ctx context.Context, id string) (*vault.TenantKey, error) {
	return scanTenantKey(t.tx.QueryRow(ctx, `SELECT `+tenantKeyCols+` FROM vault_tenant_keys WHERE id = $1`, id))
}

func (t *Tx) TenantKeysToRewrap(ctx context.Context, version int, afterID string, limit int) ([]vault.TenantKey, error) {
	rows, err := t.tx.Query(ctx, `SELECT `+tenantKeyCols+` FROM vault_tenant_keys
		WHERE destroyed_at IS NULL AND kek_version <> $1 AND id > $2 ORDER BY id LIMIT $3`, version, afterID, limit)
	if err != nil {
		return nil, mapErr(err)
	}
	defer rows.Close()
	var out []vault.TenantKey
	for rows.Next() {
		k, err := scanTenantKey(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, *k)
	}
	return out, mapErr(rows.Err())
}

func (t *Tx) RewrapTenantKey(ctx context.Context, id string, fromVersion, toVersion int, wrapped []byte, at time.Time) error {
	tag, err := t.tx.Exec(ctx, `UPDATE vault_tenant_keys SET kek_version = $3, wrapped = $4, rewrapped_at = $5
		WHERE id = $1 AND kek_version = $2 AND destroyed_at IS NULL`, id, fromVersion, toVersion, wrapped, at)
	if err != nil {
		return mapErr(err)
	}
	if tag.RowsAffected() == 0 {
		return store.ErrConflict
	}
	return nil
}

func (t *Tx) DestroyTenantKey(ctx context.Context, tenantID string, at time.Time) (*vault.TenantKey, error) {
	return scanTenantKey(t.tx.QueryRow(ctx, `UPDATE vault_tenant_keys SET wrapped = NULL, destroyed_at = $2
		WHERE tenant_id = $1 AND destroyed_at IS NULL RETURNING `+tenantKeyCols, tenantID, at))
}

func (t *Tx) CountTenantKeys(ctx context.Context) (map[int]int, error) {
	rows, err := t.tx.Query(ctx, `SELECT kek_version, count(*) FROM vault_tenant_keys WHERE destroyed_at IS NULL GROUP BY kek_version`)
	if err != nil {
		return nil, mapErr(err)
	}
	defer rows.Close()
	out := map[int]int{}
	for rows.Next() {
		var v, n int
		if err := rows.Scan(&v, &n); err != nil {
			return nil, mapErr(err)
		}
		out[v] = n
	}
	return out, mapErr(rows.Err())
}

const vaultTokenCols = `id, tenant_id, tenant_key_id, livemode, brand, last4, exp_month, exp_year, fingerprint, cvc_check,
	wrapped_dek, ciphertext, created_at, deleted_at`

func (t *Tx) CreateToken(ctx context.Context, tk *vault.Token) error {
	_, err := t.tx.Exec(ctx, `INSERT INTO vault_tokens (`+vaultTokenCols+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)`,
		tk.ID, tk.TenantID, tk.TenantKeyID, tk.Livemode, tk.Brand, tk.Last4, tk.ExpMonth, tk.ExpYear, tk.Fingerprint,
		tk.CVCCheck, tk.WrappedDEK, tk.Ciphertext, tk.CreatedAt, tk.DeletedAt)
	return mapErr(err)
}

func (t *Tx) GetToken(ctx context.Context, tenantID, id string) (*vault.Token, error) {
	var tk vault.Token
	err := t.tx.QueryRow(ctx, `SELECT `+vaultTokenCols+` FROM vault_tokens WHERE id = $1 AND tenant_id = $2`, id, tenantID).
		Scan(tokenDest(&tk)...)
	if err != nil {
		return nil, mapErr(err)
	}
	return &tk, nil
}

// tokenDest is where a row of vaultTokenCols is scanned.
func tokenDest(tk *vault.Token) []any {
	return []any{&tk.ID, &tk.TenantID, &tk.TenantKeyID, &tk.Livemode, &tk.Brand, &tk.Last4, &tk.ExpMonth, &tk.ExpYear,
		&tk.Fingerprint, &tk.CVCCheck, &tk.WrappedDEK, &tk.Ciphertext, &tk.CreatedAt, &tk.DeletedAt}
}

// tokenAndKeySQL reads a token with its tenant key (NULLs when the key's
// row is gone).
var tokenAndKeySQL = `SELECT ` + qualified("t", vaultTokenCols) + `, ` + qualified("k", tenantKeyCols) + `
	FROM vault_tokens t LEFT JOIN vault_tenant_keys k ON k.id = t.tenant_key_id
	WHERE t.id = $1 AND t.tenant_id = $2`

// qualified prefixes each column of a column list with the table alias a.
func qualified(a, cols string) string {
	fields := strings.Split(cols, ",")
	for i, f := range fields {
		fields[i] = a + "." + strings.TrimSpace(f)
	}
	return strings.Join(fields, ", ")
}

// GetTokenAndKey reads the token and its tenant key in one statement, so
// revealing a card costs the charge transaction one read, not two.
func (t *Tx) GetTokenAndKey(ctx context.Context, tenantID, id string) (*vault.Token, *vault.TenantKey, error) {
	var tk vault.Token
	var (
		kID, kTenant   *string
		kVersion       *int
		kWrapped       []byte
		kCreated       *time.Time
		kRewrapped, kD *time.Time
	)
	err := t.tx.QueryRow(ctx, tokenAndKeySQL, id, tenantID).
		Scan(append(tokenDest(&tk), &kID, &kTenant, &kVersion, &kWrapped, &kCreated, &kRewrapped, &kD)...)
	if err != nil {
		return nil, nil, mapErr(err)
	}
	if kID == nil {
		return &tk, nil, nil
	}
	k := &vault.TenantKey{ID: *kID, TenantID: *kTenant, KEKVersion: *kVersion, Wrapped: kWrapped,
		CreatedAt: *kCreated, RewrappedAt: kRewrapped, DestroyedAt: kD}
	return &tk, k, nil
}

func (t *Tx) DeleteToken(ctx context.Context, tenantID, id string, at time.Time) error {
	tag, err := t.tx.Exec(ctx, `UPDATE vault_tokens SET wrapped_dek = NULL, ciphertext = NULL, deleted_at = $3
		WHERE id = $1 AND tenant_id = $2 AND deleted_at IS NULL`, id, tenantID, at)
	if err != nil {
		return mapErr(err)
	}
	if tag.RowsAffected() == 0 {
		return store.ErrNotFound
	}
	return nil
}

package postgres

import (
	"context"
	"time"

	"github.com/perfectpay/perfectpay/accounts"
	"github.com/perfectpay/perfectpay/store"
)

var _ accounts.PasskeyRepo = (*Tx)(nil)

func (t *Tx) AddPasskey(ctx context.Context, k *accounts.Passkey) error {
	tr := k.Transports
	if tr == nil {
		tr = []string{}
	}
	_, err := t.tx.Exec(ctx, `INSERT INTO user_passkeys (id, tenant_id, user_id, name, public_key, attestation_type, aaguid,
		sign_count, transports, backup_eligible, backup_state, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
		k.ID, k.TenantID, k.UserID, k.Name, k.PublicKey, k.AttestationType, k.AAGUID, int64(k.SignCount), tr,
		k.BackupEligible, k.BackupState, k.CreatedAt)
	return mapErr(err)
}

func (t *Tx) ListPasskeys(ctx context.Context, tenantID, userID string) ([]accounts.Passkey, error) {
	rows, err := t.tx.Query(ctx, `SELECT id, tenant_id, user_id, name, public_key, attestation_type, aaguid, sign_count, transports,
		backup_eligible, backup_state, created_at, last_used_at FROM user_passkeys WHERE tenant_id = $1 AND user_id = $2
		ORDER BY created_at, id`, tenantID, userID)
	if err != nil {
		return nil, mapErr(err)
	}
	defer rows.Close()
	var out []accounts.Passkey
	for rows.Next() {
		var k accounts.Passkey
		var count int64
		if err := rows.Scan(&k.ID, &k.TenantID, &k.UserID, &k.Name, &k.PublicKey, &k.AttestationType, &k.AAGUID, &count,
			&k.Transports, &k.BackupEligible, &k.BackupState, &k.CreatedAt, &k.LastUsedAt); err != nil {
			return nil, mapErr(err)
		}
		k.SignCount = uint32(min(max(count, 0), 1<<32-1))
		out = append(out, k)
	}
	return out, mapErr(rows.Err())
}

func (t *Tx) UsePasskey(ctx context.Context, tenantID, userID string, id []byte, signCount uint32, at time.Time) error {
	tag, err := t.tx.Exec(ctx, `UPDATE user_passkeys SET sign_count = $4, last_used_at = $5
		WHERE id = $1 AND tenant_id = $2 AND user_id = $3`, id, tenantID, userID, int64(signCount), at)
	if err != nil {
		return mapErr(err)
	}
	if tag.RowsAffected() == 0 {
		return store.ErrNotFound
	}
	return nil
}

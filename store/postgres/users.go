package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/perfectpay/perfectpay/accounts"
	"github.com/perfectpay/perfectpay/store"
)

var _ accounts.UserRepo = (*Tx)(nil)

const userCols = `id, tenant_id, kind, role, email, name, status, password_hash, totp_sealed, totp_pending, totp_last_step,
	failed_logins, locked_until, last_login_at, created_at, updated_at`

func scanUser(row pgx.Row) (*accounts.User, error) {
	var u accounts.User
	err := row.Scan(&u.ID, &u.TenantID, &u.Kind, &u.Role, &u.Email, &u.Name, &u.Status, &u.PasswordHash, &u.TOTPSealed,
		&u.TOTPPending, &u.TOTPLastStep, &u.FailedLogins, &u.LockedUntil, &u.LastLoginAt, &u.CreatedAt, &u.UpdatedAt)
	if err != nil {
		return nil, mapErr(err)
	}
	return &u, nil
}

func (t *Tx) CreateUser(ctx context.Context, u *accounts.User) error {
	_, err := t.tx.Exec(ctx, `INSERT INTO users (`+userCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)`,
		u.ID, u.TenantID, u.Kind, u.Role, u.Email, u.Name, u.Status, u.PasswordHash, u.TOTPSealed, u.TOTPPending, u.TOTPLastStep,
		u.FailedLogins, nullTime(u.LockedUntil), nullTime(u.LastLoginAt), u.CreatedAt, u.UpdatedAt)
	return mapErr(err)
}

func (t *Tx) GetUser(ctx context.Context, tenantID, id string) (*accounts.User, error) {
	return scanUser(t.tx.QueryRow(ctx, `SELECT `+userCols+` FROM users WHERE id = $1 AND tenant_id = $2`, id, tenantID))
}

func (t *Tx) GetUserByEmail(ctx context.Context, tenantID, email string) (*accounts.User, error) {
	return scanUser(t.tx.QueryRow(ctx, `SELECT `+userCols+` FROM users WHERE tenant_id = $1 AND email = $2`, tenantID, email))
}

func (t *Tx) ListUsers(ctx context.Context, f accounts.UserFilter) ([]accounts.User, bool, error) {
	args := []any{f.TenantID, f.Kind, f.Limit + 1}
	after := ""
	if f.StartingAfter != "" {
		var at time.Time
		err := t.tx.QueryRow(ctx, `SELECT created_at FROM users WHERE id = $1 AND tenant_id = $2 AND ($3 = '' OR kind = $3)`,
			f.StartingAfter, f.TenantID, f.Kind).Scan(&at)
		if err != nil {
			return nil, false, mapErr(err)
		}
		args = append(args, at, f.StartingAfter)
		after = ` AND (created_at, id) > ($4, $5)`
	}
	rows, err := t.tx.Query(ctx, `SELECT `+userCols+` FROM users WHERE tenant_id = $1 AND ($2 = '' OR kind = $2)`+after+
		` ORDER BY created_at, id LIMIT $3`, args...)
	if err != nil {
		return nil, false, mapErr(err)
	}
	defer rows.Close()
	var out []accounts.User
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, false, err
		}
		out = append(out, *u)
	}
	if err := rows.Err(); err != nil {
		return nil, false, mapErr(err)
	}
	if len(out) > f.Limit {
		return out[:f.Limit], true, nil
	}
	return out, false, nil
}

func (t *Tx) UpdateUser(ctx context.Context, u *accounts.User) error {
	tag, err := t.tx.Exec(ctx, `UPDATE users SET role = $3, name = $4, status = $5, password_hash = $6, totp_sealed = $7,
		totp_pending = $8, totp_last_step = $9, failed_logins = $10, locked_until = $11, last_login_at = $12, updated_at = $13
		WHERE id = $1 AND tenant_id = $2`,
		u.ID, u.TenantID, u.Role, u.Name, u.Status, u.PasswordHash, u.TOTPSealed, u.TOTPPending, u.TOTPLastStep,
		u.FailedLogins, nullTime(u.LockedUntil), nullTime(u.LastLoginAt), u.UpdatedAt)
	if err != nil {
		return mapErr(err)
	}
	if tag.RowsAffected() == 0 {
		return store.ErrNotFound
	}
	return nil
}

func (t *Tx) FailLogin(ctx context.Context, tenantID, userID string, max int, until time.Time) (*accounts.User, error) {
	return scanUser(t.tx.QueryRow(ctx, `UPDATE users SET
		locked_until = CASE WHEN failed_logins + 1 >= $3 THEN $4 ELSE locked_until END,
		failed_logins = CASE WHEN failed_logins + 1 >= $3 THEN 0 ELSE failed_logins + 1 END
		WHERE id = $1 AND tenant_id = $2 RETURNING `+userCols, userID, tenantID, max, until))
}

const invitationCols = `id, tenant_id, user_id, purpose, token_hash, created_at, expires_at, used_at`

func (t *Tx) CreateInvitation(ctx context.Context, i *accounts.Invitation) error {
	_, err := t.tx.Exec(ctx, `INSERT INTO user_invitations (`+invitationCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		i.ID, i.TenantID, i.UserID, i.Purpose, i.TokenHash, i.CreatedAt, i.ExpiresAt, nullTime(i.UsedAt))
	return mapErr(err)
}

func (t *Tx) GetInvitationByHash(ctx context.Context, hash []byte) (*accounts.Invitation, error) {
	var i accounts.Invitation
	err := t.tx.QueryRow(ctx, `SELECT `+invitationCols+` FROM user_invitations WHERE token_hash = $1`, hash).
		Scan(&i.ID, &i.TenantID, &i.UserID, &i.Purpose, &i.TokenHash, &i.CreatedAt, &i.ExpiresAt, &i.UsedAt)
	if err != nil {
		return nil, mapErr(err)
	}
	return &i, nil
}

func (t *Tx) UseInvitation(ctx context.Context, tenantID, id string, at time.Time) error {
	tag, err := t.tx.Exec(ctx, `UPDATE user_invitations SET used_at = $3 WHERE id = $1 AND tenant_id = $2 AND used_at IS NULL`, id, tenantID, at)
	if err != nil {
		return mapErr(err)
	}
	if tag.RowsAffected() == 1 {
		return nil
	}
	var n int
	if err := t.tx.QueryRow(ctx, `SELECT count(*) FROM user_invitations WHERE id = $1 AND tenant_id = $2`, id, tenantID).Scan(&n); err != nil {
		return mapErr(err)
	}
	if n == 0 {
		return store.ErrNotFound
	}
	return store.ErrConflict
}

func (t *Tx) SetRecoveryCodes(ctx context.Context, tenantID, userID string, hashes [][]byte) error {
	if _, err := t.tx.Exec(ctx, `DELETE FROM user_recovery_codes WHERE tenant_id = $1 AND user_id = $2`, tenantID, userID); err != nil {
		return mapErr(err)
	}
	_, err := t.tx.Exec(ctx, `INSERT INTO user_recovery_codes (tenant_id, user_id, hash) SELECT $1, $2, h FROM unnest($3::bytea[]) AS h`,
		tenantID, userID, hashes)
	return mapErr(err)
}

func (t *Tx) UseRecoveryCode(ctx context.Context, tenantID, userID string, hash []byte, at time.Time) error {
	tag, err := t.tx.Exec(ctx, `UPDATE user_recovery_codes SET used_at = $4
		WHERE tenant_id = $1 AND user_id = $2 AND hash = $3 AND used_at IS NULL`, tenantID, userID, hash, at)
	if err != nil {
		return mapErr(err)
	}
	if tag.RowsAffected() == 0 {
		return store.ErrNotFound
	}
	return nil
}

func (t *Tx) CountRecoveryCodes(ctx context.Context, tenantID, userID string) (int, error) {
	var n int
	err := t.tx.QueryRow(ctx, `SELECT count(*) FROM user_recovery_codes WHERE tenant_id = $1 AND user_id = $2 AND used_at IS NULL`,
		tenantID, userID).Scan(&n)
	return n, mapErr(err)
}

const sessionCols = `id_hash, ref, tenant_id, user_id, mfa_at, ip, user_agent, created_at, last_seen_at`

func (t *Tx) CreateSession(ctx context.Context, s *accounts.Session) error {
	_, err := t.tx.Exec(ctx, `INSERT INTO user_sessions (`+sessionCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
		s.IDHash, s.Ref, s.TenantID, s.UserID, nullTime(s.MFAAt), s.IP, s.UserAgent, s.CreatedAt, s.LastSeenAt)
	return mapErr(err)
}

func (t *Tx) GetSession(ctx context.Context, idHash []byte) (*accounts.Session, error) {
	var s accounts.Session
	err := t.tx.QueryRow(ctx, `SELECT `+sessionCols+` FROM user_sessions WHERE id_hash = $1`, idHash).
		Scan(&s.IDHash, &s.Ref, &s.TenantID, &s.UserID, &s.MFAAt, &s.IP, &s.UserAgent, &s.CreatedAt, &s.LastSeenAt)
	if err != nil {
		return nil, mapErr(err)
	}
	return &s, nil
}

func (t *Tx) TouchSession(ctx context.Context, idHash []byte, seen time.Time, mfa *time.Time) error {
	tag, err := t.tx.Exec(ctx, `UPDATE user_sessions SET last_seen_at = $2, mfa_at = coalesce($3, mfa_at) WHERE id_hash = $1`,
		idHash, seen, nullTime(mfa))
	if err != nil {
		return mapErr(err)
	}
	if tag.RowsAffected() == 0 {
		return store.ErrNotFound
	}
	return nil
}

func (t *Tx) DeleteSession(ctx context.Context, idHash []byte) error {
	tag, err := t.tx.Exec(ctx, `DELETE FROM user_sessions WHERE id_hash = $1`, idHash)
	if err != nil {
		return mapErr(err)
	}
	if tag.RowsAffected() == 0 {
		return store.ErrNotFound
	}
	return nil
}

func (t *Tx) DeleteUserSessions(ctx context.Context, tenantID, userID string) (int, error) {
	tag, err := t.tx.Exec(ctx, `DELETE FROM user_sessions WHERE tenant_id = $1 AND user_id = $2`, tenantID, userID)
	if err != nil {
		return 0, mapErr(err)
	}
	return int(tag.RowsAffected()), nil
}

func (t *Tx) MarkLogin(ctx context.Context, tenantID, userID, mark string, at time.Time) (bool, error) {
	tag, err := t.tx.Exec(ctx, `INSERT INTO user_login_marks (tenant_id, user_id, mark, first_seen) VALUES ($1, $2, $3, $4)
		ON CONFLICT DO NOTHING`, tenantID, userID, mark, at)
	if err != nil {
		return false, mapErr(err)
	}
	return tag.RowsAffected() == 1, nil
}

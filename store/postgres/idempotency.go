package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/perfectpay/perfectpay/idempotency"
	"github.com/perfectpay/perfectpay/store"
)

var _ idempotency.Repo = (*Tx)(nil)

// ClaimIdempotency inserts the claim; INSERT … ON CONFLICT makes racing
// claims on any number of nodes resolve to exactly one winner. The claim
// names this node's session; an in-progress claim is taken over when its
// lock expired or when its owner's session is no longer connected (the
// node died, or the server restarted since: a node reconnects under a new
// session name). A claim checks its own session with one
// pg_stat_get_activity(pid) lookup; looking another claim's owner up in
// pg_stat_activity happens only on a conflict.
func (t *Tx) ClaimIdempotency(ctx context.Context, r *idempotency.Record) (*idempotency.Record, error) {
	header := r.Header
	if header == nil {
		header = map[string]string{}
	}
	session, pid := t.session()
	var won bool
	err := t.tx.QueryRow(ctx, `INSERT INTO idempotency_keys AS k
		(tenant_id, credential_id, key, method, path, request_hash, state, status, header, body, created_at, locked_until, expires_at, owner)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13,
			(SELECT a.application_name FROM pg_stat_get_activity($15::int) a WHERE a.application_name = $14::text))
		ON CONFLICT (tenant_id, credential_id, key) DO UPDATE SET
			method = EXCLUDED.method, path = EXCLUDED.path, request_hash = EXCLUDED.request_hash,
			state = EXCLUDED.state, status = EXCLUDED.status, header = EXCLUDED.header, body = EXCLUDED.body,
			created_at = EXCLUDED.created_at, locked_until = EXCLUDED.locked_until, expires_at = EXCLUDED.expires_at,
			owner = EXCLUDED.owner
		WHERE (k.state = 'in_progress' AND (k.locked_until <= EXCLUDED.created_at OR (k.owner IS NOT NULL AND NOT EXISTS (
				SELECT 1 FROM pg_stat_activity a WHERE a.application_name = k.owner AND a.datname = current_database()))))
			OR k.expires_at <= EXCLUDED.created_at
		RETURNING true`,
		r.TenantID, r.CredentialID, r.Key, r.Method, r.Path, r.RequestHash, r.State, r.Status, header, r.Body,
		r.CreatedAt, r.LockedUntil, r.ExpiresAt, session, int32(pid)).Scan(&won)
	if err == nil {
		return nil, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return nil, mapErr(err)
	}
	var old idempotency.Record
	var owner *string
	err = t.tx.QueryRow(ctx, `SELECT tenant_id, credential_id, key, method, path, request_hash, state, status, header, body,
		created_at, locked_until, expires_at, owner FROM idempotency_keys WHERE tenant_id = $1 AND credential_id = $2 AND key = $3`,
		r.TenantID, r.CredentialID, r.Key).Scan(&old.TenantID, &old.CredentialID, &old.Key, &old.Method, &old.Path,
		&old.RequestHash, &old.State, &old.Status, &old.Header, &old.Body, &old.CreatedAt, &old.LockedUntil, &old.ExpiresAt, &owner)
	if err != nil {
		return nil, mapErr(err)
	}
	if owner != nil {
		old.Owner = *owner
	}
	return &old, store.ErrConflict
}

// session is this node's session as a claim names it. The claim records
// it only while that session's backend is still connected under that name
// (looked up by pid: one backend, not a scan of pg_stat_activity). Right
// after a server restart, before the node noticed, the old name is dead,
// and a claim naming it could be taken over while its request runs; such a
// claim names no session and holds for its lock instead.
func (t *Tx) session() (string, uint32) {
	if t.s == nil {
		return "", 0
	}
	return t.s.sess.current()
}

func (t *Tx) CompleteIdempotency(ctx context.Context, r *idempotency.Record) error {
	header := r.Header
	if header == nil {
		header = map[string]string{}
	}
	tag, err := t.tx.Exec(ctx, `UPDATE idempotency_keys SET state = $4, status = $5, header = $6, body = $7, expires_at = $8
		WHERE tenant_id = $1 AND credential_id = $2 AND key = $3`,
		r.TenantID, r.CredentialID, r.Key, r.State, r.Status, header, r.Body, r.ExpiresAt)
	if err != nil {
		return mapErr(err)
	}
	if tag.RowsAffected() == 0 {
		return store.ErrNotFound
	}
	return nil
}

func (t *Tx) AnswerIdempotency(ctx context.Context, r *idempotency.Record) error {
	header := r.Header
	if header == nil {
		header = map[string]string{}
	}
	return t.later(ctx, `UPDATE idempotency_keys SET state = $4, status = $5, header = $6, body = $7, expires_at = $8
		WHERE tenant_id = $1 AND credential_id = $2 AND key = $3 AND state = 'in_progress' AND request_hash = $9`,
		[]any{r.TenantID, r.CredentialID, r.Key, r.State, r.Status, header, r.Body, r.ExpiresAt, r.RequestHash}, nil)
}

func (t *Tx) ReleaseIdempotency(ctx context.Context, tenantID, credentialID, key string) error {
	_, err := t.tx.Exec(ctx, `DELETE FROM idempotency_keys WHERE tenant_id = $1 AND credential_id = $2 AND key = $3`,
		tenantID, credentialID, key)
	return mapErr(err)
}

func (t *Tx) AbandonIdempotency(ctx context.Context, r *idempotency.Record) error {
	_, err := t.tx.Exec(ctx, `DELETE FROM idempotency_keys WHERE tenant_id = $1 AND credential_id = $2 AND key = $3
		AND state = 'in_progress' AND created_at = $4 AND request_hash = $5`,
		r.TenantID, r.CredentialID, r.Key, r.CreatedAt, r.RequestHash)
	return mapErr(err)
}

func (t *Tx) PruneIdempotency(ctx context.Context, before time.Time) (int, error) {
	tag, err := t.tx.Exec(ctx, `DELETE FROM idempotency_keys WHERE expires_at < $1`, before)
	if err != nil {
		return 0, mapErr(err)
	}
	return int(tag.RowsAffected()), nil
}

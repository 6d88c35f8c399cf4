package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/perfectpay/perfectpay/authz"
	"github.com/perfectpay/perfectpay/store"
)

var _ authz.Repo = (*Tx)(nil)
var _ authz.Listener = (*Store)(nil)

// authzChannel is the LISTEN/NOTIFY channel of the issuer's caches.
const authzChannel = "perfectpay_authz"

const agentCols = `id, tenant_id, name, status, auth_method, coalesce(jwks::text, ''), secret_hash, grant_types, scopes,
	audiences, created_at, updated_at, suspended_at, revoked_at, redirect_uris, backchannel_mode, backchannel_endpoint`

func scanAgent(row pgx.Row) (*authz.Agent, error) {
	var a authz.Agent
	var jwks string
	err := row.Scan(&a.ID, &a.TenantID, &a.Name, &a.Status, &a.AuthMethod, &jwks, &a.SecretHash, &a.GrantTypes, &a.Scopes,
		&a.Audiences, &a.CreatedAt, &a.UpdatedAt, &a.SuspendedAt, &a.RevokedAt, &a.RedirectURIs, &a.BackchannelMode, &a.BackchannelEndpoint)
	if err != nil {
		return nil, mapErr(err)
	}
	if jwks != "" {
		a.JWKS = json.RawMessage(jwks)
	}
	return &a, nil
}

func nullJSON(raw json.RawMessage) any {
	if len(raw) == 0 {
		return nil
	}
	return string(raw)
}

func strs(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func (t *Tx) CreateAgent(ctx context.Context, a *authz.Agent) error {
	_, err := t.tx.Exec(ctx, `INSERT INTO agents (id, tenant_id, name, status, auth_method, jwks, secret_hash, grant_types, scopes,
		audiences, created_at, updated_at, suspended_at, revoked_at, redirect_uris, backchannel_mode, backchannel_endpoint)
		VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)`,
		a.ID, a.TenantID, a.Name, a.Status, a.AuthMethod, nullJSON(a.JWKS), a.SecretHash, strs(a.GrantTypes), strs(a.Scopes),
		strs(a.Audiences), a.CreatedAt, a.UpdatedAt, nullTime(a.SuspendedAt), nullTime(a.RevokedAt),
		strs(a.RedirectURIs), a.BackchannelMode, a.BackchannelEndpoint)
	return mapErr(err)
}

func (t *Tx) GetAgent(ctx context.Context, id string) (*authz.Agent, error) {
	return scanAgent(t.tx.QueryRow(ctx, `SELECT `+agentCols+` FROM agents WHERE id = $1`, id))
}

func (t *Tx) ListAgents(ctx context.Context, tenantID, after string, limit int) ([]authz.Agent, error) {
	if limit <= 0 {
		limit = 1 << 30
	}
	rows, err := t.tx.Query(ctx, `SELECT `+agentCols+` FROM agents WHERE tenant_id = $1
		AND ($2 = '' OR (created_at, id) > (SELECT created_at, id FROM agents WHERE id = $2 AND tenant_id = $1))
		ORDER BY created_at, id LIMIT $3`, tenantID, after, limit)
	if err != nil {
		return nil, mapErr(err)
	}
	defer rows.Close()
	out := []authz.Agent{}
	for rows.Next() {
		a, err := scanAgent(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, *a)
	}
	return out, mapErr(rows.Err())
}

func (t *Tx) UpdateAgent(ctx context.Context, a *authz.Agent) error {
	tag, err := t.tx.Exec(ctx, `UPDATE agents SET name = $3, status = $4, auth_method = $5, jwks = $6::jsonb, secret_hash = $7,
		grant_types = $8, scopes = $9, audiences = $10, updated_at = $11, suspended_at = $12, revoked_at = $13
		WHERE id = $1 AND tenant_id = $2`,
		a.ID, a.TenantID, a.Name, a.Status, a.AuthMethod, nullJSON(a.JWKS), a.SecretHash, strs(a.GrantTypes), strs(a.Scopes),
		strs(a.Audiences), a.UpdatedAt, nullTime(a.SuspendedAt), nullTime(a.RevokedAt))
	if err != nil {
		return mapErr(err)
	}
	if tag.RowsAffected() == 0 {
		return store.ErrNotFound
	}
	return nil
}

// UseJTI inserts the identifier; an expired record with the same key is
// taken over. Racing inserts on any number of nodes leave one winner.
func (t *Tx) UseJTI(ctx context.Context, ns, jti string, exp time.Time) error {
	var won bool
	err := t.tx.QueryRow(ctx, `INSERT INTO oauth_jtis AS j (ns, jti, expires_at) VALUES ($1, $2, $3)
		ON CONFLICT (ns, jti) DO UPDATE SET expires_at = EXCLUDED.expires_at WHERE j.expires_at <= now()
		RETURNING true`, ns, jti, exp).Scan(&won)
	if errors.Is(err, pgx.ErrNoRows) {
		return store.ErrConflict
	}
	return mapErr(err)
}

const tokenCols = `kind, signature, request_id, client_id, tenant_id, access_signature, active, data::text, created_at, expires_at`

func scanToken(row pgx.Row) (*authz.TokenSession, error) {
	var s authz.TokenSession
	var data string
	if err := row.Scan(&s.Kind, &s.Signature, &s.RequestID, &s.ClientID, &s.TenantID, &s.AccessSignature, &s.Active,
		&data, &s.CreatedAt, &s.ExpiresAt); err != nil {
		return nil, mapErr(err)
	}
	s.Data = json.RawMessage(data)
	return &s, nil
}

func (t *Tx) CreateTokenSession(ctx context.Context, s *authz.TokenSession) error {
	data := string(s.Data)
	if data == "" {
		data = "{}"
	}
	// Queued with the transaction's next round trip (the token's audit
	// entry, or COMMIT): a batch of issued tokens costs a round trip, not
	// one per token. A duplicate fails the transaction there.
	return t.laterRow(ctx, tokenInsert,
		[]any{s.Kind, s.Signature, s.RequestID, s.ClientID, s.TenantID, s.AccessSignature, s.Active, data, s.CreatedAt, s.ExpiresAt})
}

// tokenInsert stores token sessions, a batch's in one statement.
var tokenInsert = &merger{
	single: `INSERT INTO oauth_tokens (kind, signature, request_id, client_id, tenant_id, access_signature, active,
		data, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9, $10)`,
	multi: func(rows [][]any) (string, []any) {
		return `INSERT INTO oauth_tokens (kind, signature, request_id, client_id, tenant_id, access_signature, active,
			data, created_at, expires_at)
			SELECT kind, signature, request_id, client_id, tenant_id, access_signature, active, data::jsonb, created_at, expires_at
			FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bool[], $8::text[],
				$9::timestamptz[], $10::timestamptz[])
			AS u(kind, signature, request_id, client_id, tenant_id, access_signature, active, data, created_at, expires_at)`,
			columns(rows, "text", "text", "text", "text", "text", "text", "bool", "text", "timestamptz", "timestamptz")
	},
}

func (t *Tx) GetTokenSession(ctx context.Context, kind, signature string) (*authz.TokenSession, error) {
	return scanToken(t.tx.QueryRow(ctx, `SELECT `+tokenCols+` FROM oauth_tokens WHERE kind = $1 AND signature = $2`, kind, signature))
}

func (t *Tx) DeleteTokenSession(ctx context.Context, kind, signature string) error {
	_, err := t.tx.Exec(ctx, `DELETE FROM oauth_tokens WHERE kind = $1 AND signature = $2`, kind, signature)
	return mapErr(err)
}

func (t *Tx) DeactivateTokenSession(ctx context.Context, kind, signature string) error {
	var active bool
	err := t.tx.QueryRow(ctx, `SELECT active FROM oauth_tokens WHERE kind = $1 AND signature = $2 FOR UPDATE`, kind, signature).Scan(&active)
	if err != nil {
		return mapErr(err)
	}
	if !active {
		return store.ErrConflict
	}
	_, err = t.tx.Exec(ctx, `UPDATE oauth_tokens SET active = false WHERE kind = $1 AND signature = $2`, kind, signature)
	return mapErr(err)
}

func (t *Tx) DeactivateTokenFamily(ctx context.Context, requestID string, now time.Time) ([]authz.TokenSession, error) {
	if _, err := t.tx.Exec(ctx, `UPDATE oauth_tokens SET active = false WHERE request_id = $1 AND active`, requestID); err != nil {
		return nil, mapErr(err)
	}
	rows, err := t.tx.Query(ctx, `SELECT `+tokenCols+` FROM oauth_tokens WHERE request_id = $1 AND kind = 'access' AND expires_at > $2
		ORDER BY signature`, requestID, now)
	if err != nil {
		return nil, mapErr(err)
	}
	defer rows.Close()
	var out []authz.TokenSession
	for rows.Next() {
		s, err := scanToken(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, *s)
	}
	return out, mapErr(rows.Err())
}

// IsRevoked reads committed revocations (and the tenant's status) with one
// statement, so inside a READ COMMITTED transaction it sees every
// revocation committed before the statement began.
func (t *Tx) IsRevoked(ctx context.Context, jti, clientID, tenantID string) (string, error) {
	var kind string
	err := t.tx.QueryRow(ctx, `SELECT kind FROM (
			SELECT 'tenant' AS kind, 1 AS o FROM tenants WHERE $3 <> '' AND id = $3 AND status = 'revoked'
			UNION ALL
			SELECT kind, CASE kind WHEN 'tenant' THEN 1 WHEN 'agent' THEN 2 ELSE 3 END FROM revocations
			WHERE ($3 <> '' AND kind = 'tenant' AND id = $3)
			   OR ($2 <> '' AND kind = 'agent' AND id = $2)
			   OR ($1 <> '' AND kind = 'token' AND id = $1)
		) r ORDER BY o LIMIT 1`, jti, clientID, tenantID).Scan(&kind)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", mapErr(err)
	}
	return kind, nil
}

func (t *Tx) Revoke(ctx context.Context, r *authz.Revocation) error {
	_, err := t.tx.Exec(ctx, `INSERT INTO revocations AS r (kind, id, tenant_id, reason, revoked_at, expires_at)
		VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (kind, id) DO UPDATE SET reason = EXCLUDED.reason, revoked_at = EXCLUDED.revoked_at, expires_at = EXCLUDED.expires_at
		WHERE r.reason = 'suspended' AND EXCLUDED.reason <> 'suspended'`,
		r.Kind, r.ID, r.TenantID, r.Reason, r.RevokedAt, nullTime(r.ExpiresAt))
	return mapErr(err)
}

func (t *Tx) Unrevoke(ctx context.Context, kind, id string) error {
	_, err := t.tx.Exec(ctx, `DELETE FROM revocations WHERE kind = $1 AND id = $2`, kind, id)
	return mapErr(err)
}

func (t *Tx) RecordDelegation(ctx context.Context, d *authz.Delegation) error {
	_, err := t.tx.Exec(ctx, `INSERT INTO oauth_delegations (tenant_id, grant_key, delegated_from, created_at)
		VALUES ($1, $2, $3, $4) ON CONFLICT (tenant_id, grant_key) DO NOTHING`, d.TenantID, d.GrantKey, strs(d.DelegatedFrom), d.CreatedAt)
	return mapErr(err)
}

func (t *Tx) GetDelegation(ctx context.Context, tenantID, grantKey string) (*authz.Delegation, error) {
	d := authz.Delegation{TenantID: tenantID, GrantKey: grantKey}
	err := t.tx.QueryRow(ctx, `SELECT delegated_from, created_at FROM oauth_delegations WHERE tenant_id = $1 AND grant_key = $2`,
		tenantID, grantKey).Scan(&d.DelegatedFrom, &d.CreatedAt)
	if err != nil {
		return nil, mapErr(err)
	}
	return &d, nil
}

func (t *Tx) DelegatedFrom(ctx context.Context, jti string) (bool, error) {
	var found bool
	err := t.tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM oauth_delegations WHERE delegated_from @> ARRAY[$1::text])`, jti).Scan(&found)
	return found, mapErr(err)
}

// tokenFamilyLock is the key space of LockTokenFamily's advisory locks
// (the two-key form: this space, the hash of the jti).
const tokenFamilyLock int32 = 730_211

func (t *Tx) LockTokenFamily(ctx context.Context, jti string) error {
	_, err := t.tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, hashtext($2))`, tokenFamilyLock, jti)
	return mapErr(err)
}

func (t *Tx) CreateSigningKey(ctx context.Context, k *authz.SigningKey) error {
	_, err := t.tx.Exec(ctx, `INSERT INTO signing_keys (kid, alg, public_jwk, private_enc, kek_id, created_at, retired_at, expires_at)
		VALUES ($1, $2, $3::jsonb, $4, $5, $6, $7, $8)`,
		k.KID, k.Alg, string(k.PublicJWK), k.PrivateEnc, k.KEKID, k.CreatedAt, nullTime(k.RetiredAt), nullTime(k.ExpiresAt))
	return mapErr(err)
}

func (t *Tx) ListSigningKeys(ctx context.Context) ([]authz.SigningKey, error) {
	rows, err := t.tx.Query(ctx, `SELECT kid, alg, public_jwk::text, private_enc, kek_id, created_at, retired_at, expires_at
		FROM signing_keys ORDER BY created_at DESC, kid DESC`)
	if err != nil {
		return nil, mapErr(err)
	}
	defer rows.Close()
	out := []authz.SigningKey{}
	for rows.Next() {
		var k authz.SigningKey
		var pub string
		if err := rows.Scan(&k.KID, &k.Alg, &pub, &k.PrivateEnc, &k.KEKID, &k.CreatedAt, &k.RetiredAt, &k.ExpiresAt); err != nil {
			return nil, mapErr(err)
		}
		k.PublicJWK = json.RawMessage(pub)
		out = append(out, k)
	}
	return out, mapErr(rows.Err())
}

func (t *Tx) UpdateSigningKey(ctx context.Context, k *authz.SigningKey) error {
	tag, err := t.tx.Exec(ctx, `UPDATE signing_keys SET private_enc = $2, kek_id = $3, retired_at = $4, expires_at = $5 WHERE kid = $1`,
		k.KID, k.PrivateEnc, k.KEKID, nullTime(k.RetiredAt), nullTime(k.ExpiresAt))
	if err != nil {
		return mapErr(err)
	}
	if tag.RowsAffected() == 0 {
		return store.ErrNotFound
	}
	return nil
}

func (t *Tx) DeleteSigningKey(ctx context.Context, kid string) error {
	_, err := t.tx.Exec(ctx, `DELETE FROM signing_keys WHERE kid = $1`, kid)
	return mapErr(err)
}

// signingKeysLock is the transaction advisory lock that serializes key
// rotation across nodes.
const signingKeysLock = 7_302_115_004

func (t *Tx) LockSigningKeys(ctx context.Context) error {
	_, err := t.tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(signingKeysLock))
	return mapErr(err)
}

// NotifyAuthz queues a notification that PostgreSQL delivers to every
// listening node when (and only if) the transaction commits.
func (t *Tx) NotifyAuthz(ctx context.Context, payload string) error {
	_, err := t.tx.Exec(ctx, `SELECT pg_notify($1, $2)`, authzChannel, payload)
	return mapErr(err)
}

func (t *Tx) PruneAuthz(ctx context.Context, before time.Time) (int, error) {
	n := 0
	for _, q := range []string{
		`DELETE FROM oauth_jtis WHERE expires_at < $1`,
		`DELETE FROM oauth_tokens WHERE expires_at < $1`,
		`DELETE FROM revocations WHERE expires_at IS NOT NULL AND expires_at < $1`,
	} {
		tag, err := t.tx.Exec(ctx, q, before)
		if err != nil {
			return n, mapErr(err)
		}
		n += int(tag.RowsAffected())
	}
	return n, nil
}

// ListenAuthz holds one connection on LISTEN and calls fn for every
// notification until ctx ends. When the connection drops it calls fn("*")
// (notifications may have been missed) and listens again.
func (s *Store) ListenAuthz(ctx context.Context, fn func(payload string)) error {
	backoff := 100 * time.Millisecond
	for {
		started := time.Now()
		_ = s.listenOnce(ctx, fn) // it only returns on error
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Since(started) > time.Minute {
			backoff = 100 * time.Millisecond
		}
		fn("*")
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		if backoff < 5*time.Second {
			backoff *= 2
		}
	}
}

func (s *Store) listenOnce(ctx context.Context, fn func(string)) error {
	pc, err := s.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	// A connection that was LISTENing must not go back to the pool.
	conn := pc.Hijack()
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+authzChannel); err != nil {
		return err
	}
	fn("*") // anything before LISTEN took effect may have been missed
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		fn(n.Payload)
	}
}

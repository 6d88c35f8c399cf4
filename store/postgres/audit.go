package postgres

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/perfectpay/perfectpay/audit"
	"github.com/perfectpay/perfectpay/store"
)

var _ audit.Repo = (*Tx)(nil)

// auditInsert inserts an entry numbered by the stripe the CTE named s
// yields, and queues it for the sealer (audit_unsealed).
const auditInsert = `,
		e AS (INSERT INTO audit_events
		(id, tenant_id, actor_type, actor_id, ip, action, target, request_id, method, route, status, data, created_at, content_hash,
		 format, ip_salt, ip_digest, stripe, stripe_seq)
		SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, s.stripe, s.next FROM s
		RETURNING seq, stripe, stripe_seq),
		u AS (INSERT INTO audit_unsealed (seq) SELECT seq FROM e)
		SELECT seq, stripe, stripe_seq FROM e`

// AppendAudit numbers the entry on a stripe no other open transaction
// holds: the lowest unlocked counter row, locked until this transaction
// ends (SKIP LOCKED, so appends never wait on each other). A transaction
// that already holds a stripe is not skipped by its own lock and usually
// takes it again. When every stripe is held it adds one, in the same
// statement. In a transaction the statement is sent with the next round
// trip (see pipeTx), so e.Seq, e.Stripe and e.StripeSeq are set then.
func (t *Tx) AppendAudit(ctx context.Context, e *audit.Entry) error {
	var data any
	if len(e.Data) > 0 {
		data = string(e.Data)
	}
	args := []any{e.ID, e.TenantID, e.ActorType, e.ActorID, e.IP, e.Action, e.Target, e.RequestID, e.Method, e.Route,
		e.Status, data, e.CreatedAt, e.ContentHash, e.Format, e.IPSalt, e.IPDigest}
	return t.laterRow(ctx, auditAppend, args, &e.Seq, &e.Stripe, &e.StripeSeq)
}

// auditAppend numbers and inserts entries; the entries a transaction
// queues together take their stripe once and are inserted by one
// statement, numbered in the order they were appended.
var auditAppend = &merger{
	single: auditAppendSQL,
	multi: func(rows [][]any) (string, []any) {
		args := columns(rows, "text", "text", "text", "text", "text", "text", "text", "text", "text", "text",
			"int", "text null", "timestamptz", "bytea", "int", "bytea", "bytea")
		return auditAppendManySQL, append(args, int64(len(rows)))
	},
}

// auditAppendManySQL is auditAppendSQL for the $18 entries unnested from
// arrays $1…$17: the stripe's counter moves by $18 at once, and the i-th
// entry (from 1) takes the i-th of the numbers it moved past.
const auditAppendManySQL = `WITH free AS (
			UPDATE audit_stripes SET next = next + $18
			WHERE stripe = (SELECT stripe FROM audit_stripes ORDER BY stripe LIMIT 1 FOR UPDATE SKIP LOCKED)
			RETURNING stripe, next),
		added AS (
			INSERT INTO audit_stripes (next) SELECT $18 WHERE NOT EXISTS (SELECT 1 FROM free) RETURNING stripe, next),
		s AS (SELECT stripe, next FROM free UNION ALL SELECT stripe, next FROM added),
		e AS (INSERT INTO audit_events
			(id, tenant_id, actor_type, actor_id, ip, action, target, request_id, method, route, status, data, created_at,
			 content_hash, format, ip_salt, ip_digest, stripe, stripe_seq)
			SELECT u.id, u.tenant_id, u.actor_type, u.actor_id, u.ip, u.action, u.target, u.request_id, u.method, u.route,
				u.status, u.data, u.created_at, u.content_hash, u.format, u.ip_salt, u.ip_digest, s.stripe, s.next - $18 + u.ord
			FROM s, unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
				$9::text[], $10::text[], $11::int[], $12::text[], $13::timestamptz[], $14::bytea[], $15::int[], $16::bytea[],
				$17::bytea[]) WITH ORDINALITY
			AS u(id, tenant_id, actor_type, actor_id, ip, action, target, request_id, method, route, status, data, created_at,
				content_hash, format, ip_salt, ip_digest, ord)
			ORDER BY u.ord
			RETURNING seq, stripe, stripe_seq),
		u AS (INSERT INTO audit_unsealed (seq) SELECT seq FROM e)
		SELECT seq, stripe, stripe_seq FROM e ORDER BY stripe_seq`

// auditAppendSQL takes a free stripe, or adds one when none is free, and
// inserts the entry under its next number.
const auditAppendSQL = `WITH free AS (
			UPDATE audit_stripes SET next = next + 1
			WHERE stripe = (SELECT stripe FROM audit_stripes ORDER BY stripe LIMIT 1 FOR UPDATE SKIP LOCKED)
			RETURNING stripe, next),
		added AS (
			INSERT INTO audit_stripes (next) SELECT 1 WHERE NOT EXISTS (SELECT 1 FROM free) RETURNING stripe, next),
		s AS (SELECT stripe, next FROM free UNION ALL SELECT stripe, next FROM added)` + auditInsert

// auditFrom is where entries are read: each with its seal, if any.
const auditFrom = `audit_events LEFT JOIN audit_seals USING (seq)`

// auditCols are an entry's columns read from auditFrom.
const auditCols = `seq, id, tenant_id, actor_type, actor_id, ip, action, target, request_id, method, route, status,
	data, created_at, content_hash, coalesce(chain_pos, 0), prev_hash, hash, coalesce(stripe, 0), coalesce(stripe_seq, 0),
	format, ip_salt, ip_digest`

func scanAudit(rows pgx.Rows) ([]audit.Entry, error) {
	defer rows.Close()
	var out []audit.Entry
	for rows.Next() {
		var e audit.Entry
		var data *string
		if err := rows.Scan(&e.Seq, &e.ID, &e.TenantID, &e.ActorType, &e.ActorID, &e.IP, &e.Action, &e.Target,
			&e.RequestID, &e.Method, &e.Route, &e.Status, &data, &e.CreatedAt, &e.ContentHash,
			&e.ChainPos, &e.PrevHash, &e.Hash, &e.Stripe, &e.StripeSeq, &e.Format, &e.IPSalt, &e.IPDigest); err != nil {
			return nil, mapErr(err)
		}
		if data != nil {
			e.Data = []byte(*data)
		}
		out = append(out, e)
	}
	return out, mapErr(rows.Err())
}

func (t *Tx) ListAudit(ctx context.Context, f audit.Filter) ([]audit.Entry, error) {
	var where []string
	var args []any
	add := func(cond string, v any) {
		args = append(args, v)
		where = append(where, fmt.Sprintf(cond, len(args)))
	}
	add("seq > $%d", f.AfterSeq)
	if f.TenantID != "" {
		add("tenant_id = $%d", f.TenantID)
	}
	if f.Action != "" {
		add("action = $%d", f.Action)
	}
	if f.Target != "" {
		add("target = $%d", f.Target)
	}
	if !f.Since.IsZero() {
		add("created_at >= $%d", f.Since)
	}
	if !f.Until.IsZero() {
		add("created_at < $%d", f.Until)
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 1000
	}
	rows, err := t.tx.Query(ctx, `SELECT `+auditCols+` FROM `+auditFrom+` WHERE `+strings.Join(where, " AND ")+
		fmt.Sprintf(` ORDER BY seq LIMIT %d`, limit), args...)
	if err != nil {
		return nil, mapErr(err)
	}
	return scanAudit(rows)
}

// UnsealedAudit returns committed rows not yet in the chain. A transaction
// still in flight may commit rows with a lower seq later; they are simply
// sealed in a later batch (chain order is sealing order, not seq order).
func (t *Tx) UnsealedAudit(ctx context.Context, limit int) ([]audit.Entry, error) {
	rows, err := t.tx.Query(ctx, unsealedAuditSQL, limit)
	if err != nil {
		return nil, mapErr(err)
	}
	return scanAudit(rows)
}

// unsealedFrom is the sealer's queue, each entry looked up by its seq:
// the queue is read first, in order, and each entry fetched after (LIMIT
// 1 keeps the planner from flattening the lookup into a join it may order
// the other way; a plan cached while the tables were small read every
// entry of the log, from the oldest, to find the queued ones). A queued
// seq whose entry is gone yields no row, so it takes no place in a batch.
const unsealedFrom = `(SELECT seq AS queued FROM audit_unsealed) q
	CROSS JOIN LATERAL (SELECT * FROM audit_events e WHERE e.seq = q.queued LIMIT 1) audit_events`

// unsealedCols is auditCols for a queued entry, which has no seal yet.
var unsealedCols = strings.Replace(auditCols, "coalesce(chain_pos, 0), prev_hash, hash", "0::bigint, NULL::bytea, NULL::bytea", 1)

var (
	unsealedAuditSQL = `SELECT ` + unsealedCols + ` FROM ` + unsealedFrom + ` ORDER BY q.queued LIMIT $1`
	pendingAuditSQL  = `SELECT seq, content_hash, coalesce(stripe, 0), coalesce(stripe_seq, 0) FROM ` + unsealedFrom +
		` ORDER BY q.queued LIMIT $1`
)

// PendingAudit is UnsealedAudit's entries, only the columns sealing reads.
func (t *Tx) PendingAudit(ctx context.Context, limit int) ([]audit.Pending, error) {
	rows, err := t.tx.Query(ctx, pendingAuditSQL, limit)
	if err != nil {
		return nil, mapErr(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (audit.Pending, error) {
		var p audit.Pending
		err := r.Scan(&p.Seq, &p.ContentHash, &p.Stripe, &p.StripeSeq)
		return p, err
	})
	return out, mapErr(err)
}

func (t *Tx) AuditHead(ctx context.Context) (audit.Anchor, error) {
	var a audit.Anchor
	err := t.tx.QueryRow(ctx, `SELECT head_pos, head_hash, anchor_pos, anchor_hash FROM audit_state WHERE id = 1`).
		Scan(&a.ChainPos, &a.Hash, new(int64), new([]byte))
	if err != nil {
		return a, mapErr(err)
	}
	if a.ChainPos == 0 {
		return t.AuditAnchor(ctx)
	}
	return a, nil
}

// SealAudit advances the head only from where the caller read it, so two
// racing sealers cannot both extend the chain: the loser gets ErrConflict.
func (t *Tx) SealAudit(ctx context.Context, seals []audit.Seal) error {
	if len(seals) == 0 {
		return nil
	}
	first, last := seals[0], seals[len(seals)-1]
	tag, err := t.tx.Exec(ctx, `UPDATE audit_state SET head_pos = $1, head_hash = $2
		WHERE id = 1 AND greatest(head_pos, anchor_pos) = $3`, last.ChainPos, last.Hash, first.ChainPos-1)
	if err != nil {
		return mapErr(err)
	}
	if tag.RowsAffected() == 0 {
		return store.ErrConflict
	}
	seqs := make([]int64, len(seals))
	pos := make([]int64, len(seals))
	prev := make([][]byte, len(seals))
	hash := make([][]byte, len(seals))
	for i, s := range seals {
		seqs[i], pos[i], prev[i], hash[i] = s.Seq, s.ChainPos, s.PrevHash, s.Hash
	}
	// Only entries still queued are sealed: one another sealer took is
	// not, and the count tells.
	tag, err = t.tx.Exec(ctx, `WITH d AS (DELETE FROM audit_unsealed WHERE seq = ANY($1) RETURNING seq)
		INSERT INTO audit_seals (seq, chain_pos, prev_hash, hash)
		SELECT u.seq, u.pos, u.prev, u.hash
		FROM unnest($1::bigint[], $2::bigint[], $3::bytea[], $4::bytea[]) AS u(seq, pos, prev, hash) JOIN d USING (seq)`,
		seqs, pos, prev, hash)
	if err != nil {
		return mapErr(err)
	}
	if int(tag.RowsAffected()) != len(seals) {
		return store.ErrConflict
	}
	return nil
}

func (t *Tx) AuditChain(ctx context.Context, after int64, limit int) ([]audit.Entry, error) {
	rows, err := t.tx.Query(ctx, `SELECT `+auditCols+` FROM audit_seals JOIN audit_events USING (seq)
		WHERE chain_pos > $1 ORDER BY chain_pos LIMIT $2`, after, limit)
	if err != nil {
		return nil, mapErr(err)
	}
	return scanAudit(rows)
}

func (t *Tx) AuditAnchor(ctx context.Context) (audit.Anchor, error) {
	var a audit.Anchor
	err := t.tx.QueryRow(ctx, `SELECT anchor_pos, anchor_hash FROM audit_state WHERE id = 1`).Scan(&a.ChainPos, &a.Hash)
	return a, mapErr(err)
}

func (t *Tx) PruneAudit(ctx context.Context, anchor audit.Anchor, floors map[int]int64, r *audit.Retention) (int, error) {
	tag, err := t.tx.Exec(ctx, `WITH s AS (DELETE FROM audit_seals WHERE chain_pos <= $1 RETURNING seq)
		DELETE FROM audit_events e USING s WHERE e.seq = s.seq`, anchor.ChainPos)
	if err != nil {
		return 0, mapErr(err)
	}
	if _, err := t.tx.Exec(ctx, `UPDATE audit_state SET anchor_pos = $1, anchor_hash = $2 WHERE id = 1`, anchor.ChainPos, anchor.Hash); err != nil {
		return 0, mapErr(err)
	}
	if _, err := t.tx.Exec(ctx, `DELETE FROM audit_checkpoints WHERE chain_pos < $1`, anchor.ChainPos); err != nil {
		return 0, mapErr(err)
	}
	ids := make([]int32, 0, len(floors))
	vals := make([]int64, 0, len(floors))
	for id, f := range floors {
		ids, vals = append(ids, int32(id)), append(vals, f)
	}
	if _, err := t.tx.Exec(ctx, `UPDATE audit_stripes s SET floor = u.floor
		FROM unnest($1::int[], $2::bigint[]) AS u(stripe, floor) WHERE s.stripe = u.stripe`, ids, vals); err != nil {
		return 0, mapErr(err)
	}
	if err := t.tx.QueryRow(ctx, `INSERT INTO audit_retention (from_pos, to_pos, last_hash, kid, jws, created_at)
		VALUES ($1, $2, $3, $4, $5, $6) RETURNING id`, r.FromPos, r.ToPos, r.LastHash, r.KID, r.JWS, r.CreatedAt).Scan(&r.ID); err != nil {
		return 0, mapErr(err)
	}
	return int(tag.RowsAffected()), nil
}

func (t *Tx) AuditNumbered(ctx context.Context, stripe int, from, to int64) ([]audit.Entry, error) {
	rows, err := t.tx.Query(ctx, `SELECT `+auditCols+` FROM `+auditFrom+`
		WHERE stripe = $1 AND stripe_seq BETWEEN $2 AND $3 ORDER BY stripe_seq`, stripe, from, to)
	if err != nil {
		return nil, mapErr(err)
	}
	return scanAudit(rows)
}

func (t *Tx) AuditStripes(ctx context.Context) ([]audit.Stripe, error) {
	rows, err := t.tx.Query(ctx, `SELECT stripe, next, floor FROM audit_stripes ORDER BY stripe`)
	if err != nil {
		return nil, mapErr(err)
	}
	defer rows.Close()
	var out []audit.Stripe
	for rows.Next() {
		var s audit.Stripe
		if err := rows.Scan(&s.ID, &s.Next, &s.Floor); err != nil {
			return nil, mapErr(err)
		}
		out = append(out, s)
	}
	return out, mapErr(rows.Err())
}

func (t *Tx) LockAuditState(ctx context.Context) error {
	_, err := t.tx.Exec(ctx, `SELECT 1 FROM audit_state WHERE id = 1 FOR UPDATE`)
	return mapErr(err)
}

func (t *Tx) AuditKeys(ctx context.Context) ([]audit.Key, error) {
	rows, err := t.tx.Query(ctx, `SELECT kid, public_jwk::text, private_enc, kek_id, created_at, retired_at
		FROM audit_keys ORDER BY created_at DESC, kid`)
	if err != nil {
		return nil, mapErr(err)
	}
	defer rows.Close()
	var out []audit.Key
	for rows.Next() {
		var k audit.Key
		var pub string
		if err := rows.Scan(&k.KID, &pub, &k.PrivateEnc, &k.KEKID, &k.CreatedAt, &k.RetiredAt); err != nil {
			return nil, mapErr(err)
		}
		k.PublicJWK = []byte(pub)
		out = append(out, k)
	}
	return out, mapErr(rows.Err())
}

func (t *Tx) CreateAuditKey(ctx context.Context, k *audit.Key) error {
	_, err := t.tx.Exec(ctx, `INSERT INTO audit_keys (kid, public_jwk, private_enc, kek_id, created_at) VALUES ($1, $2, $3, $4, $5)`,
		k.KID, string(k.PublicJWK), k.PrivateEnc, k.KEKID, k.CreatedAt)
	return mapErr(err)
}

func (t *Tx) RetireAuditKey(ctx context.Context, kid string, at time.Time) error {
	tag, err := t.tx.Exec(ctx, `UPDATE audit_keys SET retired_at = $2 WHERE kid = $1 AND retired_at IS NULL`, kid, at)
	if err != nil {
		return mapErr(err)
	}
	if tag.RowsAffected() == 0 {
		return store.ErrNotFound
	}
	return nil
}

func (t *Tx) AddAuditCheckpoint(ctx context.Context, c *audit.Checkpoint) error {
	return mapErr(t.tx.QueryRow(ctx, `INSERT INTO audit_checkpoints (chain_pos, hash, kid, jws, created_at)
		VALUES ($1, $2, $3, $4, $5) RETURNING id`, c.ChainPos, c.Hash, c.KID, c.JWS, c.CreatedAt).Scan(&c.ID))
}

func scanCheckpoints(rows pgx.Rows) ([]audit.Checkpoint, error) {
	defer rows.Close()
	var out []audit.Checkpoint
	for rows.Next() {
		var c audit.Checkpoint
		if err := rows.Scan(&c.ID, &c.ChainPos, &c.Hash, &c.KID, &c.JWS, &c.CreatedAt); err != nil {
			return nil, mapErr(err)
		}
		out = append(out, c)
	}
	return out, mapErr(rows.Err())
}

func (t *Tx) AuditCheckpoints(ctx context.Context, after int64, limit int) ([]audit.Checkpoint, error) {
	rows, err := t.tx.Query(ctx, `SELECT id, chain_pos, hash, kid, jws, created_at FROM audit_checkpoints
		WHERE id > $1 ORDER BY id LIMIT $2`, after, limit)
	if err != nil {
		return nil, mapErr(err)
	}
	return scanCheckpoints(rows)
}

func (t *Tx) LatestAuditCheckpoint(ctx context.Context) (audit.Checkpoint, error) {
	rows, err := t.tx.Query(ctx, `SELECT id, chain_pos, hash, kid, jws, created_at FROM audit_checkpoints ORDER BY id DESC LIMIT 1`)
	if err != nil {
		return audit.Checkpoint{}, mapErr(err)
	}
	out, err := scanCheckpoints(rows)
	if err != nil {
		return audit.Checkpoint{}, err
	}
	if len(out) == 0 {
		return audit.Checkpoint{}, store.ErrNotFound
	}
	return out[0], nil
}

func (t *Tx) AuditRetentions(ctx context.Context) ([]audit.Retention, error) {
	rows, err := t.tx.Query(ctx, `SELECT id, from_pos, to_pos, last_hash, kid, jws, created_at FROM audit_retention ORDER BY id`)
	if err != nil {
		return nil, mapErr(err)
	}
	defer rows.Close()
	var out []audit.Retention
	for rows.Next() {
		var r audit.Retention
		if err := rows.Scan(&r.ID, &r.FromPos, &r.ToPos, &r.LastHash, &r.KID, &r.JWS, &r.CreatedAt); err != nil {
			return nil, mapErr(err)
		}
		out = append(out, r)
	}
	return out, mapErr(rows.Err())
}

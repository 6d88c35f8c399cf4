package postgres

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/perfectpay/perfectpay/audit"
	"github.com/perfectpay/perfectpay/store"
)

var _ audit.Repo = (*Tx)(nil)

func (t *Tx) AppendAudit(ctx context.Context, e *audit.Entry) error {
	var data any
	if len(e.Data) > 0 {
		data = string(e.Data)
	}
	err := t.tx.QueryRow(ctx, `INSERT INTO audit_events
		(id, tenant_id, actor_type, actor_id, ip, action, target, request_id, method, route, status, data, created_at, content_hash)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING seq`,
		e.ID, e.TenantID, e.ActorType, e.ActorID, e.IP, e.Action, e.Target, e.RequestID, e.Method, e.Route,
		e.Status, data, e.CreatedAt, e.ContentHash).Scan(&e.Seq)
	return mapErr(err)
}

const auditCols = `seq, id, tenant_id, actor_type, actor_id, ip, action, target, request_id, method, route, status,
	data, created_at, content_hash, coalesce(chain_pos, 0), prev_hash, hash`

func scanAudit(rows pgx.Rows) ([]audit.Entry, error) {
	defer rows.Close()
	var out []audit.Entry
	for rows.Next() {
		var e audit.Entry
		var data *string
		if err := rows.Scan(&e.Seq, &e.ID, &e.TenantID, &e.ActorType, &e.ActorID, &e.IP, &e.Action, &e.Target,
			&e.RequestID, &e.Method, &e.Route, &e.Status, &data, &e.CreatedAt, &e.ContentHash,
			&e.ChainPos, &e.PrevHash, &e.Hash); err != nil {
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
	rows, err := t.tx.Query(ctx, `SELECT `+auditCols+` FROM audit_events WHERE `+strings.Join(where, " AND ")+
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
	rows, err := t.tx.Query(ctx, `SELECT `+auditCols+` FROM audit_events
		WHERE chain_pos IS NULL
		ORDER BY seq LIMIT $1`, limit)
	if err != nil {
		return nil, mapErr(err)
	}
	return scanAudit(rows)
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
	tag, err = t.tx.Exec(ctx, `UPDATE audit_events e SET chain_pos = u.pos, prev_hash = u.prev, hash = u.hash
		FROM unnest($1::bigint[], $2::bigint[], $3::bytea[], $4::bytea[]) AS u(seq, pos, prev, hash)
		WHERE e.seq = u.seq AND e.chain_pos IS NULL`, seqs, pos, prev, hash)
	if err != nil {
		return mapErr(err)
	}
	if int(tag.RowsAffected()) != len(seals) {
		return store.ErrConflict
	}
	return nil
}

func (t *Tx) AuditChain(ctx context.Context, after int64, limit int) ([]audit.Entry, error) {
	rows, err := t.tx.Query(ctx, `SELECT `+auditCols+` FROM audit_events
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

func (t *Tx) PruneAudit(ctx context.Context, anchor audit.Anchor) (int, error) {
	tag, err := t.tx.Exec(ctx, `DELETE FROM audit_events WHERE chain_pos IS NOT NULL AND chain_pos <= $1`, anchor.ChainPos)
	if err != nil {
		return 0, mapErr(err)
	}
	if _, err := t.tx.Exec(ctx, `UPDATE audit_state SET anchor_pos = $1, anchor_hash = $2 WHERE id = 1`, anchor.ChainPos, anchor.Hash); err != nil {
		return 0, mapErr(err)
	}
	return int(tag.RowsAffected()), nil
}

package postgres

import (
	"context"
	"encoding/json"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/perfectpay/perfectpay/authz"
	"github.com/perfectpay/perfectpay/store"
)

const authRequestCols = `id, kind, tenant_id, client_id, payer, status, coalesce(details::text, ''), coalesce(granted::text, ''),
	binding_message, data::text, poll_interval, last_polled_at, created_at, updated_at, expires_at`

func scanAuthRequest(row pgx.Row) (*authz.AuthRequest, error) {
	var r authz.AuthRequest
	var details, granted, data string
	err := row.Scan(&r.ID, &r.Kind, &r.TenantID, &r.ClientID, &r.Payer, &r.Status, &details, &granted,
		&r.BindingMessage, &data, &r.PollInterval, &r.LastPolledAt, &r.CreatedAt, &r.UpdatedAt, &r.ExpiresAt)
	if err != nil {
		return nil, mapErr(err)
	}
	if details != "" {
		r.Details = json.RawMessage(details)
	}
	if granted != "" {
		r.Granted = json.RawMessage(granted)
	}
	r.Data = json.RawMessage(data)
	return &r, nil
}

func (t *Tx) CreateAuthRequest(ctx context.Context, r *authz.AuthRequest) error {
	_, err := t.tx.Exec(ctx, `INSERT INTO auth_requests (id, kind, tenant_id, client_id, payer, status, details, granted,
		binding_message, data, poll_interval, last_polled_at, created_at, updated_at, expires_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8::jsonb, $9, $10::jsonb, $11, $12, $13, $14, $15)`,
		r.ID, r.Kind, r.TenantID, r.ClientID, r.Payer, r.Status, nullJSON(r.Details), nullJSON(r.Granted),
		r.BindingMessage, string(r.Data), r.PollInterval, nullTime(r.LastPolledAt), r.CreatedAt, r.UpdatedAt, r.ExpiresAt)
	return mapErr(err)
}

func (t *Tx) GetAuthRequest(ctx context.Context, id string, forUpdate bool) (*authz.AuthRequest, error) {
	q := `SELECT ` + authRequestCols + ` FROM auth_requests WHERE id = $1`
	if forUpdate {
		q += ` FOR UPDATE`
	}
	return scanAuthRequest(t.tx.QueryRow(ctx, q, id))
}

func (t *Tx) UpdateAuthRequest(ctx context.Context, r *authz.AuthRequest, from string) error {
	tag, err := t.tx.Exec(ctx, `UPDATE auth_requests SET status = $2, payer = $3, granted = $4::jsonb, last_polled_at = $5,
		updated_at = $6 WHERE id = $1 AND status = $7`,
		r.ID, r.Status, r.Payer, nullJSON(r.Granted), nullTime(r.LastPolledAt), r.UpdatedAt, from)
	if err != nil {
		return mapErr(err)
	}
	if tag.RowsAffected() == 0 {
		var one int
		if err := t.tx.QueryRow(ctx, `SELECT 1 FROM auth_requests WHERE id = $1`, r.ID).Scan(&one); err != nil {
			return mapErr(err)
		}
		return store.ErrConflict
	}
	return nil
}

func (t *Tx) ListAuthRequests(ctx context.Context, tenantID, payer, status string, limit int) ([]authz.AuthRequest, error) {
	if limit <= 0 {
		limit = 1 << 30
	}
	rows, err := t.tx.Query(ctx, `SELECT `+authRequestCols+` FROM auth_requests
		WHERE tenant_id = $1 AND payer = $2 AND ($3 = '' OR status = $3)
		ORDER BY created_at DESC, id DESC LIMIT $4`, tenantID, payer, status, limit)
	if err != nil {
		return nil, mapErr(err)
	}
	defer rows.Close()
	out := []authz.AuthRequest{}
	for rows.Next() {
		r, err := scanAuthRequest(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, *r)
	}
	return out, mapErr(rows.Err())
}

func (t *Tx) PruneAuthRequests(ctx context.Context, before time.Time) (int, error) {
	tag, err := t.tx.Exec(ctx, `DELETE FROM auth_requests WHERE expires_at < $1`, before)
	if err != nil {
		return 0, mapErr(err)
	}
	return int(tag.RowsAffected()), nil
}

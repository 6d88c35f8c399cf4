package postgres

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/perfectpay/perfectpay/events"
	"github.com/perfectpay/perfectpay/store"
	"github.com/perfectpay/perfectpay/webhooks"
)

var _ webhooks.Repo = (*Tx)(nil)

const endpointCols = `id, tenant_id, url, description, events, status, disabled_reason, secret, prev_secret,
	prev_secret_expires_at, failing_since, created_at, updated_at`

func scanEndpoint(row pgx.Row) (*webhooks.Endpoint, error) {
	var e webhooks.Endpoint
	err := row.Scan(&e.ID, &e.TenantID, &e.URL, &e.Description, &e.Events, &e.Status, &e.DisabledReason,
		&e.Secret, &e.PrevSecret, &e.PrevSecretExpiresAt, &e.FailingSince, &e.CreatedAt, &e.UpdatedAt)
	if err != nil {
		return nil, mapErr(err)
	}
	return &e, nil
}

func (t *Tx) CreateEndpoint(ctx context.Context, e *webhooks.Endpoint) error {
	_, err := t.tx.Exec(ctx, `INSERT INTO webhook_endpoints (`+endpointCols+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`,
		e.ID, e.TenantID, e.URL, e.Description, e.Events, e.Status, e.DisabledReason, e.Secret, e.PrevSecret,
		nullTime(e.PrevSecretExpiresAt), nullTime(e.FailingSince), e.CreatedAt, e.UpdatedAt)
	return mapErr(err)
}

func (t *Tx) GetEndpoint(ctx context.Context, tenantID, id string) (*webhooks.Endpoint, error) {
	return scanEndpoint(t.tx.QueryRow(ctx, `SELECT `+endpointCols+` FROM webhook_endpoints WHERE id = $1 AND tenant_id = $2`, id, tenantID))
}

func (t *Tx) LockEndpoint(ctx context.Context, tenantID, id string) (*webhooks.Endpoint, error) {
	return scanEndpoint(t.tx.QueryRow(ctx, `SELECT `+endpointCols+` FROM webhook_endpoints WHERE id = $1 AND tenant_id = $2 FOR UPDATE`, id, tenantID))
}

func (t *Tx) ListEndpoints(ctx context.Context, tenantID string) ([]webhooks.Endpoint, error) {
	rows, err := t.tx.Query(ctx, `SELECT `+endpointCols+` FROM webhook_endpoints WHERE tenant_id = $1 ORDER BY created_at, id`, tenantID)
	if err != nil {
		return nil, mapErr(err)
	}
	defer rows.Close()
	var out []webhooks.Endpoint
	for rows.Next() {
		e, err := scanEndpoint(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, *e)
	}
	return out, mapErr(rows.Err())
}

func (t *Tx) UpdateEndpoint(ctx context.Context, e *webhooks.Endpoint) error {
	tag, err := t.tx.Exec(ctx, `UPDATE webhook_endpoints SET url = $3, description = $4, events = $5, status = $6,
		disabled_reason = $7, secret = $8, prev_secret = $9, prev_secret_expires_at = $10, failing_since = $11, updated_at = $12
		WHERE id = $1 AND tenant_id = $2`,
		e.ID, e.TenantID, e.URL, e.Description, e.Events, e.Status, e.DisabledReason, e.Secret, e.PrevSecret,
		nullTime(e.PrevSecretExpiresAt), nullTime(e.FailingSince), e.UpdatedAt)
	if err != nil {
		return mapErr(err)
	}
	if tag.RowsAffected() == 0 {
		return store.ErrNotFound
	}
	return nil
}

func (t *Tx) DeleteEndpoint(ctx context.Context, tenantID, id string) error {
	tag, err := t.tx.Exec(ctx, `DELETE FROM webhook_endpoints WHERE id = $1 AND tenant_id = $2`, id, tenantID)
	if err != nil {
		return mapErr(err)
	}
	if tag.RowsAffected() == 0 {
		return store.ErrNotFound
	}
	return nil
}

func (t *Tx) MarkEndpointFailing(ctx context.Context, id string, now time.Time) (time.Time, error) {
	var since time.Time
	err := t.tx.QueryRow(ctx, `UPDATE webhook_endpoints SET failing_since = coalesce(failing_since, $2)
		WHERE id = $1 RETURNING failing_since`, id, now).Scan(&since)
	return since, mapErr(err)
}

func (t *Tx) MarkEndpointHealthy(ctx context.Context, id string) error {
	_, err := t.tx.Exec(ctx, `UPDATE webhook_endpoints SET failing_since = NULL WHERE id = $1 AND failing_since IS NOT NULL`, id)
	return mapErr(err)
}

func (t *Tx) DisableEndpoint(ctx context.Context, tenantID, id, reason string, now time.Time) (bool, error) {
	tag, err := t.tx.Exec(ctx, `UPDATE webhook_endpoints SET status = 'disabled', disabled_reason = $3, updated_at = $4
		WHERE id = $1 AND tenant_id = $2 AND status = 'enabled'`, id, tenantID, reason, now)
	if err != nil {
		return false, mapErr(err)
	}
	return tag.RowsAffected() == 1, nil
}

const eventCols = `id, tenant_id, type, data::text, created_at`

func scanEvents(rows pgx.Rows) ([]events.Event, error) {
	defer rows.Close()
	var out []events.Event
	for rows.Next() {
		var e events.Event
		var data string
		if err := rows.Scan(&e.ID, &e.TenantID, &e.Type, &data, &e.CreatedAt); err != nil {
			return nil, mapErr(err)
		}
		e.Data = []byte(data)
		out = append(out, e)
	}
	return out, mapErr(rows.Err())
}

func (t *Tx) GetEvent(ctx context.Context, tenantID, id string) (*events.Event, error) {
	rows, err := t.tx.Query(ctx, `SELECT `+eventCols+` FROM events WHERE id = $1 AND tenant_id = $2`, id, tenantID)
	if err != nil {
		return nil, mapErr(err)
	}
	evs, err := scanEvents(rows)
	if err != nil {
		return nil, err
	}
	if len(evs) == 0 {
		return nil, store.ErrNotFound
	}
	return &evs[0], nil
}

func (t *Tx) ListEvents(ctx context.Context, f webhooks.EventFilter) ([]events.Event, error) {
	where := []string{"tenant_id = $1"}
	args := []any{f.TenantID}
	add := func(cond string, v any) {
		args = append(args, v)
		where = append(where, fmt.Sprintf(cond, len(args)))
	}
	if f.Type != "" {
		if p, ok := strings.CutSuffix(f.Type, "*"); ok && strings.HasSuffix(p, ".") {
			// Escape LIKE's wildcards in the prefix.
			add(`type LIKE $%d`, strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(p)+"%")
		} else {
			add("type = $%d", f.Type)
		}
	}
	if f.StartingAfter != "" {
		add("seq < (SELECT seq FROM events WHERE id = $%d AND tenant_id = $1)", f.StartingAfter)
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	rows, err := t.tx.Query(ctx, `SELECT `+eventCols+` FROM events WHERE `+strings.Join(where, " AND ")+
		fmt.Sprintf(` ORDER BY seq DESC LIMIT %d`, limit), args...)
	if err != nil {
		return nil, mapErr(err)
	}
	return scanEvents(rows)
}

const deliveryCols = `id, tenant_id, event_id, endpoint_id, status, attempts, next_attempt_at, coalesce(claim_token, ''),
	last_status, last_error, created_at, updated_at, completed_at`

func scanDelivery(row pgx.Row, d *webhooks.Delivery, extra ...any) error {
	dest := append([]any{&d.ID, &d.TenantID, &d.EventID, &d.EndpointID, &d.Status, &d.Attempts, &d.NextAttemptAt,
		&d.ClaimToken, &d.LastStatus, &d.LastError, &d.CreatedAt, &d.UpdatedAt, &d.CompletedAt}, extra...)
	return mapErr(row.Scan(dest...))
}

func (t *Tx) CreateDelivery(ctx context.Context, d *webhooks.Delivery) error {
	tag, err := t.tx.Exec(ctx, `INSERT INTO webhook_deliveries (id, tenant_id, event_id, endpoint_id, status, attempts,
		next_attempt_at, created_at, updated_at)
		SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9 WHERE EXISTS (SELECT 1 FROM events WHERE id = $3 AND tenant_id = $2)`,
		d.ID, d.TenantID, d.EventID, d.EndpointID, d.Status, d.Attempts, d.NextAttemptAt, d.CreatedAt, d.UpdatedAt)
	if err != nil {
		return mapErr(err)
	}
	if tag.RowsAffected() == 0 {
		return store.ErrNotFound
	}
	return nil
}

func (t *Tx) ListDeliveries(ctx context.Context, tenantID, eventID string) ([]webhooks.Delivery, error) {
	rows, err := t.tx.Query(ctx, `SELECT `+deliveryCols+` FROM webhook_deliveries
		WHERE event_id = $1 AND tenant_id = $2 ORDER BY created_at, id`, eventID, tenantID)
	if err != nil {
		return nil, mapErr(err)
	}
	defer rows.Close()
	var out []webhooks.Delivery
	for rows.Next() {
		var d webhooks.Delivery
		if err := scanDelivery(rows, &d); err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, mapErr(rows.Err())
}

func (t *Tx) CancelDeliveries(ctx context.Context, tenantID, endpointID, reason string, now time.Time) (int, error) {
	tag, err := t.tx.Exec(ctx, `UPDATE webhook_deliveries SET status = 'canceled', last_error = $3, updated_at = $4,
		completed_at = $4, claim_token = NULL
		WHERE endpoint_id = $1 AND tenant_id = $2 AND status = 'pending'`, endpointID, tenantID, reason, now)
	if err != nil {
		return 0, mapErr(err)
	}
	return int(tag.RowsAffected()), nil
}

// ClaimDeliveries leases due deliveries. SKIP LOCKED lets dispatchers on
// every node claim side by side without waiting on one another; the lease
// (next_attempt_at moved to leaseUntil) keeps a claimed row from being
// claimed again after this transaction commits.
func (t *Tx) ClaimDeliveries(ctx context.Context, now, leaseUntil time.Time, limit int, token string) ([]webhooks.Claimed, error) {
	rows, err := t.tx.Query(ctx, `WITH due AS (
			SELECT id FROM webhook_deliveries
			WHERE status = 'pending' AND next_attempt_at <= $1
			ORDER BY next_attempt_at
			LIMIT $2
			FOR UPDATE SKIP LOCKED
		), claimed AS (
			UPDATE webhook_deliveries d
			SET attempts = d.attempts + 1, next_attempt_at = $3, claim_token = $4, updated_at = $1
			FROM due WHERE d.id = due.id
			RETURNING d.*
		)
		SELECT c.id, c.tenant_id, c.event_id, c.endpoint_id, c.status, c.attempts, c.next_attempt_at,
		       coalesce(c.claim_token, ''), c.last_status, c.last_error, c.created_at, c.updated_at, c.completed_at,
		       e.type, e.data::text, e.created_at,
		       ep.id, ep.url, ep.description, ep.events, ep.status, ep.disabled_reason, ep.secret, ep.prev_secret,
		       ep.prev_secret_expires_at, ep.failing_since, ep.created_at, ep.updated_at
		FROM claimed c
		JOIN events e ON e.id = c.event_id
		LEFT JOIN webhook_endpoints ep ON ep.id = c.endpoint_id
		ORDER BY c.next_attempt_at, c.id`, now, limit, leaseUntil, token)
	if err != nil {
		return nil, mapErr(err)
	}
	defer rows.Close()
	var out []webhooks.Claimed
	for rows.Next() {
		var c webhooks.Claimed
		var data string
		var epID, epURL, epDesc, epStatus, epReason *string
		var epEvents []string
		var epSecret, epPrev []byte
		var epPrevExp, epFailing, epCreated, epUpdated *time.Time
		err := scanDelivery(rows, &c.Delivery, &c.Event.Type, &data, &c.Event.CreatedAt,
			&epID, &epURL, &epDesc, &epEvents, &epStatus, &epReason, &epSecret, &epPrev,
			&epPrevExp, &epFailing, &epCreated, &epUpdated)
		if err != nil {
			return nil, err
		}
		c.Event.ID, c.Event.TenantID, c.Event.Data = c.Delivery.EventID, c.Delivery.TenantID, []byte(data)
		if epID != nil {
			c.Endpoint = &webhooks.Endpoint{
				ID: *epID, TenantID: c.Delivery.TenantID, URL: *epURL, Description: *epDesc, Events: epEvents,
				Status: *epStatus, DisabledReason: *epReason, Secret: epSecret, PrevSecret: epPrev,
				PrevSecretExpiresAt: epPrevExp, FailingSince: epFailing, CreatedAt: *epCreated, UpdatedAt: *epUpdated,
			}
		}
		out = append(out, c)
	}
	return out, mapErr(rows.Err())
}

func (t *Tx) CompleteDelivery(ctx context.Context, d *webhooks.Delivery) (bool, error) {
	tag, err := t.tx.Exec(ctx, `UPDATE webhook_deliveries SET status = $3, attempts = $4, next_attempt_at = $5,
		last_status = $6, last_error = $7, updated_at = $8, completed_at = $9, claim_token = NULL
		WHERE id = $1 AND claim_token = $2 AND status = 'pending'`,
		d.ID, d.ClaimToken, d.Status, d.Attempts, d.NextAttemptAt, d.LastStatus, d.LastError, d.UpdatedAt, nullTime(d.CompletedAt))
	if err != nil {
		return false, mapErr(err)
	}
	return tag.RowsAffected() == 1, nil
}

func (t *Tx) AppendAttempt(ctx context.Context, a *webhooks.Attempt) error {
	err := t.tx.QueryRow(ctx, `INSERT INTO webhook_attempts (id, tenant_id, delivery_id, event_id, endpoint_id, attempt, url,
		status_code, latency_ms, error, outcome, next_attempt_at, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING seq`,
		a.ID, a.TenantID, a.DeliveryID, a.EventID, a.EndpointID, a.Attempt, a.URL, a.StatusCode, a.LatencyMS,
		a.Error, a.Outcome, nullTime(a.NextAttemptAt), a.CreatedAt).Scan(&a.Seq)
	return mapErr(err)
}

func (t *Tx) ListAttempts(ctx context.Context, f webhooks.AttemptFilter) ([]webhooks.Attempt, error) {
	where := []string{"tenant_id = $1"}
	args := []any{f.TenantID}
	add := func(cond string, v any) {
		args = append(args, v)
		where = append(where, fmt.Sprintf(cond, len(args)))
	}
	if f.EventID != "" {
		add("event_id = $%d", f.EventID)
	}
	if f.EndpointID != "" {
		add("endpoint_id = $%d", f.EndpointID)
	}
	if f.StartingAfter != "" {
		add("seq < (SELECT seq FROM webhook_attempts WHERE id = $%d AND tenant_id = $1)", f.StartingAfter)
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	rows, err := t.tx.Query(ctx, `SELECT seq, id, tenant_id, delivery_id, event_id, endpoint_id, attempt, url, status_code,
		latency_ms, error, outcome, next_attempt_at, created_at FROM webhook_attempts WHERE `+strings.Join(where, " AND ")+
		fmt.Sprintf(` ORDER BY seq DESC LIMIT %d`, limit), args...)
	if err != nil {
		return nil, mapErr(err)
	}
	defer rows.Close()
	var out []webhooks.Attempt
	for rows.Next() {
		var a webhooks.Attempt
		if err := rows.Scan(&a.Seq, &a.ID, &a.TenantID, &a.DeliveryID, &a.EventID, &a.EndpointID, &a.Attempt, &a.URL,
			&a.StatusCode, &a.LatencyMS, &a.Error, &a.Outcome, &a.NextAttemptAt, &a.CreatedAt); err != nil {
			return nil, mapErr(err)
		}
		out = append(out, a)
	}
	return out, mapErr(rows.Err())
}

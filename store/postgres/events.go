package postgres

import (
	"context"

	"github.com/perfectpay/perfectpay/events"
)

var _ events.Outbox = (*Tx)(nil)

// EnqueueEvent inserts the event and, in the same statement, one pending
// delivery per enabled endpoint of the tenant subscribed to its type
// (sent with the transaction's next round trip).
func (t *Tx) EnqueueEvent(ctx context.Context, e *events.Event) error {
	return t.later(ctx, `WITH ev AS (
		INSERT INTO events (id, tenant_id, type, data, created_at) VALUES ($1, $2, $3, $4, $5)
		RETURNING id, tenant_id, type, created_at)
	INSERT INTO webhook_deliveries (id, tenant_id, event_id, endpoint_id, status, next_attempt_at, created_at, updated_at)
	SELECT 'whd_' || replace(gen_random_uuid()::text, '-', ''), ev.tenant_id, ev.id, ep.id, 'pending',
	       ev.created_at, ev.created_at, ev.created_at
	FROM ev JOIN webhook_endpoints ep ON ep.tenant_id = ev.tenant_id AND ep.status = 'enabled'
	     AND (ev.type = ANY (ep.events) OR '*' = ANY (ep.events))`,
		[]any{e.ID, e.TenantID, e.Type, string(e.Data), e.CreatedAt}, nil)
}

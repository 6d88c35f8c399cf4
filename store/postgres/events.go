package postgres

import (
	"context"

	"github.com/perfectpay/perfectpay/webhooks"
)

var _ webhooks.Outbox = (*Tx)(nil)

func (t *Tx) EnqueueEvent(ctx context.Context, e *webhooks.Event) error {
	_, err := t.tx.Exec(ctx, `INSERT INTO events (id, tenant_id, type, data, created_at) VALUES ($1, $2, $3, $4, $5)`,
		e.ID, e.TenantID, e.Type, string(e.Data), e.CreatedAt)
	return mapErr(err)
}

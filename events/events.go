// Package events holds the event type and the transactional outbox every
// domain writes its events to. An event is written in the same transaction
// as the change it describes; delivering it (signing, dispatching, retrying)
// is the webhooks package's job, which domains never need to import.
package events

import (
	"context"
	"encoding/json"
	"time"

	"github.com/perfectpay/perfectpay/internal/ids"
)

// Event is something that happened to a tenant's objects. Data is a
// snapshot of the object (ids and public fields, never card data).
type Event struct {
	ID        string          `json:"id"`
	TenantID  string          `json:"-"`
	Type      string          `json:"type"`
	Data      json.RawMessage `json:"data"`
	CreatedAt time.Time       `json:"created"`
}

// Outbox is where a transaction writes its events; they are delivered after
// it commits. Every domain transaction that changes state includes it.
type Outbox interface {
	EnqueueEvent(ctx context.Context, e *Event) error
}

// Emit writes an event of type typ about obj to the outbox.
func Emit(ctx context.Context, o Outbox, tenantID, typ string, obj any) error {
	b, err := json.Marshal(map[string]any{"object": obj})
	if err != nil {
		return err
	}
	return o.EnqueueEvent(ctx, &Event{
		ID: ids.New("evt"), TenantID: tenantID, Type: typ, Data: b,
		CreatedAt: time.Now().UTC().Truncate(time.Microsecond),
	})
}

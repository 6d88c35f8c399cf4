package memory

import (
	"context"
	"slices"

	"github.com/perfectpay/perfectpay/events"
	"github.com/perfectpay/perfectpay/store"
)

var _ events.Outbox = (*Tx)(nil)

// EnqueueEvent inserts the event and fans it out: one pending delivery per
// enabled endpoint of the tenant subscribed to its type.
func (tx *Tx) EnqueueEvent(_ context.Context, e *events.Event) error {
	if _, ok := tx.d.events[e.ID]; ok {
		return store.ErrConflict
	}
	c := *e
	c.Data = slices.Clone(e.Data)
	put(tx, tx.d.events, e.ID, c)
	appendUndo(tx, &tx.d.eventOrder, e.ID)
	tx.fanOut(&c)
	return nil
}

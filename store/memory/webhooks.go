package memory

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/perfectpay/perfectpay/events"
	"github.com/perfectpay/perfectpay/internal/ids"
	"github.com/perfectpay/perfectpay/store"
	"github.com/perfectpay/perfectpay/webhooks"
)

var _ webhooks.Repo = (*Tx)(nil)

// webhookTables are the webhooks domain's tables.
type webhookTables struct {
	endpoints  table[string, webhooks.Endpoint]
	deliveries table[string, webhooks.Delivery]
	// pending indexes the deliveries in status pending.
	pending  table[string, struct{}]
	attempts []webhooks.Attempt
	// eventIndex is each event's position in eventOrder.
	eventIndex table[string, int]
	// byEvent lists each event's delivery ids, so ListDeliveries reads an
	// event's deliveries, not every delivery.
	byEvent table[string, []string]
	// byTenant lists each tenant's endpoint ids in the order they were
	// created, so a fan-out reads the event's tenant's endpoints, not
	// every endpoint. Nothing changes an endpoint's tenant; a delete takes
	// the id out.
	byTenant table[string, []string]
}

func newWebhookTables() webhookTables {
	return webhookTables{
		endpoints:  table[string, webhooks.Endpoint]{},
		deliveries: table[string, webhooks.Delivery]{},
		pending:    table[string, struct{}]{},
		eventIndex: table[string, int]{},
		byEvent:    table[string, []string]{},
		byTenant:   table[string, []string]{},
	}
}

func cloneEndpoint(e webhooks.Endpoint) webhooks.Endpoint {
	e.Events = slices.Clone(e.Events)
	e.Secret = slices.Clone(e.Secret)
	e.PrevSecret = slices.Clone(e.PrevSecret)
	if e.PrevSecretExpiresAt != nil {
		t := *e.PrevSecretExpiresAt
		e.PrevSecretExpiresAt = &t
	}
	if e.FailingSince != nil {
		t := *e.FailingSince
		e.FailingSince = &t
	}
	return e
}

func cloneDelivery(d webhooks.Delivery) webhooks.Delivery {
	if d.CompletedAt != nil {
		t := *d.CompletedAt
		d.CompletedAt = &t
	}
	return d
}

func cloneEvent(e events.Event) events.Event {
	e.Data = slices.Clone(e.Data)
	return e
}

// fanOut adds a pending delivery of e for every enabled endpoint of its
// tenant subscribed to its type (called by EnqueueEvent), in the order
// the endpoints were created.
func (tx *Tx) fanOut(e *events.Event) {
	w := &tx.d.webhooks
	for _, id := range w.byTenant[e.TenantID] {
		ep := w.endpoints[id]
		if ep.TenantID != e.TenantID || ep.Status != webhooks.EndpointEnabled || !ep.Subscribed(e.Type) {
			continue
		}
		d := webhooks.Delivery{
			ID: ids.New("whd"), TenantID: e.TenantID, EventID: e.ID, EndpointID: ep.ID,
			Status: webhooks.DeliveryPending, NextAttemptAt: e.CreatedAt, CreatedAt: e.CreatedAt, UpdatedAt: e.CreatedAt,
		}
		tx.putDelivery(d)
	}
	put(tx, w.eventIndex, e.ID, len(tx.d.eventOrder)-1)
}

func (tx *Tx) putDelivery(d webhooks.Delivery) {
	w := &tx.d.webhooks
	if old, ok := w.deliveries[d.ID]; !ok || old.EventID != d.EventID {
		if l := w.byEvent[d.EventID]; !slices.Contains(l, d.ID) {
			put(tx, w.byEvent, d.EventID, append(l, d.ID))
		}
	}
	put(tx, w.deliveries, d.ID, cloneDelivery(d))
	if d.Status == webhooks.DeliveryPending {
		put(tx, w.pending, d.ID, struct{}{})
	} else {
		del(tx, w.pending, d.ID)
	}
}

func (tx *Tx) CreateEndpoint(_ context.Context, e *webhooks.Endpoint) error {
	w := &tx.d.webhooks
	if _, ok := w.endpoints[e.ID]; ok {
		return store.ErrConflict
	}
	if _, ok := tx.d.tenants[e.TenantID]; !ok {
		return store.ErrNotFound
	}
	put(tx, w.endpoints, e.ID, cloneEndpoint(*e))
	put(tx, w.byTenant, e.TenantID, append(w.byTenant[e.TenantID], e.ID))
	return nil
}

func (tx *Tx) GetEndpoint(_ context.Context, tenantID, id string) (*webhooks.Endpoint, error) {
	e, ok := tx.d.webhooks.endpoints[id]
	if !ok || e.TenantID != tenantID {
		return nil, store.ErrNotFound
	}
	e = cloneEndpoint(e)
	return &e, nil
}

// LockEndpoint is GetEndpoint: the store's lock already serializes transactions.
func (tx *Tx) LockEndpoint(ctx context.Context, tenantID, id string) (*webhooks.Endpoint, error) {
	return tx.GetEndpoint(ctx, tenantID, id)
}

func (tx *Tx) ListEndpoints(_ context.Context, tenantID string) ([]webhooks.Endpoint, error) {
	w := &tx.d.webhooks
	var out []webhooks.Endpoint
	for _, id := range w.byTenant[tenantID] {
		if e := w.endpoints[id]; e.TenantID == tenantID {
			out = append(out, cloneEndpoint(e))
		}
	}
	slices.SortFunc(out, func(a, b webhooks.Endpoint) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out, nil
}

func (tx *Tx) UpdateEndpoint(_ context.Context, e *webhooks.Endpoint) error {
	old, ok := tx.d.webhooks.endpoints[e.ID]
	if !ok || old.TenantID != e.TenantID {
		return store.ErrNotFound
	}
	put(tx, tx.d.webhooks.endpoints, e.ID, cloneEndpoint(*e))
	return nil
}

func (tx *Tx) DeleteEndpoint(_ context.Context, tenantID, id string) error {
	old, ok := tx.d.webhooks.endpoints[id]
	if !ok || old.TenantID != tenantID {
		return store.ErrNotFound
	}
	w := &tx.d.webhooks
	del(tx, w.endpoints, id)
	unlist(tx, w.byTenant, tenantID, id)
	return nil
}

func (tx *Tx) MarkEndpointFailing(_ context.Context, id string, now time.Time) (time.Time, error) {
	e, ok := tx.d.webhooks.endpoints[id]
	if !ok {
		return time.Time{}, store.ErrNotFound
	}
	if e.FailingSince != nil {
		return *e.FailingSince, nil
	}
	e = cloneEndpoint(e)
	e.FailingSince = &now
	put(tx, tx.d.webhooks.endpoints, id, e)
	return now, nil
}

func (tx *Tx) MarkEndpointHealthy(_ context.Context, id string) error {
	e, ok := tx.d.webhooks.endpoints[id]
	if !ok || e.FailingSince == nil {
		return nil
	}
	e = cloneEndpoint(e)
	e.FailingSince = nil
	put(tx, tx.d.webhooks.endpoints, id, e)
	return nil
}

func (tx *Tx) DisableEndpoint(_ context.Context, tenantID, id, reason string, now time.Time) (bool, error) {
	e, ok := tx.d.webhooks.endpoints[id]
	if !ok || e.TenantID != tenantID || e.Status != webhooks.EndpointEnabled {
		return false, nil
	}
	e = cloneEndpoint(e)
	e.Status, e.DisabledReason, e.UpdatedAt = webhooks.EndpointDisabled, reason, now
	put(tx, tx.d.webhooks.endpoints, id, e)
	return true, nil
}

func (tx *Tx) GetEvent(_ context.Context, tenantID, id string) (*events.Event, error) {
	e, ok := tx.d.events[id]
	if !ok || e.TenantID != tenantID {
		return nil, store.ErrNotFound
	}
	e = cloneEvent(e)
	return &e, nil
}

// typeMatches applies an EventFilter's type: exact, or "prefix.*".
func typeMatches(filter, typ string) bool {
	if filter == "" {
		return true
	}
	if p, ok := strings.CutSuffix(filter, "*"); ok && strings.HasSuffix(p, ".") {
		return strings.HasPrefix(typ, p)
	}
	return filter == typ
}

func (tx *Tx) ListEvents(_ context.Context, f webhooks.EventFilter) ([]events.Event, error) {
	start := len(tx.d.eventOrder) - 1
	if f.StartingAfter != "" {
		i, ok := tx.d.webhooks.eventIndex[f.StartingAfter]
		if !ok {
			return nil, nil
		}
		start = i - 1
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	var out []events.Event
	for i := start; i >= 0 && len(out) < limit; i-- {
		e := tx.d.events[tx.d.eventOrder[i]]
		if e.TenantID == f.TenantID && typeMatches(f.Type, e.Type) {
			out = append(out, cloneEvent(e))
		}
	}
	return out, nil
}

func (tx *Tx) CreateDelivery(_ context.Context, d *webhooks.Delivery) error {
	if _, ok := tx.d.webhooks.deliveries[d.ID]; ok {
		return store.ErrConflict
	}
	if ev, ok := tx.d.events[d.EventID]; !ok || ev.TenantID != d.TenantID {
		return store.ErrNotFound
	}
	tx.putDelivery(*d)
	return nil
}

// ListDeliveries reads the event's list of deliveries, not the table.
func (tx *Tx) ListDeliveries(_ context.Context, tenantID, eventID string) ([]webhooks.Delivery, error) {
	w := &tx.d.webhooks
	var out []webhooks.Delivery
	for _, id := range w.byEvent[eventID] {
		if d, ok := w.deliveries[id]; ok && d.TenantID == tenantID && d.EventID == eventID {
			out = append(out, cloneDelivery(d))
		}
	}
	slices.SortFunc(out, func(a, b webhooks.Delivery) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out, nil
}

func (tx *Tx) CancelDeliveries(_ context.Context, tenantID, endpointID, reason string, now time.Time) (int, error) {
	n := 0
	for id := range tx.d.webhooks.pending {
		d := tx.d.webhooks.deliveries[id]
		if d.TenantID != tenantID || d.EndpointID != endpointID {
			continue
		}
		d.Status, d.LastError, d.UpdatedAt, d.CompletedAt, d.ClaimToken = webhooks.DeliveryCanceled, reason, now, &now, ""
		tx.putDelivery(d)
		n++
	}
	return n, nil
}

func (tx *Tx) ClaimDeliveries(_ context.Context, now, leaseUntil time.Time, limit int, token string) ([]webhooks.Claimed, error) {
	w := &tx.d.webhooks
	var due []webhooks.Delivery
	for id := range w.pending {
		if d := w.deliveries[id]; !d.NextAttemptAt.After(now) {
			due = append(due, d)
		}
	}
	slices.SortFunc(due, func(a, b webhooks.Delivery) int {
		if c := a.NextAttemptAt.Compare(b.NextAttemptAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	if len(due) > limit {
		due = due[:limit]
	}
	out := make([]webhooks.Claimed, 0, len(due))
	for _, d := range due {
		d.Attempts++
		d.NextAttemptAt, d.ClaimToken, d.UpdatedAt = leaseUntil, token, now
		tx.putDelivery(d)
		c := webhooks.Claimed{Delivery: cloneDelivery(d), Event: cloneEvent(tx.d.events[d.EventID])}
		if ep, ok := w.endpoints[d.EndpointID]; ok {
			ep = cloneEndpoint(ep)
			c.Endpoint = &ep
		}
		out = append(out, c)
	}
	return out, nil
}

func (tx *Tx) CompleteDelivery(_ context.Context, d *webhooks.Delivery) (bool, error) {
	old, ok := tx.d.webhooks.deliveries[d.ID]
	if !ok || old.ClaimToken == "" || old.ClaimToken != d.ClaimToken || old.Status != webhooks.DeliveryPending {
		return false, nil
	}
	old.Status, old.Attempts, old.NextAttemptAt = d.Status, d.Attempts, d.NextAttemptAt
	old.LastStatus, old.LastError, old.UpdatedAt, old.CompletedAt = d.LastStatus, d.LastError, d.UpdatedAt, d.CompletedAt
	old.ClaimToken = ""
	tx.putDelivery(old)
	return true, nil
}

func (tx *Tx) AppendAttempt(_ context.Context, a *webhooks.Attempt) error {
	c := *a
	c.Seq = int64(len(tx.d.webhooks.attempts) + 1)
	a.Seq = c.Seq
	appendUndo(tx, &tx.d.webhooks.attempts, c)
	return nil
}

func (tx *Tx) ListAttempts(_ context.Context, f webhooks.AttemptFilter) ([]webhooks.Attempt, error) {
	all := tx.d.webhooks.attempts
	start := len(all) - 1
	if f.StartingAfter != "" {
		start = -1
		for i := len(all) - 1; i >= 0; i-- {
			if all[i].ID == f.StartingAfter {
				start = i - 1
				break
			}
		}
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	var out []webhooks.Attempt
	for i := start; i >= 0 && len(out) < limit; i-- {
		a := all[i]
		if a.TenantID != f.TenantID || (f.EventID != "" && a.EventID != f.EventID) ||
			(f.EndpointID != "" && a.EndpointID != f.EndpointID) {
			continue
		}
		if a.NextAttemptAt != nil {
			t := *a.NextAttemptAt
			a.NextAttemptAt = &t
		}
		out = append(out, a)
	}
	return out, nil
}

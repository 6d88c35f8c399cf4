package memory

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/perfectpay/perfectpay/events"
	"github.com/perfectpay/perfectpay/webhooks"
)

// BenchmarkListDeliveries reads the deliveries of one event (ListDeliveries,
// as GET /v1/events/{id}/deliveries does) in a store of 100,000 deliveries
// of 10,000 events. It holds the store, and every transaction of the node
// waits for it.
//
//	go test ./store/memory/ -run '^$' -bench ListDeliveries
func BenchmarkListDeliveries(b *testing.B) {
	ctx := context.Background()
	const n, perEvent = 100_000, 10
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := seedStore(b, []string{"ten_a"}, n/perEvent, func(tx *Tx, j int) error {
		at := t0.Add(time.Duration(j) * time.Second)
		e := &events.Event{ID: fmt.Sprintf("evt_%05d", j), TenantID: "ten_a", Type: "charge.succeeded", CreatedAt: at}
		if err := tx.EnqueueEvent(ctx, e); err != nil {
			return err
		}
		for k := range perEvent {
			if err := tx.CreateDelivery(ctx, &webhooks.Delivery{ID: fmt.Sprintf("whd_%05d_%d", j, k), TenantID: "ten_a",
				EventID: e.ID, EndpointID: fmt.Sprintf("we_%d", k), Status: webhooks.DeliverySucceeded,
				CreatedAt: at, UpdatedAt: at}); err != nil {
				return err
			}
		}
		return nil
	})
	for b.Loop() {
		_ = s.InTx(ctx, func(tx *Tx) error {
			out, err := tx.ListDeliveries(ctx, "ten_a", "evt_05000")
			if err != nil || len(out) != perEvent || out[0].ID != "whd_05000_0" {
				b.Fatalf("deliveries: %d, %v", len(out), err)
			}
			return nil
		})
	}
}

// BenchmarkFanOut enqueues one event (EnqueueEvent, which fans it out to
// the tenant's subscribed endpoints) in a store of 10,000 webhook
// endpoints of 1,000 tenants, in a transaction rolled back so that the
// store does not grow. Every event the node queues does this with the
// store held.
//
//	go test ./store/memory/ -run '^$' -bench FanOut
func BenchmarkFanOut(b *testing.B) {
	ctx := context.Background()
	const n, tenants = 10_000, 1000
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := seedStore(b, tenantIDs(tenants), n, func(tx *Tx, j int) error {
		// Of each tenant's ten endpoints, eight take every event, one
		// other types and one is disabled.
		ep := &webhooks.Endpoint{ID: fmt.Sprintf("we_%05d", j), TenantID: fmt.Sprintf("ten_%04d", j%tenants),
			URL: "https://example.com/hook", Events: []string{webhooks.WildcardEvents}, Status: webhooks.EndpointEnabled,
			CreatedAt: t0, UpdatedAt: t0}
		switch j / tenants {
		case 3:
			ep.Events = []string{"refund.created"}
		case 5:
			ep.Status = webhooks.EndpointDisabled
		}
		return tx.CreateEndpoint(ctx, ep)
	})
	eachRolledBack(b, s, func(tx *Tx) {
		if err := tx.EnqueueEvent(ctx, &events.Event{ID: "evt_1", TenantID: "ten_0007", Type: "charge.succeeded",
			CreatedAt: t0}); err != nil {
			b.Fatal(err)
		}
		if got := len(tx.d.webhooks.byEvent["evt_1"]); got != 8 {
			b.Fatalf("deliveries: %d", got)
		}
	})
}

package memory

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/perfectpay/perfectpay/mandates"
)

// BenchmarkMandateEvents reads a page of 100 events of one mandate's
// history (ListMandateEvents after a cursor half way in) in a store of
// 100,000 events of 1,000 mandates. It holds the store, and every
// transaction of the node waits for it.
//
//	go test ./store/memory/ -run '^$' -bench MandateEvents
func BenchmarkMandateEvents(b *testing.B) {
	ctx := context.Background()
	const n, mandateCount = 100_000, 1000
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := seedStore(b, nil, n, func(tx *Tx, j int) error {
		return tx.AppendMandateEvent(ctx, &mandates.Event{ID: fmt.Sprintf("mev_%06d", j), TenantID: "ten_a",
			MandateID: fmt.Sprintf("mdt_%04d", j%mandateCount), Type: "mandate.charged", ActorType: "agent",
			ActorID: "agt_1", Data: []byte(`{"amount":100}`), CreatedAt: t0.Add(time.Duration(j) * time.Second)})
	})
	// mdt_0007's events are mev_000007, mev_001007, ...; the cursor is its 40th.
	for b.Loop() {
		_ = s.InTx(ctx, func(tx *Tx) error {
			out, more, err := tx.ListMandateEvents(ctx, mandates.EventFilter{TenantID: "ten_a", MandateID: "mdt_0007",
				StartingAfter: "mev_039007", Limit: 50})
			if err != nil || len(out) != 50 || !more || out[0].ID != "mev_040007" {
				b.Fatalf("page: %d events, %v", len(out), err)
			}
			return nil
		})
	}
}

// BenchmarkListMandates reads a page of 10 mandates, newest first, of one
// tenant in a store of 100,000 mandates of 1,000 tenants: after a cursor
// half way into the tenant's mandates, and filtered by status (one
// mandate in ten is suspended) from the newest. Either holds the store,
// and every transaction of the node waits for it.
//
//	go test ./store/memory/ -run '^$' -bench ListMandates
func BenchmarkListMandates(b *testing.B) {
	ctx := context.Background()
	const n, tenants = 100_000, 1000
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := seedStore(b, tenantIDs(tenants), n, func(tx *Tx, j int) error {
		at := t0.Add(time.Duration(j) * time.Second)
		m := &mandates.Mandate{ID: fmt.Sprintf("mdt_%06d", j), TenantID: fmt.Sprintf("ten_%04d", j%tenants),
			Payer: "ten_payer", Agent: "agt_1", Status: mandates.StatusActive, Limits: mandates.Limits{Currency: "eur", Budget: 10_000},
			CreatedAt: at, UpdatedAt: at}
		if j/tenants%10 == 3 {
			m.Status = mandates.StatusSuspended
		}
		return tx.CreateMandate(ctx, m)
	})
	// ten_0007's mandates are mdt_000007, mdt_001007, ...; the suspended
	// ones mdt_003007, mdt_013007, ...
	b.Run("cursor", func(b *testing.B) {
		for b.Loop() {
			_ = s.InTx(ctx, func(tx *Tx) error {
				out, more, err := tx.ListMandates(ctx, mandates.Filter{TenantID: "ten_0007", StartingAfter: "mdt_050007", Limit: 10})
				if err != nil || len(out) != 10 || !more || out[0].ID != "mdt_049007" {
					b.Fatalf("page: %d mandates, %v", len(out), err)
				}
				return nil
			})
		}
	})
	b.Run("status", func(b *testing.B) {
		for b.Loop() {
			_ = s.InTx(ctx, func(tx *Tx) error {
				out, more, err := tx.ListMandates(ctx, mandates.Filter{TenantID: "ten_0007", Status: mandates.StatusSuspended, Limit: 5})
				if err != nil || len(out) != 5 || !more || out[0].ID != "mdt_093007" {
					b.Fatalf("page: %d mandates, %v", len(out), err)
				}
				return nil
			})
		}
	})
}

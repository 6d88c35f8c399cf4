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
	s := New()
	ctx := context.Background()
	const n, mandateCount = 100_000, 1000
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := 0; i < n; i += 1000 {
		if err := s.InTx(ctx, func(tx *Tx) error {
			for j := i; j < i+1000; j++ {
				if err := tx.AppendMandateEvent(ctx, &mandates.Event{ID: fmt.Sprintf("mev_%06d", j), TenantID: "ten_a",
					MandateID: fmt.Sprintf("mdt_%04d", j%mandateCount), Type: "mandate.charged", ActorType: "agent",
					ActorID: "agt_1", Data: []byte(`{"amount":100}`), CreatedAt: t0.Add(time.Duration(j) * time.Second)}); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			b.Fatal(err)
		}
	}
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

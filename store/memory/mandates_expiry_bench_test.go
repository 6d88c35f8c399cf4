package memory

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/perfectpay/perfectpay/mandates"
)

// errBenchRollback rolls back a benchmark's transaction, so that every
// iteration finds the store as seeded.
var errBenchRollback = errors.New("rolled back")

// BenchmarkExpireMandates is the mandate expiry job's minute: one
// ExpireMandates of 100 in a store of 100,000 mandates, of which 300 are
// due (one in ten never expires, one in ten is revoked or expired, the
// others expire later). It holds the store, and every transaction of the
// node waits for it. The transaction is rolled back, so every iteration
// expires the same 100.
//
//	go test ./store/memory/ -run '^$' -bench ExpireMandates
func BenchmarkExpireMandates(b *testing.B) {
	const n = retentionRows
	ctx := context.Background()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	now := t0.Add(n * time.Second)
	s := seedRows(b, func(tx *Tx, j int) error {
		at := t0.Add(time.Duration(j) * time.Second)
		m := &mandates.Mandate{ID: fmt.Sprintf("mdt_%06d", (j*7919)%n), TenantID: "ten_a", Payer: "p", Agent: "agt",
			Status: mandates.StatusActive, CreatedAt: at, UpdatedAt: at}
		until := now.Add(time.Hour)
		switch {
		case j%10 == 1:
			m.ValidUntil = nil
		case j%10 == 2:
			m.Status, m.ValidUntil = []string{mandates.StatusRevoked, mandates.StatusExpired}[j%4/2], &at
		case j%1000 >= 3 && j%1000 < 6:
			m.ValidUntil = &at // due
		default:
			m.ValidUntil = &until
		}
		return tx.CreateMandate(ctx, m)
	})
	for b.Loop() {
		err := s.InTx(ctx, func(tx *Tx) error {
			out, err := tx.ExpireMandates(ctx, now, 100)
			if err != nil || len(out) != 100 {
				b.Fatalf("expired %d, %v", len(out), err)
			}
			return errBenchRollback
		})
		if !errors.Is(err, errBenchRollback) {
			b.Fatal(err)
		}
	}
}

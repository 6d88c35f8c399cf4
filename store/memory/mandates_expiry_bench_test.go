package memory

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/perfectpay/perfectpay/mandates"
)

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
	eachRolledBack(b, s, func(tx *Tx) {
		if out, err := tx.ExpireMandates(ctx, now, 100); err != nil || len(out) != 100 {
			b.Fatalf("expired %d, %v", len(out), err)
		}
	})
}

// BenchmarkRevokeMandateTree is a payer revoking a mandate with two
// sub-mandates, each with two of its own, in a store of 100,000 other
// mandates: revocation holds the store, and every transaction of the node
// waits for it. Rolled back, so every iteration revokes the same seven.
//
//	go test ./store/memory/ -run '^$' -bench RevokeMandateTree
func BenchmarkRevokeMandateTree(b *testing.B) {
	ctx := context.Background()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	mandate := func(id, parent string, at time.Time) *mandates.Mandate {
		return &mandates.Mandate{ID: id, ParentID: parent, TenantID: "ten_a", Payer: "p", Agent: "agt",
			Status: mandates.StatusActive, CreatedAt: at, UpdatedAt: at}
	}
	s := seedRows(b, func(tx *Tx, j int) error {
		return tx.CreateMandate(ctx, mandate(fmt.Sprintf("mdt_%06d", j), "", t0.Add(time.Duration(j)*time.Second)))
	})
	if err := s.InTx(ctx, func(tx *Tx) error {
		for _, m := range [][2]string{{"mdt_root", ""}, {"mdt_a", "mdt_root"}, {"mdt_b", "mdt_root"},
			{"mdt_a1", "mdt_a"}, {"mdt_a2", "mdt_a"}, {"mdt_b1", "mdt_b"}, {"mdt_b2", "mdt_b"}} {
			if err := tx.CreateMandate(ctx, mandate(m[0], m[1], t0)); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	eachRolledBack(b, s, func(tx *Tx) {
		if ids, err := tx.RevokeMandateTree(ctx, "ten_a", "mdt_root", t0); err != nil || len(ids) != 7 {
			b.Fatalf("revoked %v, %v", ids, err)
		}
	})
}

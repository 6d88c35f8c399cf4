package postgres_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/perfectpay/perfectpay/accounts"
	"github.com/perfectpay/perfectpay/internal/ids"
	"github.com/perfectpay/perfectpay/mandates"
	"github.com/perfectpay/perfectpay/store/pgtest"
	"github.com/perfectpay/perfectpay/store/postgres"
)

// benchChains creates n parent+child chains with budgets that never run out.
func benchChains(b *testing.B, s *postgres.Store, n int) [][]string {
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Microsecond)
	ten := &accounts.Tenant{ID: ids.New("ten"), Name: "bench", Status: accounts.TenantActive, CreatedAt: now}
	var chains [][]string
	err := s.InTx(ctx, func(tx *postgres.Tx) error {
		if err := tx.CreateTenant(ctx, ten); err != nil {
			return err
		}
		for range n {
			p := &mandates.Mandate{ID: ids.New("mdt"), TenantID: ten.ID, Payer: "p", Agent: "a", Status: mandates.StatusActive,
				Limits:    mandates.Limits{Currency: "USD", Budget: 1 << 40, PaymentMethods: []string{"tok_a"}},
				CreatedAt: now, UpdatedAt: now}
			c := *p.Clone()
			c.ID, c.ParentID, c.Depth = ids.New("mdt"), p.ID, 1
			half := p.Budget >> 1
			c.Period, c.PeriodBudget = mandates.PeriodDay, &half
			if err := tx.CreateMandate(ctx, p); err != nil {
				return err
			}
			if err := tx.CreateMandate(ctx, &c); err != nil {
				return err
			}
			chains = append(chains, []string{p.ID, c.ID})
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return chains
}

// BenchmarkReserve measures one transaction that reserves an amount on a
// parent and its child (two conditional UPDATEs), from 16 goroutines:
// all on one hot chain, or each on a chain of its own.
func BenchmarkReserve(b *testing.B) {
	for _, tc := range []struct {
		name   string
		chains int
	}{{"hot_chain", 1}, {"many_chains", 64}} {
		b.Run(tc.name, func(b *testing.B) {
			s := pgtest.NewStore(b)
			chains := benchChains(b, s, tc.chains)
			var next atomic.Int64
			b.SetParallelism(8)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				ctx := context.Background()
				for pb.Next() {
					chain := chains[int(next.Add(1))%len(chains)]
					err := s.InTx(ctx, func(tx *postgres.Tx) error {
						_, err := tx.Reserve(ctx, chain, 1, time.Now())
						return err
					})
					if err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "reservations/s")
		})
	}
}

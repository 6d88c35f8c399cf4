package memory

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/perfectpay/perfectpay/payments"
)

// seedPayments fills a store with n charges of two tenants, alternating,
// each with a refund; one in 10 is made to the merchant mer_1. One charge in 1,000 is pending and one in 1,000 has
// a reversal pending; one refund in 1,000 is pending; the rest are
// settled, as in a store that has run for a while.
func seedPayments(b *testing.B, n int) (*Store, time.Time) {
	ctx := context.Background()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := seedStore(b, []string{"ten_a", "ten_b"}, n, func(tx *Tx, j int) error {
		at := t0.Add(time.Duration(j) * time.Second)
		c := &payments.Charge{ID: fmt.Sprintf("ch_%06d", j), TenantID: []string{"ten_a", "ten_b"}[j%2],
			Status: payments.StatusSucceeded, Amount: 100, AmountCaptured: 100, Currency: "eur",
			PaymentMethod: "tok_1", Created: at, Updated: at}
		if j%10 == 0 {
			c.MerchantID = "mer_1"
		}
		switch j % 1000 {
		case 1:
			c.Status, c.AmountCaptured = payments.StatusPending, 0
		case 2:
			c.Status, c.AmountCaptured, c.ReversalPending = payments.StatusFailed, 0, true
		}
		if err := tx.CreateCharge(ctx, c); err != nil {
			return err
		}
		r := &payments.Refund{ID: fmt.Sprintf("re_%06d", j), TenantID: c.TenantID, ChargeID: c.ID, Amount: 100,
			Currency: "eur", Status: payments.RefundSucceeded, Created: at, Updated: at}
		if j%1000 == 3 {
			r.Status = payments.RefundPending
		}
		return tx.CreateRefund(ctx, r)
	})
	return s, t0.Add(time.Duration(n) * time.Second)
}

// BenchmarkResolverQueries is the payment resolver's minute: the charges
// and the refunds left to resolve (ChargesToResolve, RefundsToResolve,
// 100 each) in a store of 100,000 charges and 100,000 refunds, of which
// 200 charges and 100 refunds are unresolved. Either holds the store, and
// every transaction of the node waits for it.
//
//	go test ./store/memory/ -run '^$' -bench ResolverQueries
func BenchmarkResolverQueries(b *testing.B) {
	const n = 100_000
	s, end := seedPayments(b, n)
	ctx := context.Background()
	b.Run("charges", func(b *testing.B) {
		for b.Loop() {
			_ = s.InTx(ctx, func(tx *Tx) error {
				out, err := tx.ChargesToResolve(ctx, end, 100)
				if err != nil || len(out) != 100 || out[0].ID != "ch_000001" {
					b.Fatalf("charges: %d, %v", len(out), err)
				}
				return nil
			})
		}
	})
	b.Run("refunds", func(b *testing.B) {
		for b.Loop() {
			_ = s.InTx(ctx, func(tx *Tx) error {
				out, err := tx.RefundsToResolve(ctx, end, 100)
				if err != nil || len(out) != 100 || out[0].ID != "re_000003" {
					b.Fatalf("refunds: %d, %v", len(out), err)
				}
				return nil
			})
		}
	})
}

// BenchmarkListCharges reads a page of 100 charges, newest first, in a
// store of 100,000: a tenant's (of two) after a cursor half way in, and a
// merchant's (one charge in ten) from the newest. Either holds the store,
// and every transaction of the node waits for it.
//
//	go test ./store/memory/ -run '^$' -bench ListCharges
func BenchmarkListCharges(b *testing.B) {
	const n = 100_000
	s, _ := seedPayments(b, n)
	ctx := context.Background()
	b.Run("tenant", func(b *testing.B) {
		for b.Loop() {
			_ = s.InTx(ctx, func(tx *Tx) error {
				out, err := tx.ListCharges(ctx, "ten_b", payments.ListFilter{StartingAfter: "ch_050001", Limit: 100})
				if err != nil || len(out) != 100 || out[0].ID != "ch_049999" {
					b.Fatalf("page: %d charges, %v", len(out), err)
				}
				return nil
			})
		}
	})
	b.Run("merchant", func(b *testing.B) {
		for b.Loop() {
			_ = s.InTx(ctx, func(tx *Tx) error {
				out, err := tx.ListCharges(ctx, "", payments.ListFilter{MerchantID: "mer_1", Limit: 100})
				if err != nil || len(out) != 100 || out[0].ID != "ch_099990" {
					b.Fatalf("page: %d charges, %v", len(out), err)
				}
				return nil
			})
		}
	})
}

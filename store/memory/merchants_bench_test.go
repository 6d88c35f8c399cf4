package memory

import (
	"context"
	"fmt"
	"testing"

	"github.com/perfectpay/perfectpay/merchants"
)

// BenchmarkDueDomainChecks: 10,000 merchants of 10 verified domains each,
// 100,000 domains of which 300 are due for their re-check; one batch of
// the re-check job (limit 100), rolled back. The merchants are written
// with putMerchant, as the store holds them, without CreateMerchant's
// checks of tenant and domains, which this benchmark does not measure.
//
//	go test ./store/memory/ -run '^$' -bench DueDomainChecks
func BenchmarkDueDomainChecks(b *testing.B) {
	ctx := context.Background()
	s := seedStore(b, nil, retentionRows/10, func(tx *Tx, j int) error {
		m := merchants.Merchant{ID: fmt.Sprintf("acct_%05d", j), TenantID: fmt.Sprintf("ten_%05d", j),
			DisplayName: "Shop", MCC: "5734", Country: "FR", CreatedAt: benchT0, UpdatedAt: benchT0}
		for k := range 10 {
			at, next := benchT0, benchAt(j*10+k)
			m.Domains = append(m.Domains, merchants.Domain{Name: fmt.Sprintf("d%06d.example.com", j*10+k),
				VerifiedAt: &at, Method: merchants.MethodDNS, CheckedAt: &at, NextCheckAt: &next})
		}
		tx.putMerchant(m)
		return nil
	})
	eachRolledBack(b, s, func(tx *Tx) {
		if due, err := tx.DueDomainChecks(ctx, benchBefore, 100); err != nil || len(due) != 100 {
			b.Fatalf("due %d, %v", len(due), err)
		}
	})
}

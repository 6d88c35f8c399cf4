package memory

import (
	"context"
	"testing"

	"github.com/perfectpay/perfectpay/audit"
	"github.com/perfectpay/perfectpay/store"
)

// BenchmarkAuditPages reads pages of an audit log of 100,000 sealed
// entries: a page of the log as an auditor reads it (ListAudit, 100
// entries of a tenant after a cursor half way in) and a page of the chain
// as verification and retention walk it (AuditChain, 2,000 entries).
// Either holds the store, and every transaction of the node waits for it.
//
//	go test ./store/memory/ -run '^$' -bench AuditPages
func BenchmarkAuditPages(b *testing.B) {
	ctx := context.Background()
	const n = 100_000
	s := seedStore(b, nil, n, func(tx *Tx, j int) error {
		return audit.Append(ctx, tx, &audit.Entry{TenantID: []string{"ten_a", "ten_b"}[j%2], ActorType: audit.ActorAgent,
			ActorID: "agt_1", Action: "token.issued", Target: "agt_1", Route: "/oauth2/token", Status: 200,
			Data: []byte(`{"jti":"tok_1"}`)})
	})
	svc := audit.NewService(store.Bind(s, func(x *Tx) audit.Repo { return x }), 0, nil)
	if got, err := svc.SealAll(ctx); err != nil || got != n {
		b.Fatalf("sealed %d of %d: %v", got, n, err)
	}
	b.Run("list", func(b *testing.B) {
		for b.Loop() {
			_ = s.InTx(ctx, func(tx *Tx) error {
				page, err := tx.ListAudit(ctx, audit.Filter{TenantID: "ten_b", AfterSeq: n / 2, Limit: 100})
				if err != nil || len(page) != 100 || page[0].Seq != n/2+2 {
					b.Fatalf("page: %d entries, %v", len(page), err)
				}
				return nil
			})
		}
	})
	b.Run("chain", func(b *testing.B) {
		for b.Loop() {
			_ = s.InTx(ctx, func(tx *Tx) error {
				page, err := tx.AuditChain(ctx, n/2, 2000)
				if err != nil || len(page) != 2000 || page[0].ChainPos != n/2+1 {
					b.Fatalf("page: %d entries, %v", len(page), err)
				}
				return nil
			})
		}
	})
}

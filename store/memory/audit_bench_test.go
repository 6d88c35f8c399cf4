package memory

import (
	"context"
	"fmt"
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

// BenchmarkForgetAuditPersonal erases one person's IPs from an audit log
// of 100,000 entries, rolled back: 98,900 tokens issued to agents, 1,000
// acts of 100 signed-in users and 100 consents of theirs given before
// signing in; the person's are 10 acts and 1 consent.
//
//	go test ./store/memory/ -run '^$' -bench ForgetAuditPersonal
func BenchmarkForgetAuditPersonal(b *testing.B) {
	ctx := context.Background()
	s := seedStore(b, nil, 100_000, func(tx *Tx, j int) error {
		e := &audit.Entry{TenantID: "ten_a", ActorType: audit.ActorAgent, ActorID: fmt.Sprintf("agt_%02d", j%50),
			IP: "192.0.2.1", Action: "token.issued", Target: fmt.Sprintf("sig_%06d", j), Route: "/oauth2/token",
			Status: 200, Data: []byte(`{"client_id":"agt_1"}`)}
		switch {
		case j%100 == 0:
			e.ActorType, e.ActorID = audit.ActorUser, fmt.Sprintf("usr_%02d", (j/100)%100)
			e.Action, e.Target, e.Route = "user.updated", e.ActorID, "/dashboard/account"
		case j%1000 == 50:
			e.ActorType, e.ActorID = audit.ActorSystem, ""
			e.Action, e.Target, e.Route = "consent.granted", fmt.Sprintf("usr_%02d", (j/1000)%100), "/consent"
		}
		return audit.Append(ctx, tx, e)
	})
	eachRolledBack(b, s, func(tx *Tx) {
		if n, err := tx.ForgetAuditPersonal(ctx, audit.ForgetPersonal{TenantID: "ten_a", Subject: "usr_42"}); err != nil || n != 11 {
			b.Fatalf("forgot %d, %v", n, err)
		}
	})
}

package audit_test

import (
	"context"
	"testing"
	"time"

	"github.com/perfectpay/perfectpay/audit"
	"github.com/perfectpay/perfectpay/store"
	"github.com/perfectpay/perfectpay/store/pgtest"
	"github.com/perfectpay/perfectpay/store/postgres"
)

// BenchmarkPostgresAppend appends entries, each in its own transaction,
// from 1 or 16 concurrent writers while the sealer runs and signs a
// checkpoint every second. Appends take no shared lock (each numbers its
// entry on a stripe no other open transaction holds), so 16 writers should
// reach several times the throughput of one (a single chain-head lock or
// counter would hold them near the 1-writer figure).
func BenchmarkPostgresAppend(b *testing.B) {
	for _, par := range []int{1, 8} {
		b.Run(map[int]string{1: "writers=1", 8: "writers=16"}[par], func(b *testing.B) {
			pg := pgtest.NewStore(b)
			db := store.Bind(pg, func(x *postgres.Tx) audit.Repo { return x })
			svc := audit.NewService(db, 0, nil)
			if err := svc.UseKeys(context.Background(), newSealer(b)); err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			go svc.RunSealer(ctx, 50*time.Millisecond)
			b.SetParallelism(par)
			start := time.Now()
			b.ResetTimer()
			appendOne := func() error {
				return db.InTx(context.Background(), func(tx audit.Repo) error {
					return audit.Append(context.Background(), tx, &audit.Entry{ActorType: audit.ActorSystem, Action: "bench", Target: "x"})
				})
			}
			if par == 1 {
				for i := 0; i < b.N; i++ {
					if err := appendOne(); err != nil {
						b.Fatal(err)
					}
				}
			} else {
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if err := appendOne(); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "appends/s")
			b.StopTimer()
			cancel()
			if _, err := svc.SealAll(context.Background()); err != nil {
				b.Fatal(err)
			}
			res, err := svc.Verify(context.Background())
			if err != nil || !res.OK {
				b.Fatalf("chain does not verify: %v %+v", err, res)
			}
			b.ReportMetric(float64(res.Checkpoints), "checkpoints")
		})
	}
}

// discard is a Writer that keeps nothing.
type discard struct{}

func (discard) AppendAudit(context.Context, *audit.Entry) error { return nil }

// BenchmarkEntryHashWithIP is the CPU cost of hashing an entry that holds
// an IP: the clear format hashes the IP itself; the pseudonymous format
// (what Append writes) first draws a salt and digests the IP with it.
func BenchmarkEntryHashWithIP(b *testing.B) {
	entry := func() *audit.Entry {
		return &audit.Entry{TenantID: "ten_1", ActorType: audit.ActorUser, ActorID: "usr_1", IP: "203.0.113.7",
			Action: "user.login", Target: "usr_1", RequestID: "req_1", Data: []byte(`{"factor":"password"}`),
			CreatedAt: time.Now()}
	}
	b.Run("clear", func(b *testing.B) {
		e := entry()
		e.ID = "aud_1"
		for i := 0; i < b.N; i++ {
			e.ContentHash = audit.ContentHash(e)
		}
	})
	b.Run("pseudonymous", func(b *testing.B) {
		e := entry()
		for i := 0; i < b.N; i++ {
			e.ID, e.ContentHash = "aud_1", nil
			if err := audit.Append(context.Background(), discard{}, e); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkPostgresSeal is the sealer's cost per entry on PostgreSQL: each
// round appends 2,000 entries shaped like an issued token's (200 per
// transaction, not timed), then seals them all (timed) in batches of
// 1,000 as the sealer does. One connection works at a time, so ns/op is
// the sealer's and its backend's CPU per entry plus the round trips.
//
//	go test ./audit/ -run '^$' -bench PostgresSeal -benchtime 20x
func BenchmarkPostgresSeal(b *testing.B) {
	pg := pgtest.NewStore(b)
	db := store.Bind(pg, func(x *postgres.Tx) audit.Repo { return x })
	svc := audit.NewService(db, 0, nil)
	ctx := context.Background()
	data := []byte(`{"client_id":"agt_0123456789abcdef","grant_type":"client_credentials","jti":"tok_0123456789abcdef0123","scope":"charges:write","mandates":["mdt_0123456789abcdef"],"expires_at":"2026-12-02T08:00:00Z"}`)
	const perRound = 2000
	sealed := 0
	for b.Loop() {
		b.StopTimer()
		for range perRound / 200 {
			if err := db.InTx(ctx, func(tx audit.Repo) error {
				for range 200 {
					if err := audit.Append(ctx, tx, &audit.Entry{TenantID: "ten_0123456789abcdef", ActorType: audit.ActorAgent,
						ActorID: "agt_0123456789abcdef", IP: "192.0.2.10", Action: "token.issued", Target: "agt_0123456789abcdef",
						RequestID: "req_0123456789abcdef", Method: "POST", Route: "/oauth2/token", Status: 200, Data: data}); err != nil {
						return err
					}
				}
				return nil
			}); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
		n, err := svc.SealAll(ctx)
		if err != nil || n != perRound {
			b.Fatalf("sealed %d of %d: %v", n, perRound, err)
		}
		sealed += n
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(sealed), "ns/entry")
}

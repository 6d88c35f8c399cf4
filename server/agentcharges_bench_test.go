package server_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/perfectpay/perfectpay/app/apptest"
	"github.com/perfectpay/perfectpay/store/pgtest"
)

// BenchmarkAgentChargeInProcess is one agent charge end to end in one
// process (HTTP handler, idempotency, token check, decision, charge
// transaction, simulated acquirer, result transaction), on each store:
// the server's own CPU per charge (cpu-ns/op, the process's user and
// system time, with PostgreSQL's backends in processes of their own)
// without a network, which a busy machine disturbs much less than the e2e
// benchmark. One client, so each charge waits for its own commits. On
// PostgreSQL, 300 charges first, then ANALYZE: a database in service has
// statistics, and plans made on empty tables would read many rows.
//
//	go test ./server/ -run '^$' -bench AgentChargeInProcess -benchtime 3000x -count 5 -cpu 1
func BenchmarkAgentChargeInProcess(b *testing.B) {
	b.Run("memory", func(b *testing.B) {
		chargeLoop(b, apptest.New(b, "memory"), nil)
	})
	b.Run("postgres", func(b *testing.B) {
		url := pgtest.NewURL(b)
		n := apptest.NewWithURL(b, "postgres", url)
		chargeLoop(b, n, func() {
			conn, err := pgx.Connect(context.Background(), url)
			if err != nil {
				b.Fatal(err)
			}
			defer conn.Close(context.Background())
			if _, err := conn.Exec(context.Background(), `ANALYZE`); err != nil {
				b.Fatal(err)
			}
		})
	})
}

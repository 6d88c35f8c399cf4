package server_test

import (
	"testing"

	"github.com/perfectpay/perfectpay/app/apptest"
)

// BenchmarkAgentChargeInProcess is one agent charge end to end in one
// process (HTTP handler, idempotency, token check, decision, charge
// transaction, simulated acquirer, result transaction), on each store:
// the server's own CPU per charge (cpu-ns/op, the process's user and
// system time, with PostgreSQL's backends in processes of their own)
// without a network, which a busy machine disturbs much less than the e2e
// benchmark. One client, so each charge waits for its own commits.
//
//	go test ./server/ -run '^$' -bench AgentChargeInProcess -benchtime 3000x -count 5 -cpu 1
func BenchmarkAgentChargeInProcess(b *testing.B) {
	for _, store := range []string{"memory", "postgres"} {
		b.Run(store, func(b *testing.B) {
			chargeLoop(b, apptest.New(b, store))
		})
	}
}

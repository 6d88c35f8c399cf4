package server_test

import (
	"testing"

	"github.com/perfectpay/perfectpay/app/apptest"
)

// BenchmarkAgentChargeInProcess is one agent charge end to end in one
// process on the memory store (HTTP handler, idempotency, token check,
// decision, charge transaction, simulated acquirer, result transaction):
// the server's own CPU per charge without PostgreSQL or a network, which a
// busy machine disturbs much less than the e2e benchmark.
//
//	go test ./server/ -run '^$' -bench AgentChargeInProcess -benchtime 3000x -count 5 -cpu 1
func BenchmarkAgentChargeInProcess(b *testing.B) {
	n := apptest.New(b, "memory")
	tok, body := agentChargeSetup(b, n, 100)
	i := 0
	for b.Loop() {
		i++
		chargeOK(b, n, tok, body, i)
	}
}

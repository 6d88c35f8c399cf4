package server_test

import (
	"fmt"
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
		r := n.Do(b, apptest.Req{Method: "POST", Path: "/v1/charges", Key: tok, Body: body,
			Header: map[string]string{"Idempotency-Key": fmt.Sprintf("bench-k%dx", i)}})
		if r.Status != 200 {
			b.Fatalf("charge %d: %d %s", i, r.Status, r.Body)
		}
	}
}

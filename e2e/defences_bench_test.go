package e2e

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/app/apptest"
)

// defencesConfig turns every abuse and fraud defence on with limits and
// thresholds too high to trip: what the benchmark measures is what
// checking them costs. The card-testing thresholds keep their defaults
// (the benchmark's charges are neither tiny nor declined).
const defencesConfig = `
abuse:
  enabled: true
  limits:
    ip: {rate: 1000000, per: 1s, burst: 1000000}
    key: {rate: 1000000, per: 1s, burst: 1000000}
    agent: {rate: 1000000, per: 1s, burst: 1000000}
    token_client: {rate: 1000000, per: 1s, burst: 1000000}
    tokenize: {rate: 1000000, per: 1s, burst: 1000000}
    charge: {rate: 1000000, per: 1s, burst: 1000000}
fraud:
  enabled: true
  velocity_limits:
    - {scope: agent, window: hour, metric: count, action: challenge, limit: 1000000000}
    - {scope: card, window: hour, metric: count, action: challenge, limit: 1000000000}
    - {scope: merchant, window: hour, metric: count, action: challenge, limit: 1000000000}
`

// BenchmarkAgentChargeDefencesHTTP is agent charge throughput on
// PostgreSQL with every abuse and fraud defence off and on, in the same
// run: two `perfectpay serve` processes on one database, one with the
// defences off (as BenchmarkAgentCharges runs) and one with all of them
// on (rate limits, auth-failure guard, card-testing detector, velocity
// windows, anomaly detector, rules screener), 16 keep-alive clients
// charging 64 mandates over loopback HTTP. Off and on phases alternate,
// DEFENCES_PAIRS of each (default 5), so the database's growth and the
// machine's changing load fall on both; the summary line gives each
// mode's median, the cost on them and the median of the pairs' costs.
//
//	DEFENCES_PAIRS=20 go test ./e2e/ -run '^$' -bench AgentChargeDefencesHTTP -benchtime 300x -v
func BenchmarkAgentChargeDefencesHTTP(b *testing.B) {
	c := startCluster(b, 1, 20, "PERFECTPAY_ISSUER_ACCESS_TOKEN_TTL=15m", "PERFECTPAY_LOG_LEVEL=error")
	off := c.nodes[0]
	on := apptest.StartProcessConfig(b, c.dbURL, defencesConfig,
		append(slices.Clone(c.env), "PERFECTPAY_ABUSE_ENABLED=true", "PERFECTPAY_FRAUD_ENABLED=true")...)
	s := newShop(b, c)
	tokens := make([]string, 64) // an agent and its mandate each
	for i := range tokens {
		a := s.agent(b)
		tokens[i] = s.token(b, off.URL, a, s.mandate(b, a, 90_000_000))
	}
	const amount = 2500 // not a "tiny" card-testing charge
	charge := func(node *apptest.Proc, i int) error {
		r, err := s.charge(node.URL, tokens[i%len(tokens)], amount, s.card)
		if err == nil && r.Status != 200 {
			err = fmt.Errorf("charge: %d %s", r.Status, r.Body)
		}
		return err
	}

	// Warm both nodes up (connections, plans, windows), then ANALYZE so
	// neither runs on plans made for empty tables.
	for _, node := range []*apptest.Proc{off, on} {
		errs := make(chan error, 8)
		for w := range 8 {
			go func() {
				var err error
				for i := w; i < 400 && err == nil; i += 8 {
					err = charge(node, i)
				}
				errs <- err
			}()
		}
		for range 8 {
			require.NoError(b, <-errs)
		}
	}
	_, err := c.db.Exec(context.Background(), `ANALYZE`)
	require.NoError(b, err)

	// What is measured is what the modes differ in: the "on" node answers
	// with its rate limits and decides with the fraud document, the "off"
	// node neither.
	for _, node := range []*apptest.Proc{off, on} {
		r, err := s.charge(node.URL, tokens[0], amount, s.card)
		require.NoError(b, err)
		require.Equal(b, 200, r.Status, string(r.Body))
		var fraudDoc bool
		require.NoError(b, c.db.QueryRow(context.Background(), `SELECT i.input::jsonb ? 'fraud' FROM charges c
			JOIN decisions d ON d.charge_id = c.id JOIN decision_inputs i ON i.decision_id = d.id WHERE c.id = $1`,
			r.JSON["id"]).Scan(&fraudDoc))
		require.Equal(b, node == on, fraudDoc, "the decision's input has a fraud document")
		require.Equal(b, node == on, r.Header.Get("RateLimit-Policy") != "", "the answer has rate-limit headers")
	}

	pairs := 5
	if v, err := strconv.Atoi(os.Getenv("DEFENCES_PAIRS")); err == nil && v > 0 {
		pairs = v
	}
	rates := map[bool][]float64{}
	cpus := map[bool][]float64{}
	for round := range 2 * pairs {
		defences := round%2 == 1
		node, name := off, "off"
		if defences {
			node, name = on, "on"
		}
		b.Run(name, func(b *testing.B) {
			var next, failed atomic.Int64
			b.SetParallelism(benchClients / max(1, runtime.GOMAXPROCS(0)))
			pid := node.Cmd.Process.Pid
			b.ResetTimer()
			start, cpu0 := time.Now(), cpuNow(pid)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := charge(node, int(next.Add(1))); err != nil && failed.Add(1) == 1 {
						b.Error(err)
					}
				}
			})
			rate := float64(b.N) / time.Since(start).Seconds()
			cpu1 := cpuNow(pid)
			b.ReportMetric(rate, "charges/s")
			reportCPU(b, cpu0, cpu1, cpu1.self-cpu0.self, b.N)
			if b.N > 1 { // not the probe run of b.N = 1
				rates[defences] = append(rates[defences], rate)
				cpus[defences] = append(cpus[defences], float64(cpu1.server-cpu0.server)/float64(time.Millisecond)/float64(b.N))
			}
		})
	}
	if n := min(len(rates[false]), len(rates[true])); n > 0 {
		offRate, onRate := median(rates[false]), median(rates[true])
		offCPU, onCPU := median(cpus[false]), median(cpus[true])
		ratePairs, cpuPairs := make([]float64, n), make([]float64, n)
		for i := range n {
			ratePairs[i] = rates[true][i]/rates[false][i] - 1
			cpuPairs[i] = cpus[true][i]/cpus[false][i] - 1
		}
		b.Logf("defences off %.1f charges/s, on %.1f (medians of %d phases each): throughput %+.1f%% "+
			"(median of the pairs %+.1f%%); server CPU per charge %.3f ms off, %.3f ms on: %+.1f%% (pairs %+.1f%%)",
			offRate, onRate, n, 100*(onRate/offRate-1), 100*median(ratePairs),
			offCPU, onCPU, 100*(onCPU/offCPU-1), 100*median(cpuPairs))
	}
}

// median is the middle value of xs (the mean of the two middle ones).
func median(xs []float64) float64 {
	s := slices.Clone(xs)
	sort.Float64s(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

package policies

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/topdown"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fraudDoc is what the fraud defences give the policy for a charge under
// every limit, with the default limits and the rules screener: velocity of
// the three scopes a limit names, the limits, the screener's accept.
func fraudDoc() *Fraud {
	return &Fraud{
		Velocity: []VelocityStat{
			{Scope: "agent", Window: "hour", Count: 41, Amount: 102_500},
			{Scope: "card", Window: "hour", Count: 41, Declines: 1, Amount: 102_500},
			{Scope: "merchant", Window: "hour", Count: 380, Declines: 3, Amount: 950_000},
		},
		Limits: []VelocityLimit{
			{Scope: "agent", Window: "hour", Metric: "count", Action: "challenge", Limit: 120},
			{Scope: "card", Window: "hour", Metric: "count", Action: "challenge", Limit: 60},
			{Scope: "merchant", Window: "hour", Metric: "count", Action: "challenge", Limit: 600},
		},
		Screener: &Screening{Screener: "rules", Decision: "accept"},
	}
}

// BenchmarkDecideDefences is the policy's share of an agent charge with the
// fraud defences off (no input.fraud) and on (fraudDoc), alternating five
// rounds so a busy machine's load falls on both: the decision and the
// decision record's input JSON and digest, as the charge pipeline makes
// them. cpu-ns/op is the process's CPU time per decision.
//
//	go test ./policies/ -run '^$' -bench DecideDefences -benchtime 5000x -cpu 1
func BenchmarkDecideDefences(b *testing.B) {
	e := newEngine(b)
	ctx := context.Background()
	for i := range 10 {
		on := i%2 == 1
		name := "off"
		if on {
			name = "on"
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			var ru0, ru1 syscall.Rusage
			_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
			n := 0
			for b.Loop() {
				n++
				in := baseInput()
				if on {
					in.Fraud = fraudDoc()
				}
				d, err := e.Decide(ctx, in)
				if err != nil || d.Result != Allow {
					b.Fatalf("%+v %v", d, err)
				}
				raw, err := in.JSON()
				if err != nil {
					b.Fatal(err)
				}
				_ = DigestJSON(raw)
			}
			_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
			cpu := time.Duration(ru1.Utime.Nano()-ru0.Utime.Nano()) + time.Duration(ru1.Stime.Nano()-ru0.Stime.Nano())
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(n), "cpu-ns/op")
		})
	}
}

// TestFraudRulesEvaluationSteps counts OPA's evaluation steps (tracer
// events) for one decision without and with input.fraud (fraudDoc: three
// limits, three windows, the screener's accept, no risk signals): what
// the fraud rules add to every charge when the defences are on. With one
// lookup per limit they add 100; pairing every limit with every window
// added 213.
//
//	go test ./policies/ -run TestFraudRulesEvaluationSteps -v
func TestFraudRulesEvaluationSteps(t *testing.T) {
	e := newEngine(t)
	pq := topdownQuery(t)
	steps := func(f *Fraud) int {
		in := baseInput()
		in.Fraud = f
		in.Limits = &InputLimits{Velocity: e.velocity}
		in.Currencies = in.currencies()
		buf := topdown.NewBufferTracer()
		rs, err := pq.Eval(context.Background(), rego.EvalParsedInput(in.Value()), rego.EvalQueryTracer(buf))
		require.NoError(t, err)
		require.Len(t, rs, 1)
		return len(*buf)
	}
	off, on := steps(nil), steps(fraudDoc())
	t.Logf("evaluation steps: %d without input.fraud, %d with it (+%d)", off, on, on-off)
	assert.LessOrEqual(t, on-off, 120, "the fraud rules' share of a decision grew")
}

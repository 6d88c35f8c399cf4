package fraud_test

import (
	"context"
	"testing"
	"time"

	"github.com/perfectpay/perfectpay/fraud"
	"github.com/perfectpay/perfectpay/policies"
)

// BenchmarkAssessObserve is what the fraud signals cost one agent charge
// in this process, without a store: the velocity windows of four scopes,
// the anomaly detector and the rules screener, then the outcome recorded.
//
//	go test ./fraud/ -run '^$' -bench AssessObserve -benchmem
func BenchmarkAssessObserve(b *testing.B) {
	a := fraud.NewAssessor(fraud.Config{MaxKeys: 1000,
		Limits:  []policies.VelocityLimit{{Scope: "agent", Window: "hour", Metric: "count", Action: "challenge", Limit: 1 << 40}},
		Anomaly: fraud.AnomalyConfig{MinHistory: 10, Threshold: 8, SpendRateFactor: 10, MerchantMix: 0.05}},
		fraud.NewRules(fraud.RulesConfig{Review: 60, Reject: 90}), nil, nil, nil)
	in := policyInput()
	ctx := context.Background()
	t0 := in.Now
	i := 0
	for b.Loop() {
		i++
		in.Now = t0.Add(time.Duration(i) * time.Second)
		a.Assess(ctx, in)
		a.Observe(ctx, in, false)
	}
}

package fraud_test

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/fraud"
	"github.com/perfectpay/perfectpay/policies"
	"github.com/perfectpay/perfectpay/store"
	"github.com/perfectpay/perfectpay/store/memory"
)

// countingRunner counts the reads the Assessor makes of its store.
type countingRunner struct {
	store.Runner[fraud.Tx]
	reads int
}

func (r *countingRunner) Autocommit(ctx context.Context, fn func(tx fraud.Tx) error) error {
	r.reads++
	return r.Runner.Autocommit(ctx, fn)
}

// A caller that read the agent's stored flag with its own reads hands it
// to Assess (WithStanding): Assess uses it and reads nothing itself, for
// a flag, for none and for a failed read; a read of another agent does not
// stand in for this one's.
func TestAssessUsesTheCallersStandingRead(t *testing.T) {
	m := memory.New()
	rec := &countingRunner{Runner: store.Bind(m, func(x *memory.Tx) fraud.Tx { return x })}
	a := fraud.NewAssessor(fraud.Config{MaxKeys: 1000, Anomaly: fraud.AnomalyConfig{MinHistory: 10}}, nil, nil, rec, nil)
	require.True(t, a.ReadsStanding())
	assert.False(t, fraud.NewAssessor(fraud.Config{MaxKeys: 10}, nil, nil, nil, nil).ReadsStanding(), "no store, nothing to read")

	cases := []struct {
		name  string
		agent string
		flag  *fraud.Flag
		err   error
		want  string // the anomaly's message; "" for none
		reads int    // reads Assess made itself
	}{
		{"a flag read by the caller", "agt_1", &fraud.Flag{TenantID: "ten_1", AgentID: "agt_1", Anomaly: policies.Anomaly{Metric: "size", Message: "caller's flag"}}, nil, "caller's flag", 0},
		{"none stands", "agt_1", nil, store.ErrNotFound, "", 0},
		{"the caller's read failed", "agt_1", nil, errors.New("connection reset"), "", 0},
		{"another agent's read", "agt_2", &fraud.Flag{TenantID: "ten_1", AgentID: "agt_2", Anomaly: policies.Anomaly{Message: "agt_2's flag"}}, nil, "", 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rec.reads = 0
			in := policyInput()
			ctx := fraud.WithStanding(context.Background(), "ten_1", c.agent, c.flag, c.err)
			a.Assess(ctx, in)
			assert.Equal(t, c.reads, rec.reads)
			if c.want == "" {
				assert.Nil(t, in.Fraud.Anomaly)
				return
			}
			require.NotNil(t, in.Fraud.Anomaly)
			assert.Equal(t, c.want, in.Fraud.Anomaly.Message)
		})
	}
}

package server_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/app"
	"github.com/perfectpay/perfectpay/app/apptest"
)

// TestPolicyEvaluators: a node configured with either evaluator of the
// charge policy (pipeline.policy_evaluator) allows a charge within the
// mandate and refuses one past its budget with the same reason, with the
// message the policy formats; a name that is neither is refused at start.
func TestPolicyEvaluators(t *testing.T) {
	var messages []string
	for _, ev := range []string{"plan", "topdown"} {
		t.Run(ev, func(t *testing.T) {
			n := apptest.New(t, "memory", func(c *app.Config) { c.Pipeline.PolicyEvaluator = ev })
			s := newShop(t, n)
			m := s.mandate(t, map[string]any{"budget": 1000, "max_amount_per_charge": 1000})
			tok := s.token(t, m)
			r := s.charge(t, tok, 600, nil, "")
			require.Equal(t, 200, r.Status, string(r.Body))
			r = s.charge(t, tok, 500, nil, "")
			require.Equal(t, 403, r.Status, string(r.Body))
			assert.Equal(t, []string{"budget_exceeded"}, reasonCodes(r))
			dec, _ := r.JSON["decision"].(map[string]any)
			rs, _ := dec["reasons"].([]any)
			require.Len(t, rs, 1)
			messages = append(messages, rs[0].(map[string]any)["message"].(string))
		})
	}
	require.Len(t, messages, 2)
	assert.Equal(t, messages[0], messages[1], "both evaluators format the same message")
	assert.Contains(t, messages[0], "exceeds the remaining budget")
	cfg := app.Defaults()
	assert.Equal(t, "plan", cfg.Pipeline.PolicyEvaluator)
	cfg.Pipeline.PolicyEvaluator = "wasm"
	err := cfg.Validate()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "pipeline.policy_evaluator must be plan or topdown")
}

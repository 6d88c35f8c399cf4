package server_test

import (
	"context"
	"encoding/json"
	"net/url"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/accounts"
	"github.com/perfectpay/perfectpay/app"
	"github.com/perfectpay/perfectpay/app/apptest"
	"github.com/perfectpay/perfectpay/audit"
	"github.com/perfectpay/perfectpay/fraud"
	"github.com/perfectpay/perfectpay/webhooks"
)

func fraudNode(t *testing.T, driver string, opt func(c *app.FraudConfig)) *apptest.Node {
	return apptest.New(t, driver, func(c *app.Config) {
		c.Fraud.Enabled = true
		c.Fraud.Screener = "none"
		c.Fraud.VelocityLimits = nil
		c.Fraud.Anomaly = fraud.AnomalyConfig{}
		opt(&c.Fraud)
	})
}

func reasonMessages(r *apptest.Response) []string {
	var out []string
	if d, ok := r.JSON["decision"].(map[string]any); ok {
		rs, _ := d["reasons"].([]any)
		for _, x := range rs {
			out = append(out, x.(map[string]any)["message"].(string))
		}
	}
	return out
}

// The velocity windows reach the policy: past the limit the charge is
// denied with a reason that carries the numbers.
func TestVelocityReasonsCarryTheNumbers(t *testing.T) {
	apptest.EachDriver(t, func(t *testing.T, driver string) {
		n := fraudNode(t, driver, func(c *app.FraudConfig) {
			c.VelocityLimits = []app.VelocityLimit{
				{Scope: "merchant", Window: "hour", Metric: "count", Action: "deny", Limit: 3},
				{Scope: "agent", Window: "day", Metric: "amount", Action: "challenge", Limit: 100_000},
			}
		})
		s := newShop(t, n)
		m := s.mandate(t, map[string]any{"budget": 1_000_000, "max_amount_per_charge": 100_000, "approval_threshold": 100_000})
		tok := s.token(t, m)
		for i := range 3 {
			r := s.charge(t, tok, 900, nil, "")
			require.Equal(t, 200, r.Status, "charge %d: %s", i+1, r.Body)
		}
		r := s.charge(t, tok, 900, nil, "")
		require.Equal(t, 403, r.Status, string(r.Body))
		assert.Equal(t, []string{"velocity_merchant_charges_hour"}, reasonCodes(r))
		assert.Equal(t, []string{"3 charges at this merchant in the last hour, limit 3"}, reasonMessages(r))

		// The decision record holds the signals the policy saw.
		dec, ok := r.JSON["decision"].(map[string]any)
		require.True(t, ok)
		_ = dec
	})
}

// An agent's charges of a usual size build its history; one far out of
// line flags it (event agent.anomaly, audited) and steps it up; its next
// ordinary charges step up too, until a person clears the flag.
func TestAnomalousAgentStepsUpUntilCleared(t *testing.T) {
	apptest.EachDriver(t, func(t *testing.T, driver string) {
		n := fraudNode(t, driver, func(c *app.FraudConfig) {
			c.Anomaly = fraud.AnomalyConfig{MinHistory: 10, Threshold: 6}
		})
		s := newShop(t, n)
		m := s.mandate(t, map[string]any{"budget": 1_000_000, "max_amount_per_charge": 100_000, "approval_threshold": 100_000})
		tok := s.token(t, m)
		for i := range 12 {
			r := s.charge(t, tok, int64(1800+(i%4)*100), nil, "")
			require.Equal(t, 200, r.Status, "charge %d: %s", i+1, r.Body)
		}
		r := s.charge(t, tok, 90_000, nil, "")
		require.Equal(t, 402, r.Status, "a charge fifty times the usual: %s", r.Body)
		assert.Equal(t, []string{"agent_anomaly"}, reasonCodes(r))
		r = s.charge(t, tok, 1900, nil, "")
		require.Equal(t, 402, r.Status, "the flag stands: %s", r.Body)
		assert.Equal(t, []string{"agent_anomaly"}, reasonCodes(r))

		r = n.Do(t, apptest.Req{Method: "GET", Path: "/v1/agents/" + s.agent + "/anomaly", Key: s.key})
		require.Equal(t, 200, r.Status, string(r.Body))
		assert.Equal(t, true, r.JSON["flagged"])
		assert.Equal(t, "charge_size", r.JSON["metric"])
		boot, other := n.Tenant(t)
		_ = boot
		r = n.Do(t, apptest.Req{Method: "GET", Path: "/v1/agents/" + s.agent + "/anomaly", Key: other})
		assert.Equal(t, false, r.JSON["flagged"], "another tenant sees nothing")

		tenant := tenantOf(t, n, s.key)
		evs, _, err := n.App.Webhooks.ListEvents(context.Background(), webhooks.EventFilter{TenantID: tenant, Type: fraud.ActionAnomaly, Limit: 10})
		require.NoError(t, err)
		require.Len(t, evs, 1, "announced once")
		var ev struct {
			Object struct {
				Agent, Metric string
			} `json:"object"`
		}
		require.NoError(t, json.Unmarshal(evs[0].Data, &ev))
		assert.Equal(t, s.agent, ev.Object.Agent)

		r = n.Do(t, apptest.Req{Method: "POST", Path: "/v1/agents/" + s.agent + "/anomaly/clear", Key: s.key})
		require.Equal(t, 200, r.Status, string(r.Body))
		assert.Equal(t, false, r.JSON["flagged"])
		entries, err := n.App.Audit.List(context.Background(), audit.Filter{TenantID: tenant, Action: fraud.ActionAnomalyCleared})
		require.NoError(t, err)
		require.Len(t, entries, 1)
		assert.Equal(t, audit.ActorAPIKey, entries[0].ActorType, "cleared by a person's key, audited")
		r = n.Do(t, apptest.Req{Method: "POST", Path: "/v1/agents/" + s.agent + "/anomaly/clear", Key: s.key})
		assert.Equal(t, 409, r.Status, "nothing left to clear")

		r = s.charge(t, tok, 1900, nil, "")
		assert.Equal(t, 200, r.Status, "cleared: %s", r.Body)
	})
}

func tenantOf(t *testing.T, n *apptest.Node, key string) string {
	t.Helper()
	r := n.Do(t, apptest.Req{Method: "GET", Path: "/v1/tenant", Key: key})
	require.Equal(t, 200, r.Status, string(r.Body))
	return r.JSON["id"].(string)
}

// An agent's own risk signals are checked, recorded in the decision's
// input, and can ask for review or block, never allow.
func TestAgentRiskSignals(t *testing.T) {
	apptest.EachDriver(t, func(t *testing.T, driver string) {
		n := fraudNode(t, driver, func(*app.FraudConfig) {})
		s := newShop(t, n)
		m := s.mandate(t, map[string]any{"budget": 1_000_000, "max_amount_per_charge": 100_000, "approval_threshold": 2000})
		tok := s.token(t, m)
		sig := func(typ string, score float64, action string) map[string]any {
			return map[string]any{"risk_signals": []map[string]any{{"type": typ, "score": score, "action": action}}}
		}
		r := s.charge(t, tok, 1000, sig("device_fingerprint", 12, "allow"), "")
		require.Equal(t, 200, r.Status, "accepted: %s", r.Body)
		r = s.charge(t, tok, 2500, sig("trusted_buyer", 0, "allow"), "")
		require.Equal(t, 402, r.Status, "allow never lifts the approval threshold: %s", r.Body)
		assert.Equal(t, []string{"approval_required"}, reasonCodes(r))
		r = s.charge(t, tok, 1000, sig("account_takeover", 91.5, "block"), "")
		require.Equal(t, 403, r.Status, string(r.Body))
		assert.Equal(t, []string{"agent_risk_signal"}, reasonCodes(r))
		assert.Equal(t, []string{"the agent's own risk signal account_takeover (score 91.5) says block"}, reasonMessages(r))
		r = s.charge(t, tok, 1000, sig("new_device", 40, "review"), "")
		require.Equal(t, 402, r.Status, string(r.Body))
		assert.Equal(t, []string{"agent_risk_signal_review"}, reasonCodes(r))

		for _, bad := range []map[string]any{
			sig("4242424242424242", 1, "review"),
			sig("x", 101, "review"),
			sig("x", 1, "approve"),
			{"risk_signals": "high"},
			{"risk_signals": []map[string]any{{"type": "x", "score": 1, "action": "review", "extra": true}}},
		} {
			r = s.charge(t, tok, 1000, bad, "")
			require.Equal(t, 400, r.Status, "%v: %s", bad, r.Body)
			assert.Equal(t, "parameter_invalid", r.ErrorCode())
			assert.NotContains(t, string(r.Body), "4242424242424242")
		}
	})
}

// A merchant's charge (secret key) takes risk_signals too: checked as an
// agent's are, and recorded in the charge's audit entry (charge.created,
// written in the charge's own transaction); a refused signal refuses the
// charge before anything is written.
func TestMerchantChargeRecordsRiskSignals(t *testing.T) {
	apptest.EachDriver(t, func(t *testing.T, driver string) {
		n := apptest.New(t, driver)
		b, sk := n.Tenant(t)
		card := tokenize(t, n, apptest.Key(b, accounts.KindPublishable, accounts.ModeTest), "4242424242424242", "123")
		body := func(signals any) map[string]any {
			return map[string]any{"amount": 2000, "currency": "usd", "payment_method": card, "risk_signals": signals}
		}
		r := charge(t, n, sk, body([]map[string]any{{"type": "new_device", "score": 40, "action": "review"},
			{"type": "trusted_buyer", "score": 0, "action": "allow"}}), "")
		require.Equal(t, 200, r.Status, string(r.Body))
		id := r.JSON["id"].(string)
		assert.NotContains(t, string(r.Body), "risk_signals", "not part of the charge object")
		created := auditEvents(t, n, sk, url.Values{"action": {"charge.created"}, "target": {id}})
		require.Len(t, created, 1)
		assert.Equal(t, []any{
			map[string]any{"type": "new_device", "score": 40.0, "action": "review"},
			map[string]any{"type": "trusted_buyer", "score": 0.0, "action": "allow"},
		}, created[0]["data"].(map[string]any)["risk_signals"])

		r = charge(t, n, sk, body(nil), "")
		require.Equal(t, 200, r.Status, "null: no signals: %s", r.Body)
		plain := auditEvents(t, n, sk, url.Values{"action": {"charge.created"}, "target": {r.JSON["id"].(string)}})
		require.Len(t, plain, 1)
		assert.NotContains(t, plain[0]["data"], "risk_signals")

		for param, bad := range map[string]any{
			"risk_signals[0].type":   []map[string]any{{"type": "4242424242424242", "score": 1, "action": "review"}},
			"risk_signals[1].score":  []map[string]any{{"type": "a", "score": 1, "action": "review"}, {"type": "b", "score": -1, "action": "review"}},
			"risk_signals[0].action": []map[string]any{{"type": "a", "score": 1, "action": "approve"}},
			"risk_signals":           "high",
		} {
			r = charge(t, n, sk, body(bad), "")
			require.Equal(t, 400, r.Status, "%v: %s", bad, r.Body)
			assert.Equal(t, "parameter_invalid", r.ErrorCode())
			assert.Equal(t, param, r.JSON["error"].(map[string]any)["param"])
			assert.NotContains(t, string(r.Body), "4242424242424242")
		}
		list := n.Do(t, apptest.Req{Method: "GET", Path: "/v1/charges", Key: sk})
		require.Equal(t, 200, list.Status)
		assert.Len(t, list.JSON["data"], 2, "a refused signal wrote nothing")
	})
}

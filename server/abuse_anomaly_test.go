package server_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/app"
	"github.com/perfectpay/perfectpay/app/apptest"
	"github.com/perfectpay/perfectpay/fraud"
	"github.com/perfectpay/perfectpay/store/pgtest"
	"github.com/perfectpay/perfectpay/webhooks"
)

// anomalyNode is a node on the shared database dbURL whose detector flags
// a charge six robust deviations from the agent's last ten or more.
func anomalyNode(t *testing.T, dbURL string) *apptest.Node {
	return apptest.NewWithURL(t, "postgres", dbURL, func(c *app.Config) {
		c.Fraud.Enabled = true
		c.Fraud.Screener = "none"
		c.Fraud.VelocityLimits = nil
		c.Fraud.Anomaly = fraud.AnomalyConfig{MinHistory: 10, Threshold: 6}
	})
}

// An anomaly flag is stored: raised on one node it steps the agent up on
// another, cleared on that other it stops on the first, and a node started
// later on the same database still sees a standing flag.
func TestAnomalyFlagHoldsOnEveryNode(t *testing.T) {
	dbURL := pgtest.NewURL(t)
	a, b := anomalyNode(t, dbURL), anomalyNode(t, dbURL)
	sa := newShop(t, a)
	m := sa.mandate(t, map[string]any{"budget": 1_000_000, "max_amount_per_charge": 100_000, "approval_threshold": 100_000})
	sb := *sa
	sb.n = b
	tokA, tokB := sa.token(t, m), sb.token(t, m)

	r := sb.charge(t, tokB, 1900, nil, "")
	require.Equal(t, 200, r.Status, "no flag yet: %s", r.Body)
	for i := range 12 { // the history that detects is node A's
		r = sa.charge(t, tokA, int64(1800+(i%4)*100), nil, "")
		require.Equal(t, 200, r.Status, "charge %d: %s", i+1, r.Body)
	}
	r = sa.charge(t, tokA, 90_000, nil, "")
	require.Equal(t, 402, r.Status, "flagged on A: %s", r.Body)
	assert.Equal(t, []string{"agent_anomaly"}, reasonCodes(r))

	r = sb.charge(t, tokB, 1900, nil, "")
	require.Equal(t, 402, r.Status, "B steps the agent up too: %s", r.Body)
	assert.Equal(t, []string{"agent_anomaly"}, reasonCodes(r))
	r = b.Do(t, apptest.Req{Method: "GET", Path: "/v1/agents/" + sa.agent + "/anomaly", Key: sa.key})
	require.Equal(t, 200, r.Status, string(r.Body))
	assert.Equal(t, true, r.JSON["flagged"])
	assert.Equal(t, "charge_size", r.JSON["metric"])

	r = b.Do(t, apptest.Req{Method: "POST", Path: "/v1/agents/" + sa.agent + "/anomaly/clear", Key: sa.key})
	require.Equal(t, 200, r.Status, string(r.Body))
	assert.Equal(t, false, r.JSON["flagged"])
	r = a.Do(t, apptest.Req{Method: "POST", Path: "/v1/agents/" + sa.agent + "/anomaly/clear", Key: sa.key})
	assert.Equal(t, 409, r.Status, "cleared everywhere: %s", r.Body)
	r = sa.charge(t, tokA, 1900, nil, "")
	require.Equal(t, 200, r.Status, "cleared on B, A no longer steps up: %s", r.Body)

	r = sa.charge(t, tokA, 90_000, nil, "")
	require.Equal(t, 402, r.Status, "flagged again on A: %s", r.Body)
	c := anomalyNode(t, dbURL) // a node started after the flag, as after a restart
	sc := *sa
	sc.n = c
	r = sc.charge(t, sc.token(t, m), 1900, nil, "")
	require.Equal(t, 402, r.Status, "the new node sees the standing flag: %s", r.Body)
	assert.Equal(t, []string{"agent_anomaly"}, reasonCodes(r))

	tenant := tenantOf(t, a, sa.key)
	evs, _, err := c.App.Webhooks.ListEvents(context.Background(), webhooks.EventFilter{TenantID: tenant, Type: fraud.ActionAnomaly, Limit: 10})
	require.NoError(t, err)
	assert.Len(t, evs, 2, "each flag announced once, by the node that raised it")
	evs, _, err = c.App.Webhooks.ListEvents(context.Background(), webhooks.EventFilter{TenantID: tenant, Type: fraud.ActionAnomalyCleared, Limit: 10})
	require.NoError(t, err)
	assert.Len(t, evs, 1)
}

// TestAnomalyRoutesWithFraudOff: with the fraud signals turned off the
// routes still answer, saying so, rather than 404.
func TestAnomalyRoutesWithFraudOff(t *testing.T) {
	n := apptest.New(t, "memory")
	_, sk := n.Tenant(t)
	r := n.Do(t, apptest.Req{Method: "GET", Path: "/v1/agents/agt_x/anomaly", Key: sk})
	assert.Equal(t, 409, r.Status, string(r.Body))
	assert.Equal(t, "fraud_signals_off", r.ErrorCode())
	r = n.Do(t, apptest.Req{Method: "POST", Path: "/v1/agents/agt_x/anomaly/clear", Key: sk, Header: map[string]string{"Idempotency-Key": "c1"}})
	assert.Equal(t, 409, r.Status, string(r.Body))
	assert.Equal(t, "fraud_signals_off", r.ErrorCode())
}

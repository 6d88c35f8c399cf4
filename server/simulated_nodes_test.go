package server_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/accounts"
	"github.com/perfectpay/perfectpay/app/apptest"
	"github.com/perfectpay/perfectpay/store/pgtest"
)

// Two nodes on one PostgreSQL share the simulated acquirer as they would a
// real one: a charge authorized on node A is captured, refunded or voided
// through node B.
func TestSimulatedAcquirerIsSharedByNodes(t *testing.T) {
	url := pgtest.NewURL(t)
	a := apptest.NewWithURL(t, "postgres", url)
	b := apptest.NewWithURL(t, "postgres", url)
	boot, sk := a.Tenant(t)
	pk := apptest.Key(boot, accounts.KindPublishable, accounts.ModeTest)
	tok := tokenize(t, a, pk, "4242424242424242", "123")

	r := charge(t, a, sk, map[string]any{"amount": 5000, "currency": "usd", "payment_method": tok, "capture": false}, "")
	require.Equal(t, 200, r.Status, string(r.Body))
	id := r.JSON["id"].(string)

	r = b.Do(t, apptest.Req{Method: "POST", Path: "/v1/charges/" + id + "/capture", Key: sk, Body: map[string]any{"amount": 4000}})
	require.Equal(t, 200, r.Status, "node B captures node A's authorization: %s", r.Body)
	assert.EqualValues(t, 4000, r.JSON["amount_captured"])

	r = b.Do(t, apptest.Req{Method: "POST", Path: "/v1/refunds", Key: sk, Body: map[string]any{"charge": id, "amount": 1500}})
	require.Equal(t, 200, r.Status, string(r.Body))
	assert.Equal(t, "succeeded", r.JSON["status"], "node B refunds it")
	r = a.Do(t, apptest.Req{Method: "POST", Path: "/v1/refunds", Key: sk, Body: map[string]any{"charge": id, "amount": 2500}})
	require.Equal(t, 200, r.Status, string(r.Body))
	assert.Equal(t, "succeeded", r.JSON["status"], "and node A refunds the rest")
	auth, ok := b.App.Simulator.Authorization(id)
	require.True(t, ok)
	assert.Equal(t, int64(4000), auth.Captured)
	assert.Equal(t, int64(4000), auth.Refunded)

	r = charge(t, b, sk, map[string]any{"amount": 300, "currency": "usd", "payment_method": tok, "capture": false}, "")
	require.Equal(t, 200, r.Status, string(r.Body))
	vid := r.JSON["id"].(string)
	r = a.Do(t, apptest.Req{Method: "POST", Path: "/v1/charges/" + vid + "/void", Key: sk})
	require.Equal(t, 200, r.Status, "node A voids node B's authorization: %s", r.Body)
	auth, ok = a.App.Simulator.Authorization(vid)
	require.True(t, ok)
	assert.True(t, auth.Voided)
}

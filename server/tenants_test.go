package server_test

import (
	"context"
	"fmt"
	"net/url"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/accounts"
	"github.com/perfectpay/perfectpay/app"
	"github.com/perfectpay/perfectpay/app/apptest"
	"github.com/perfectpay/perfectpay/audit"
	"github.com/perfectpay/perfectpay/authz"
)

// operatorToken configures a node with a fresh platform operator token.
func operatorToken() (string, func(*app.Config)) {
	tok, hash := accounts.NewConfigToken("op_")
	return tok, func(c *app.Config) { c.Platform.OperatorKey = hash }
}

func agentCharge(t *testing.T, n *apptest.Node, tok string, o objects) *apptest.Response {
	return n.Do(t, apptest.Req{Method: "POST", Path: "/v1/charges", Key: tok, Header: map[string]string{"Idempotency-Key": "tr-" + randID()},
		Body: map[string]any{"amount": 100, "currency": "USD", "payment_method": o["token"], "merchant": o["merchant"]}})
}

func revokeTenant(t *testing.T, n *apptest.Node, id, tok string) *apptest.Response {
	return n.Do(t, apptest.Req{Method: "POST", Path: "/v1/tenants/" + id + "/revoke", Key: tok})
}

// expectTenantRevoked checks that every credential of the revoked tenant
// is refused: its keys, its agent's token, a new token for the agent.
func expectTenantRevoked(t *testing.T, n *apptest.Node, o objects) {
	t.Helper()
	r := n.Do(t, apptest.Req{Method: "GET", Path: "/v1/tenant", Key: o["sk"]})
	assert.Equal(t, 403, r.Status, string(r.Body))
	assert.Equal(t, "tenant_revoked", r.ErrorCode())
	r = n.Do(t, apptest.Req{Method: "POST", Path: "/v1/charges", Key: o["sk"], Body: map[string]any{
		"amount": 500, "currency": "usd", "payment_method": o["token"], "capture": true}})
	assert.Equal(t, 403, r.Status, string(r.Body))
	assert.Equal(t, "tenant_revoked", r.ErrorCode())
	r = agentCharge(t, n, o["agent_token"], o)
	assert.Equal(t, 403, r.Status, string(r.Body))
	assert.Equal(t, "tenant_revoked", r.ErrorCode(), string(r.Body))
}

func TestTenantRevoke(t *testing.T) {
	apptest.EachDriver(t, func(t *testing.T, driver string) {
		tok, withOperator := operatorToken()
		n := apptest.New(t, driver, withOperator)
		victim, vb := populate(t, n, true)
		other, _ := populate(t, n, true)
		id := vb.Tenant.ID
		agent, secret := secretAgent(t, n, victim["sk"], map[string]any{
			"grant_types": []string{authz.GrantClientCredentials}, "scopes": []string{"charges:write"}})
		mandate := createMandate(t, n, victim["sk"], agent, victim["token"])
		r := agentCharge(t, n, victim["agent_token"], victim)
		require.Equal(t, 200, r.Status, "the agent charges before: %s", r.Body)
		charges := func() int64 { return (&world{n: n, sk: other["sk"]}).count(t, "/v1/charges") }
		otherCharges := charges()

		// Only the operator's token opens the endpoint.
		for name, cred := range map[string]string{"none": "", "tenant key": victim["sk"], "other tenant key": other["sk"],
			"agent token": victim["agent_token"], "wrong operator token": tok + "x"} {
			r := revokeTenant(t, n, id, cred)
			assert.Equal(t, 401, r.Status, "%s: %s", name, r.Body)
			assert.Equal(t, "invalid_operator_token", r.ErrorCode(), name)
		}
		assert.Equal(t, 200, n.Do(t, apptest.Req{Method: "GET", Path: "/v1/tenant", Key: victim["sk"]}).Status, "refused calls changed nothing")
		assert.Equal(t, 404, revokeTenant(t, n, "ten_nope", tok).Status)

		r = revokeTenant(t, n, id, tok)
		require.Equal(t, 200, r.Status, string(r.Body))
		assert.Equal(t, "revoked", r.JSON["status"])
		expectTenantRevoked(t, n, victim)
		for _, k := range vb.Keys {
			r := n.Do(t, apptest.Req{Method: "GET", Path: "/v1/tenant", Key: k.Secret})
			assert.Equal(t, "tenant_revoked", r.ErrorCode(), "%s %s key", k.Key.Kind, k.Key.Mode)
		}
		code, body, _ := postForm(t, n, formReq{path: "/oauth2/token", basic: [2]string{agent, secret}, form: url.Values{
			"grant_type": {"client_credentials"}, "scope": {"charges:write"},
			"authorization_details": {fmt.Sprintf(`[{"type":"payment_mandate","mandate_id":%q}]`, mandate)}}})
		assert.NotEqual(t, 200, code, "no new token for a revoked tenant's agent: %v", body)

		// Revoking again is harmless; the other tenant is untouched.
		assert.Equal(t, 200, revokeTenant(t, n, id, tok).Status)
		assert.Equal(t, 200, agentCharge(t, n, other["agent_token"], other).Status)
		assert.Equal(t, otherCharges+1, charges())

		// Audited, once, under the tenant, as the operator.
		var revoked []audit.Entry
		entries, err := n.App.Audit.List(context.Background(), audit.Filter{TenantID: id, Limit: 1000})
		require.NoError(t, err)
		for _, e := range entries {
			if e.Action == "tenant.revoked" {
				revoked = append(revoked, e)
			}
		}
		require.Len(t, revoked, 1)
		assert.Equal(t, id, revoked[0].Target)
		assert.Equal(t, "platform_operator", revoked[0].ActorID)
		assert.NotContains(t, n.Logs.String(), "access audit failed", "the operator's requests are audited")
	})
}

// A tenant revoked through node A is refused by node B on the next
// request: keys and charges alike (B's caches do not keep it alive).
func TestTenantRevokeAcrossNodes(t *testing.T) {
	tok, withOperator := operatorToken()
	a := apptest.New(t, "postgres", withOperator)
	b := apptest.NewWithURL(t, "postgres", a.App.Config.Store.Postgres.URL, withOperator)
	victim, vb := populate(t, a, true)
	// B has seen the agent's token and the key as good.
	require.Equal(t, 200, agentCharge(t, b, victim["agent_token"], victim).Status)
	require.Equal(t, 200, b.Do(t, apptest.Req{Method: "GET", Path: "/v1/tenant", Key: victim["sk"]}).Status)

	require.Equal(t, 200, revokeTenant(t, a, vb.Tenant.ID, tok).Status)
	expectTenantRevoked(t, b, victim)
}

// With no platform.operator_key the operator endpoints refuse everyone.
func TestTenantRevokeOff(t *testing.T) {
	apptest.EachDriver(t, func(t *testing.T, driver string) {
		n := apptest.New(t, driver)
		b, sk := n.Tenant(t)
		for _, cred := range []string{"", sk, "op_guess"} {
			assert.Equal(t, 401, revokeTenant(t, n, b.Tenant.ID, cred).Status)
		}
		assert.Equal(t, 200, n.Do(t, apptest.Req{Method: "GET", Path: "/v1/tenant", Key: sk}).Status)
	})
}

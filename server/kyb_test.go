package server_test

import (
	"net/url"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/accounts"
	"github.com/perfectpay/perfectpay/app"
	"github.com/perfectpay/perfectpay/app/apptest"
)

// TestTenantVerification: live-mode charges are refused, with a clear
// error, until the operator records the tenant as verified with its
// evidence; test mode works meanwhile; each change is audited; only the
// operator sets it.
func TestTenantVerification(t *testing.T) {
	apptest.EachDriver(t, func(t *testing.T, driver string) {
		op, withOp := operatorToken()
		n := apptest.New(t, driver, withOp)
		b, sk := n.Tenant(t)
		live := apptest.Key(b, accounts.KindSecret, accounts.ModeLive)
		liveCard := tokenize(t, n, apptest.Key(b, accounts.KindPublishable, accounts.ModeLive), "4242424242424242", "123")
		testCard := tokenize(t, n, apptest.Key(b, accounts.KindPublishable, accounts.ModeTest), "4242424242424242", "123")
		charge := func(key, card string) *apptest.Response {
			return n.Do(t, apptest.Req{Method: "POST", Path: "/v1/charges", Key: key,
				Body: map[string]any{"amount": 500, "currency": "usd", "payment_method": card}})
		}
		setV := func(body map[string]any) *apptest.Response {
			return n.Do(t, apptest.Req{Method: "POST", Path: "/v1/tenants/" + b.Tenant.ID + "/verification", Key: op, Body: body})
		}

		r := n.Do(t, apptest.Req{Method: "GET", Path: "/v1/tenant/verification", Key: sk})
		require.Equal(t, 200, r.Status, string(r.Body))
		assert.Equal(t, "unverified", r.JSON["status"])
		r = charge(live, liveCard)
		require.Equal(t, 403, r.Status, string(r.Body))
		assert.Equal(t, "tenant_unverified", r.ErrorCode())
		assert.Contains(t, r.JSON["error"].(map[string]any)["message"], "unverified")
		assert.Equal(t, 200, charge(sk, testCard).Status, "test mode works meanwhile")

		// Only the operator sets it; bad input is refused whole.
		r = n.Do(t, apptest.Req{Method: "POST", Path: "/v1/tenants/" + b.Tenant.ID + "/verification", Key: sk,
			Body: map[string]any{"status": "verified"}})
		assert.Equal(t, 401, r.Status, string(r.Body))
		for _, body := range []map[string]any{
			{"status": "approved"}, {"status": "verified"}, {"status": "pending", "country": "XX"},
			{"status": "pending", "notes": string(make([]byte, 600))}, {"status": "pending", "extra": 1},
		} {
			r := setV(body)
			assert.Equal(t, 400, r.Status, "%v: %s", body, r.Body)
		}
		r = n.Do(t, apptest.Req{Method: "POST", Path: "/v1/tenants/ten_missing/verification", Key: op, Body: map[string]any{"status": "pending"}})
		assert.Equal(t, 404, r.Status, string(r.Body))

		r = setV(map[string]any{"status": "pending", "legal_name": "Acme Books Ltd", "country": "GB"})
		require.Equal(t, 200, r.Status, string(r.Body))
		assert.Equal(t, "tenant_unverified", charge(live, liveCard).ErrorCode())
		r = setV(map[string]any{"status": "verified", "legal_name": "Acme Books Ltd", "registration_number": "01234567",
			"country": "GB", "evidence_reference": "kyb/2026/acme-incorporation.pdf", "reviewed_by": "ops@perfectpay"})
		require.Equal(t, 200, r.Status, string(r.Body))
		assert.Equal(t, "verified", r.JSON["status"])
		r = charge(live, liveCard)
		require.Equal(t, 200, r.Status, string(r.Body))
		assert.Equal(t, true, r.JSON["livemode"])
		r = n.Do(t, apptest.Req{Method: "GET", Path: "/v1/tenants/" + b.Tenant.ID + "/verification", Key: op})
		require.Equal(t, 200, r.Status, string(r.Body))
		assert.Equal(t, "kyb/2026/acme-incorporation.pdf", r.JSON["evidence_reference"])

		r = setV(map[string]any{"status": "rejected", "notes": "registration lapsed"})
		require.Equal(t, 200, r.Status, string(r.Body))
		assert.Equal(t, "tenant_unverified", charge(live, liveCard).ErrorCode())

		// Every change is in the tenant's audit trail, from and to.
		changes := auditEvents(t, n, sk, url.Values{"action": {"tenant.verification_set"}})
		require.Len(t, changes, 3)
		last := changes[2]["data"].(map[string]any)
		assert.Equal(t, "verified", last["from"])
		assert.Equal(t, "rejected", last["status"])
	})
}

// verifiedNode is a node with an operator token, and verifyTenant records
// a tenant as verified on it, for tests of live mode (live-mode charges
// need a verified tenant).
func verifiedNode(t *testing.T, driver string, opts ...func(*app.Config)) (*apptest.Node, func(tenantID string)) {
	t.Helper()
	op, withOp := operatorToken()
	n := apptest.New(t, driver, append(opts, withOp)...)
	return n, func(tenantID string) {
		t.Helper()
		r := n.Do(t, apptest.Req{Method: "POST", Path: "/v1/tenants/" + tenantID + "/verification", Key: op, Body: map[string]any{
			"status": "verified", "legal_name": "Test Tenant Ltd", "country": "GB", "evidence_reference": "kyb/test.pdf"}})
		require.Equal(t, 200, r.Status, string(r.Body))
	}
}

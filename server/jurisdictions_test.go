package server_test

import (
	"net/url"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/accounts"
	"github.com/perfectpay/perfectpay/app/apptest"
	"github.com/perfectpay/perfectpay/authz"
)

// TestOperatorJurisdictions: the platform operator bounds the countries a
// tenant may operate in. The tenant's own list may name only those (a
// clear country_not_permitted otherwise); while the tenant's list is
// empty the bound itself restricts charges; only the operator sets it,
// bad lists are refused whole, and each change is audited.
func TestOperatorJurisdictions(t *testing.T) {
	apptest.EachDriver(t, func(t *testing.T, driver string) {
		op, withOp := operatorToken()
		n := apptest.New(t, driver, withOp)
		b, sk := n.Tenant(t)
		live := apptest.Key(b, accounts.KindSecret, accounts.ModeLive)
		s := &shop{n: n, key: sk}
		s.card = tokenize(t, n, apptest.Key(b, accounts.KindPublishable, accounts.ModeTest), "4242424242424242", "123")
		s.merchant = merchantAccount(t, n, "Acme Books", "5942", "US")
		dublin := merchantAccount(t, n, "Dublin Books", "5942", "IE")
		s.agent, s.secret = secretAgent(t, n, sk, map[string]any{
			"grant_types": []string{authz.GrantClientCredentials}, "scopes": []string{"charges:write"}})
		tok := s.token(t, s.mandate(t, map[string]any{"allowed_merchants": []string{s.merchant, dublin}}))
		path := "/v1/tenants/" + b.Tenant.ID + "/jurisdictions"
		bound := func(key string, body any) *apptest.Response {
			return n.Do(t, apptest.Req{Method: "POST", Path: path, Key: key, Body: body})
		}
		allow := func(codes ...string) *apptest.Response {
			return n.Do(t, apptest.Req{Method: "POST", Path: "/v1/tenant/allowed_countries", Key: live,
				Body: map[string]any{"allowed_countries": codes}})
		}

		// Only the operator sets or reads it.
		assert.Equal(t, 401, bound(sk, map[string]any{"countries": []string{"IE"}}).Status)
		assert.Equal(t, 401, n.Do(t, apptest.Req{Method: "GET", Path: path, Key: live}).Status)
		for _, body := range []any{map[string]any{}, map[string]any{"countries": []string{"IE", "XX"}}, map[string]any{"countries": "IE"}} {
			r := bound(op, body)
			assert.Equal(t, 400, r.Status, "%v: %s", body, r.Body)
		}
		assert.Equal(t, 404, n.Do(t, apptest.Req{Method: "POST", Path: "/v1/tenants/ten_nope/jurisdictions", Key: op,
			Body: map[string]any{"countries": []string{"IE"}}}).Status)

		r := bound(op, map[string]any{"countries": []string{"ie", "GB"}})
		require.Equal(t, 200, r.Status, string(r.Body))
		assert.Equal(t, []any{"GB", "IE"}, r.JSON["operator_countries"])
		r = n.Do(t, apptest.Req{Method: "GET", Path: "/v1/tenant/allowed_countries", Key: sk})
		assert.Equal(t, []any{"GB", "IE"}, r.JSON["operator_countries"], "the tenant sees its bound")

		// The tenant's list empty: the bound restricts charges.
		r = s.charge(t, tok, 1000, nil, "")
		require.Equal(t, 403, r.Status, string(r.Body))
		assert.Equal(t, []string{"tenant_country_not_allowed"}, reasonCodes(r))
		r = s.charge(t, tok, 1000, map[string]any{"merchant": dublin}, "")
		require.Equal(t, 200, r.Status, string(r.Body))

		// The tenant may not widen it.
		r = allow("US", "IE")
		require.Equal(t, 400, r.Status, string(r.Body))
		assert.Equal(t, "country_not_permitted", r.ErrorCode())
		assert.Contains(t, r.JSON["error"].(map[string]any)["message"], "US is outside the countries the platform operator permits this tenant (GB, IE)")
		r = allow("IE")
		require.Equal(t, 200, r.Status, string(r.Body))

		// Narrowed by the operator below the tenant's list: the bound holds.
		require.Equal(t, 200, bound(op, map[string]any{"countries": []string{"GB"}}).Status)
		r = s.charge(t, tok, 1000, map[string]any{"merchant": dublin}, "")
		require.Equal(t, 403, r.Status, string(r.Body))
		// Lifted: the tenant's own list applies again.
		require.Equal(t, 200, bound(op, map[string]any{"countries": []string{}}).Status)
		r = s.charge(t, tok, 1000, map[string]any{"merchant": dublin}, "")
		require.Equal(t, 200, r.Status, string(r.Body))
		require.Equal(t, 200, allow("US", "IE").Status)

		changes := auditEvents(t, n, sk, url.Values{"action": {"tenant.jurisdictions_set"}})
		require.Len(t, changes, 3)
		first := changes[0]["data"].(map[string]any)
		assert.Equal(t, []any{}, first["from"])
		assert.Equal(t, []any{"GB", "IE"}, first["countries"])
		assert.Equal(t, []any{"GB"}, changes[2]["data"].(map[string]any)["from"])
	})
}

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

// TestTenantAllowedCountries: a tenant restricts the countries its agents
// may pay in; a charge at a merchant elsewhere is denied by the policy
// with the country and the list, one inside passes; only a live-mode
// secret key changes the list, bad lists are refused whole, each change
// is audited, and an empty list lifts the restriction.
func TestTenantAllowedCountries(t *testing.T) {
	apptest.EachDriver(t, func(t *testing.T, driver string) {
		n := apptest.New(t, driver)
		b, sk := n.Tenant(t)
		live := apptest.Key(b, accounts.KindSecret, accounts.ModeLive)
		require.NotEqual(t, sk, live)
		s := &shop{n: n, key: sk}
		s.card = tokenize(t, n, apptest.Key(b, accounts.KindPublishable, accounts.ModeTest), "4242424242424242", "123")
		s.merchant = merchantAccount(t, n, "Acme Books", "5942", "US")
		dublin := merchantAccount(t, n, "Dublin Books", "5942", "IE")
		s.agent, s.secret = secretAgent(t, n, sk, map[string]any{
			"grant_types": []string{authz.GrantClientCredentials}, "scopes": []string{"charges:write"}})
		tok := s.token(t, s.mandate(t, map[string]any{"allowed_merchants": []string{s.merchant, dublin}}))
		set := func(key string, body any) *apptest.Response {
			return n.Do(t, apptest.Req{Method: "POST", Path: "/v1/tenant/allowed_countries", Key: key, Body: body})
		}

		r := n.Do(t, apptest.Req{Method: "GET", Path: "/v1/tenant/allowed_countries", Key: sk})
		require.Equal(t, 200, r.Status, string(r.Body))
		assert.Equal(t, []any{}, r.JSON["allowed_countries"])
		r = s.charge(t, tok, 1000, nil, "")
		require.Equal(t, 200, r.Status, "unrestricted until set: %s", r.Body)

		// A test-mode key does not change what live mode may do.
		r = set(sk, map[string]any{"allowed_countries": []string{"GB"}})
		assert.Equal(t, 403, r.Status, string(r.Body))
		assert.Equal(t, "live_secret_key_required", r.ErrorCode())
		for _, body := range []any{
			map[string]any{}, map[string]any{"allowed_countries": []string{"GB", "XX"}},
			map[string]any{"allowed_countries": "GB"}, map[string]any{"allowed_countries": []string{"GB"}, "extra": 1},
			map[string]any{"allowed_countries": []string{"4242424242424242"}},
		} {
			r := set(live, body)
			assert.Equal(t, 400, r.Status, "%v: %s", body, r.Body)
			assert.NotContains(t, string(r.Body), "4242424242424242")
		}
		r = n.Do(t, apptest.Req{Method: "GET", Path: "/v1/tenant/allowed_countries", Key: sk})
		assert.Equal(t, []any{}, r.JSON["allowed_countries"], "a refused list changed nothing")

		r = set(live, map[string]any{"allowed_countries": []string{"ie", "GB", "GB"}})
		require.Equal(t, 200, r.Status, string(r.Body))
		assert.Equal(t, []any{"GB", "IE"}, r.JSON["allowed_countries"])

		// Outside the list: denied with the country and the list.
		r = s.charge(t, tok, 1000, nil, "")
		require.Equal(t, 403, r.Status, string(r.Body))
		assert.Equal(t, "charge_denied", r.ErrorCode())
		assert.Equal(t, []string{"tenant_country_not_allowed"}, reasonCodes(r))
		reason := r.JSON["decision"].(map[string]any)["reasons"].([]any)[0].(map[string]any)
		assert.Equal(t, "merchant country US is not among the countries this account may pay in: GB, IE", reason["message"])

		// Inside it: passes.
		r = s.charge(t, tok, 1000, map[string]any{"merchant": dublin}, "")
		require.Equal(t, 200, r.Status, string(r.Body))
		assert.Equal(t, "allow", r.JSON["decision"].(map[string]any)["result"])

		// An empty list lifts the restriction.
		r = set(live, map[string]any{"allowed_countries": []string{}})
		require.Equal(t, 200, r.Status, string(r.Body))
		r = s.charge(t, tok, 1000, nil, "")
		require.Equal(t, 200, r.Status, string(r.Body))

		changes := auditEvents(t, n, sk, url.Values{"action": {"tenant.countries_set"}})
		require.Len(t, changes, 2)
		first := changes[0]["data"].(map[string]any)
		assert.Equal(t, []any{}, first["from"])
		assert.Equal(t, []any{"GB", "IE"}, first["allowed_countries"])
		assert.Equal(t, []any{"GB", "IE"}, changes[1]["data"].(map[string]any)["from"])
	})
}

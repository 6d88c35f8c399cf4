package server_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/accounts"
	"github.com/perfectpay/perfectpay/app/apptest"
	"github.com/perfectpay/perfectpay/audit"
)

func mandateBody(extra map[string]any) map[string]any {
	b := map[string]any{
		"currency": "usd", "budget": 10000, "max_amount_per_charge": 5000, "payment_methods": []string{"tok_visa4242"},
		"agent": "agt_shopper", "payer": "cus_42", "description": "Books for the team",
	}
	for k, v := range extra {
		if v == nil {
			delete(b, k)
		} else {
			b[k] = v
		}
	}
	return b
}

func TestMandatesAPI(t *testing.T) {
	apptest.EachDriver(t, func(t *testing.T, driver string) {
		n := apptest.New(t, driver)
		ten, key := n.Tenant(t)
		other, otherKey := n.Tenant(t)
		// A mandate names an agent and cards of its own tenant.
		shopper, _ := secretAgent(t, n, key, nil)
		helper, _ := secretAgent(t, n, key, nil)
		card := tokenize(t, n, key, "4242424242424242", "123")
		foreignAgent, _ := secretAgent(t, n, otherKey, nil)
		foreignCard := tokenize(t, n, otherKey, "4242424242424242", "123")
		_ = other
		body := func(extra map[string]any) map[string]any {
			b := mandateBody(map[string]any{"agent": shopper, "payment_methods": []string{card}})
			for k, v := range extra {
				if v == nil {
					delete(b, k)
				} else {
					b[k] = v
				}
			}
			return b
		}
		post := func(path string, body any) *apptest.Response {
			return n.Do(t, apptest.Req{Method: http.MethodPost, Path: path, Key: key, Body: body})
		}

		// Strict validation: each problem names its parameter.
		for _, tc := range []struct {
			body        any
			status      int
			code, param string
		}{
			{body(map[string]any{"budget": nil}), 400, "parameter_missing", "budget"},
			{body(map[string]any{"budget": "100"}), 400, "invalid_type", "budget"},
			{body(map[string]any{"budget": 10.5}), 400, "invalid_type", "budget"},
			{body(map[string]any{"currency": "ABC"}), 400, "parameter_invalid", "currency"},
			{body(map[string]any{"payment_methods": []string{}}), 400, "parameter_missing", "payment_methods"},
			{body(map[string]any{"payment_methods": []string{"4242424242424242"}}), 400, "parameter_invalid", "payment_methods[0]"},
			{body(map[string]any{"allowed_categories": []string{"59420"}}), 400, "parameter_invalid", "allowed_categories"},
			{body(map[string]any{"allowed_countries": []string{"XX"}}), 400, "parameter_invalid", "allowed_countries"},
			{body(map[string]any{"period": "day"}), 400, "parameter_missing", "period_budget"},
			{body(map[string]any{"valid_until": "2001-01-01T00:00:00Z"}), 400, "parameter_invalid", "valid_until"},
			{body(map[string]any{"agent": nil}), 400, "parameter_missing", "agent"},
			{body(map[string]any{"spent": 0}), 400, "unknown_parameter", "spent"},
			{body(map[string]any{"status": "active"}), 400, "unknown_parameter", "status"},
			{body(map[string]any{"parent_id": "mdt_nope"}), 400, "parameter_invalid", "parent_id"},
			{body(map[string]any{"agent": "agt_nosuchagent"}), 400, "parameter_invalid", "agent"},
			{body(map[string]any{"agent": foreignAgent}), 400, "parameter_invalid", "agent"},
			{body(map[string]any{"payment_methods": []string{"tok_nosuchcard"}}), 400, "parameter_invalid", "payment_methods"},
			{body(map[string]any{"payment_methods": []string{card, foreignCard}}), 400, "parameter_invalid", "payment_methods"},
		} {
			r := post("/v1/mandates", tc.body)
			require.Equal(t, tc.status, r.Status, "%v: %s", tc.body, r.Body)
			assert.Equal(t, tc.code, r.ErrorCode(), "%s", r.Body)
			assert.Equal(t, tc.param, r.JSON["error"].(map[string]any)["param"], "%s", r.Body)
		}

		// A mandate for a customer waits for the customer's approval.
		r := post("/v1/mandates", body(nil))
		require.Equal(t, http.StatusCreated, r.Status, "%s", r.Body)
		pending := r.JSON["id"].(string)
		assert.Regexp(t, `^mdt_`, pending)
		assert.Equal(t, "mandate", r.JSON["object"])
		assert.Equal(t, "pending_approval", r.JSON["status"])
		assert.Equal(t, "usd", r.JSON["currency"], "normalized, lower case on the wire")
		assert.EqualValues(t, 10000, r.JSON["remaining"])
		assert.EqualValues(t, 0, r.JSON["depth"])

		// The tenant paying itself: active at once.
		r = post("/v1/mandates", body(map[string]any{"payer": "self", "period": "month", "period_budget": 8000,
			"allowed_merchants": []string{"acct_books", "Books.Acme.Example"}, "blocked_categories": []string{"7995"}}))
		require.Equal(t, http.StatusCreated, r.Status, "%s", r.Body)
		root := r.JSON["id"].(string)
		assert.Equal(t, "active", r.JSON["status"])
		assert.Equal(t, ten.Tenant.ID, r.JSON["payer"])
		assert.NotNil(t, r.JSON["approved_at"])
		assert.Equal(t, []any{"acct_books", "books.acme.example"}, r.JSON["allowed_merchants"])

		// A child must be narrower than its parent.
		r = post("/v1/mandates", body(map[string]any{"payer": "self", "parent_id": root, "budget": 20000}))
		require.Equal(t, http.StatusBadRequest, r.Status, "%s", r.Body)
		assert.Equal(t, "mandate_widens_parent", r.ErrorCode())
		assert.Equal(t, "budget", r.JSON["error"].(map[string]any)["param"])
		r = post("/v1/mandates", body(map[string]any{"payer": "self", "parent_id": root, "budget": 3000, "max_amount_per_charge": 2500,
			"allowed_merchants": []string{"acct_books"}, "blocked_categories": []string{"7995"}, "agent": helper}))
		require.Equal(t, http.StatusCreated, r.Status, "%s", r.Body)
		child := r.JSON["id"].(string)
		assert.Equal(t, "active", r.JSON["status"])
		assert.EqualValues(t, 1, r.JSON["depth"])
		assert.Equal(t, root, r.JSON["parent_id"])

		// Get, and tenant isolation.
		r = n.Do(t, apptest.Req{Method: "GET", Path: "/v1/mandates/" + root, Key: key})
		require.Equal(t, http.StatusOK, r.Status)
		assert.Equal(t, "Books for the team", r.JSON["description"])
		r = n.Do(t, apptest.Req{Method: "GET", Path: "/v1/mandates/" + root, Key: otherKey})
		assert.Equal(t, http.StatusNotFound, r.Status)
		assert.Equal(t, "resource_missing", r.ErrorCode())
		r = n.Do(t, apptest.Req{Method: "POST", Path: "/v1/mandates/" + root + "/revoke", Key: otherKey})
		assert.Equal(t, http.StatusNotFound, r.Status)

		// List with filters and pages.
		ids := func(r *apptest.Response) []string {
			var out []string
			for _, d := range r.JSON["data"].([]any) {
				out = append(out, d.(map[string]any)["id"].(string))
			}
			return out
		}
		r = n.Do(t, apptest.Req{Method: "GET", Path: "/v1/mandates", Key: key})
		require.Equal(t, http.StatusOK, r.Status)
		assert.ElementsMatch(t, []string{pending, root, child}, ids(r))
		r = n.Do(t, apptest.Req{Method: "GET", Path: "/v1/mandates?status=pending_approval", Key: key})
		assert.Equal(t, []string{pending}, ids(r))
		r = n.Do(t, apptest.Req{Method: "GET", Path: "/v1/mandates?agent=" + helper, Key: key})
		assert.Equal(t, []string{child}, ids(r))
		r = n.Do(t, apptest.Req{Method: "GET", Path: "/v1/mandates?payer=self&parent_id=" + root, Key: key})
		assert.Equal(t, []string{child}, ids(r))
		r = n.Do(t, apptest.Req{Method: "GET", Path: "/v1/mandates?payer=cus_42", Key: key})
		assert.Equal(t, []string{pending}, ids(r))
		r = n.Do(t, apptest.Req{Method: "GET", Path: "/v1/mandates?limit=2", Key: key})
		require.Len(t, ids(r), 2)
		assert.Equal(t, true, r.JSON["has_more"])
		r2 := n.Do(t, apptest.Req{Method: "GET", Path: "/v1/mandates?limit=2&starting_after=" + ids(r)[1], Key: key})
		assert.Len(t, ids(r2), 1)
		assert.Equal(t, false, r2.JSON["has_more"])
		r = n.Do(t, apptest.Req{Method: "GET", Path: "/v1/mandates?status=bogus", Key: key})
		assert.Equal(t, http.StatusBadRequest, r.Status)
		r = n.Do(t, apptest.Req{Method: "GET", Path: "/v1/mandates?starting_after=mdt_nope", Key: key})
		assert.Equal(t, http.StatusBadRequest, r.Status)
		assert.Equal(t, "starting_after", r.JSON["error"].(map[string]any)["param"])

		// Suspend and resume, only from the right states.
		r = post("/v1/mandates/"+root+"/suspend", nil)
		require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
		assert.Equal(t, "suspended", r.JSON["status"])
		r = post("/v1/mandates/"+root+"/suspend", nil)
		assert.Equal(t, http.StatusConflict, r.Status)
		assert.Equal(t, "mandate_suspended", r.ErrorCode())
		r = post("/v1/mandates/"+pending+"/resume", nil)
		assert.Equal(t, http.StatusConflict, r.Status)
		r = post("/v1/mandates/"+root+"/resume", nil)
		require.Equal(t, http.StatusOK, r.Status)
		assert.Equal(t, "active", r.JSON["status"])

		// Revoking cascades to every descendant.
		r = post("/v1/mandates/"+root+"/revoke", nil)
		require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
		assert.Equal(t, "revoked", r.JSON["status"])
		assert.Equal(t, []any{root, child}, r.JSON["revoked"])
		r = n.Do(t, apptest.Req{Method: "GET", Path: "/v1/mandates/" + child, Key: key})
		assert.Equal(t, "revoked", r.JSON["status"])
		r = post("/v1/mandates/"+root+"/revoke", nil)
		require.Equal(t, http.StatusOK, r.Status, "revoking again is harmless")
		assert.Equal(t, []any{}, r.JSON["revoked"])
		r = post("/v1/mandates/"+root+"/resume", nil)
		assert.Equal(t, http.StatusConflict, r.Status, "revocation is final")

		// The history.
		r = n.Do(t, apptest.Req{Method: "GET", Path: "/v1/mandates/" + root + "/events", Key: key})
		require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
		var types []string
		for _, e := range r.JSON["data"].([]any) {
			types = append(types, e.(map[string]any)["type"].(string))
		}
		assert.Equal(t, []string{"mandate.created", "mandate.suspended", "mandate.resumed", "mandate.revoked"}, types)
		r = n.Do(t, apptest.Req{Method: "GET", Path: "/v1/mandates/" + child + "/events?limit=1", Key: key})
		require.Equal(t, http.StatusOK, r.Status)
		first := r.JSON["data"].([]any)[0].(map[string]any)
		assert.Equal(t, "mandate.created", first["type"])
		assert.Equal(t, "api_key", first["actor_type"])
		r = n.Do(t, apptest.Req{Method: "GET", Path: "/v1/mandates/" + child + "/events?starting_after=" + first["id"].(string), Key: key})
		last := r.JSON["data"].([]any)[0].(map[string]any)
		assert.Equal(t, "mandate.revoked", last["type"])
		assert.Equal(t, root, last["data"].(map[string]any)["cascade_from"])
		r = n.Do(t, apptest.Req{Method: "GET", Path: "/v1/mandates/" + root + "/events", Key: otherKey})
		assert.Equal(t, http.StatusNotFound, r.Status)

		// Webhook events and audit entries were written with the changes.
		r = n.Do(t, apptest.Req{Method: "GET", Path: "/v1/events?type=mandate.revoked", Key: key})
		require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
		assert.Len(t, r.JSON["data"], 2)
		entries, err := n.App.Audit.List(context.Background(), audit.Filter{TenantID: ten.Tenant.ID, Target: child})
		require.NoError(t, err)
		var actions []string
		for _, e := range entries {
			actions = append(actions, e.Action)
		}
		assert.Equal(t, []string{"mandate.created", "mandate.revoked"}, actions)

		// The signed mandate verifies offline against the JWKS, over the
		// mandate's canonical JSON.
		r = n.Do(t, apptest.Req{Method: "GET", Path: "/v1/mandates/" + child + "/jws", Key: key})
		require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
		jwks := n.Do(t, apptest.Req{Method: "GET", Path: "/.well-known/jwks.json"})
		require.Equal(t, http.StatusOK, jwks.Status)
		var set jose.JSONWebKeySet
		require.NoError(t, json.Unmarshal(jwks.Body, &set))
		sig, err := jose.ParseSignedCompact(r.JSON["jws"].(string), []jose.SignatureAlgorithm{jose.ES256, jose.EdDSA, jose.RS256, jose.PS256})
		require.NoError(t, err)
		keys := set.Key(sig.Signatures[0].Header.KeyID)
		require.Len(t, keys, 1)
		payload, err := sig.Verify(keys[0])
		require.NoError(t, err)
		m, err := n.App.Mandates.Get(context.Background(), ten.Tenant.ID, child)
		require.NoError(t, err)
		want, err := m.Canonical()
		require.NoError(t, err)
		assert.Equal(t, string(want), string(payload))
		assert.Contains(t, string(payload), `"parent_id":"`+root+`"`)
	})
}

func TestMandatesScopes(t *testing.T) {
	n := apptest.New(t, "memory")
	b, _ := n.Tenant(t)
	rk, err := n.App.Accounts.CreateKey(context.Background(), b.Keys[0].Key, accounts.KeyRequest{Kind: accounts.KindRestricted, Name: "reader", Scopes: []string{"mandates:read"}})
	require.NoError(t, err)
	r := n.Do(t, apptest.Req{Method: "POST", Path: "/v1/mandates", Key: rk.Secret, Body: mandateBody(nil)})
	assert.Equal(t, http.StatusForbidden, r.Status)
	assert.Equal(t, "insufficient_scope", r.ErrorCode())
	r = n.Do(t, apptest.Req{Method: "GET", Path: "/v1/mandates", Key: rk.Secret})
	assert.Equal(t, http.StatusOK, r.Status)
	r = n.Do(t, apptest.Req{Method: "GET", Path: "/v1/mandates"})
	assert.Equal(t, http.StatusUnauthorized, r.Status)
}

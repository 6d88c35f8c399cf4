package server_test

import (
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/app/apptest"
	"github.com/perfectpay/perfectpay/authz"
)

func timeline(t *testing.T, n *apptest.Node, key, m string, q url.Values) *apptest.Response {
	t.Helper()
	return n.Do(t, apptest.Req{Method: "GET", Path: "/v1/mandates/" + m + "/timeline?" + q.Encode(), Key: key})
}

func kinds(entries []any) map[string]int {
	out := map[string]int{}
	for _, e := range entries {
		out[e.(map[string]any)["kind"].(string)]++
	}
	return out
}

// TestMandateTimeline: one call tells a mandate's story — creation,
// tokens, the delegation tree, every decision with its reasons and
// numbers, charges, suspension and revocation — filtered by agent and
// time, to an auditor of its tenant only.
func TestMandateTimeline(t *testing.T) {
	apptest.EachDriver(t, func(t *testing.T, driver string) {
		n := apptest.New(t, driver)
		s := newShop(t, n)
		m := s.mandate(t, map[string]any{"approval_threshold": 5000})
		tokA := s.token(t, m)
		require.Equal(t, 200, s.charge(t, tokA, 1000, nil, "").Status)
		denied := s.charge(t, tokA, 6000, nil, "")
		require.Equal(t, 403, denied.Status, string(denied.Body))

		bID, bSecret := secretAgent(t, n, s.key, map[string]any{
			"grant_types": []string{authz.GrantClientCredentials, authz.GrantTokenExchange}, "scopes": []string{"charges:write"}})
		narrow := fmt.Sprintf(`[{"type":"payment_mandate","currency":"USD","budget":2000,"max_amount_per_charge":1500,"approval_threshold":1500,"payment_methods":[%q],"allowed_merchants":[%q]}]`, s.card, s.merchant)
		code, body, _ := postForm(t, n, formReq{path: "/oauth2/token", basic: [2]string{bID, bSecret}, form: url.Values{
			"grant_type": {authz.GrantTokenExchange}, "subject_token": {tokA}, "subject_token_type": {authz.TokenTypeAccessToken},
			"scope": {"charges:write"}, "authorization_details": {narrow}}})
		require.Equal(t, 200, code, body)
		tokB := body["access_token"].(string)
		child := body["authorization_details"].([]any)[0].(map[string]any)["mandate_id"].(string)
		require.Equal(t, 200, s.charge(t, tokB, 1200, nil, "").Status)
		for _, action := range []string{"suspend", "resume", "revoke"} {
			r := n.Do(t, apptest.Req{Method: "POST", Path: "/v1/mandates/" + m + "/" + action, Key: s.key})
			require.Equal(t, 200, r.Status, string(r.Body))
		}
		aud := auditorKey(t, n, s.key)

		r := timeline(t, n, aud, m, url.Values{"limit": {"100"}})
		require.Equal(t, 200, r.Status, string(r.Body))
		assert.Equal(t, "mandate_timeline", r.JSON["object"])
		tree := r.JSON["tree"].(map[string]any)
		assert.Equal(t, m, tree["id"])
		kids := tree["children"].([]any)
		require.Len(t, kids, 1)
		assert.Equal(t, child, kids[0].(map[string]any)["id"])
		assert.Equal(t, bID, kids[0].(map[string]any)["agent"])
		entries := r.JSON["entries"].([]any)
		k := kinds(entries)
		for _, want := range []string{"mandate", "token", "delegation", "decision", "charge", "suspension", "revocation"} {
			assert.Positive(t, k[want], "no %s entry in %v", want, k)
		}
		assert.Equal(t, 3, k["decision"], "two charges allowed, one denied")
		var deny map[string]any
		last := time.Time{}
		for _, e := range entries {
			e := e.(map[string]any)
			ts, err := time.Parse(time.RFC3339Nano, e["created"].(string))
			require.NoError(t, err)
			assert.False(t, ts.Before(last), "oldest first")
			last = ts
			if d, ok := e["decision"].(map[string]any); ok {
				assert.NotEmpty(t, d["policy_version"])
				assert.Contains(t, d["input_digest"], "sha256:")
				assert.NotNil(t, d["latency_us"])
				if d["result"] == "deny" {
					deny = d
				}
			}
		}
		require.NotNil(t, deny)
		assert.Contains(t, deny["explanation"], "Refused because")
		assert.Contains(t, deny["explanation"], "60.00", "the reasons carry the numbers")

		// The child's timeline has the parent as ancestor and only its
		// own history; filtering by agent B keeps B's mandate and tokens.
		r = timeline(t, n, aud, child, url.Values{})
		require.Equal(t, 200, r.Status, string(r.Body))
		assert.Equal(t, []any{m}, r.JSON["ancestors"])
		r = timeline(t, n, aud, m, url.Values{"agent": {bID}, "limit": {"100"}})
		require.Equal(t, 200, r.Status, string(r.Body))
		for _, e := range r.JSON["entries"].([]any) {
			e := e.(map[string]any)
			if e["kind"] == "token" {
				assert.Equal(t, bID, e["actor"].(map[string]any)["id"])
			} else {
				assert.Equal(t, child, e["mandate"])
			}
		}
		assert.Equal(t, 1, kinds(r.JSON["entries"].([]any))["decision"])

		// Paging walks the same entries.
		var paged []any
		q := url.Values{"limit": {"4"}}
		for {
			r := timeline(t, n, aud, m, q)
			require.Equal(t, 200, r.Status, string(r.Body))
			es := r.JSON["entries"].([]any)
			paged = append(paged, es...)
			if !r.JSON["has_more"].(bool) {
				break
			}
			q.Set("starting_after", es[len(es)-1].(map[string]any)["id"].(string))
		}
		assert.Equal(t, entries, paged)
		future := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
		r = timeline(t, n, aud, m, url.Values{"since": {future}})
		require.Equal(t, 200, r.Status, string(r.Body))
		assert.Empty(t, r.JSON["entries"])

		// Refusals: bad parameters, another tenant's mandate.
		for _, q := range []string{"since=soon", "limit=500", "starting_after=mev_nope"} {
			r := n.Do(t, apptest.Req{Method: "GET", Path: "/v1/mandates/" + m + "/timeline?" + q, Key: aud})
			assert.Equal(t, 400, r.Status, "%s: %s", q, r.Body)
		}
		other := newShop(t, n)
		r = timeline(t, n, auditorKey(t, n, other.key), m, url.Values{})
		assert.Equal(t, 404, r.Status, string(r.Body))
	})
}

package server_test

import (
	"context"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/app/apptest"
)

// auditorKey creates a restricted audit:read key with the tenant key sk.
func auditorKey(t *testing.T, n *apptest.Node, sk string) string {
	t.Helper()
	r := n.Do(t, apptest.Req{Method: "POST", Path: "/v1/api_keys", Key: sk,
		Body: map[string]any{"type": "restricted", "scopes": []string{"audit:read"}, "name": "auditor"}})
	require.Equal(t, 201, r.Status, string(r.Body))
	return r.JSON["secret"].(string)
}

// auditEvents pages through GET /v1/audit_events?query with limit 3 and
// returns every event id.
func auditEvents(t *testing.T, n *apptest.Node, key string, q url.Values) []map[string]any {
	t.Helper()
	var out []map[string]any
	q.Set("limit", "3")
	for {
		r := n.Do(t, apptest.Req{Method: "GET", Path: "/v1/audit_events?" + q.Encode(), Key: key})
		require.Equal(t, 200, r.Status, string(r.Body))
		data := r.JSON["data"].([]any)
		for _, d := range data {
			out = append(out, d.(map[string]any))
		}
		if !r.JSON["has_more"].(bool) {
			return out
		}
		q.Set("starting_after", out[len(out)-1]["id"].(string))
	}
}

// created0 returns the id of the mandate.created entry of mandate m.
func created0(t *testing.T, n *apptest.Node, key, m string) string {
	t.Helper()
	list := auditEvents(t, n, key, url.Values{"action": {"mandate.created"}, "target": {m}})
	require.Len(t, list, 1)
	return list[0]["id"].(string)
}

// TestAuditorAccess: an audit:read key reads every mandate, charge (with
// its decision) and audit entry of its tenant, nothing of another tenant,
// and changes nothing.
func TestAuditorAccess(t *testing.T) {
	apptest.EachDriver(t, func(t *testing.T, driver string) {
		n := apptest.New(t, driver)
		a, b := newShop(t, n), newShop(t, n)
		ma, mb := a.mandate(t, nil), b.mandate(t, nil)
		ra := a.charge(t, a.token(t, ma), 1000, nil, "")
		require.Equal(t, 200, ra.Status, string(ra.Body))
		rb := b.charge(t, b.token(t, mb), 1000, nil, "")
		require.Equal(t, 200, rb.Status, string(rb.Body))
		cha, chb := ra.JSON["id"].(string), rb.JSON["id"].(string)
		aud := auditorKey(t, n, a.key)

		// Reads its tenant's mandates, charges, agents.
		for _, p := range []string{"/v1/mandates/" + ma, "/v1/mandates/" + ma + "/jws", "/v1/mandates", "/v1/charges/" + cha,
			"/v1/charges", "/v1/agents/" + a.agent, "/v1/audit_events", "/v1/audit/checkpoints"} {
			r := n.Do(t, apptest.Req{Method: "GET", Path: p, Key: aud})
			assert.Equal(t, 200, r.Status, "%s: %s", p, r.Body)
		}
		r := n.Do(t, apptest.Req{Method: "GET", Path: "/v1/charges/" + cha, Key: aud})
		assert.Equal(t, ma, r.JSON["mandate"])

		// Nothing of the other tenant.
		for _, p := range []string{"/v1/mandates/" + mb, "/v1/charges/" + chb, "/v1/agents/" + b.agent} {
			r := n.Do(t, apptest.Req{Method: "GET", Path: p, Key: aud})
			assert.Equal(t, 404, r.Status, "%s: %s", p, r.Body)
		}
		assert.Empty(t, auditEvents(t, n, aud, url.Values{"target": {mb}}))
		bAud := auditorKey(t, n, b.key)
		bEvents := auditEvents(t, n, bAud, url.Values{"target": {mb}})
		require.NotEmpty(t, bEvents)
		r = n.Do(t, apptest.Req{Method: "GET", Path: "/v1/audit_events/" + bEvents[0]["id"].(string), Key: aud})
		assert.Equal(t, 404, r.Status, string(r.Body))
		r = n.Do(t, apptest.Req{Method: "GET", Path: "/v1/audit_events?starting_after=" + bEvents[0]["id"].(string), Key: aud})
		assert.Equal(t, 400, r.Status, string(r.Body))
		assert.Equal(t, "resource_missing", r.ErrorCode())

		// Every event the auditor pages through is its tenant's, once.
		all := auditEvents(t, n, aud, url.Values{})
		seen := map[string]bool{}
		for _, e := range all {
			id := e["id"].(string)
			assert.False(t, seen[id], "event %s twice", id)
			seen[id] = true
		}
		// The same changes as the tenant's secret key sees (the access
		// entries grow with every page read, so they are left out).
		changes := func(list []map[string]any) []string {
			var out []string
			for _, e := range list {
				if e["action"] != "api.request" {
					out = append(out, e["id"].(string))
				}
			}
			return out
		}
		mine := auditEvents(t, n, a.key, url.Values{})
		assert.Equal(t, changes(mine), changes(all))
		assert.Contains(t, changes(all), created0(t, n, aud, ma))
		created := auditEvents(t, n, aud, url.Values{"action": {"mandate.created"}})
		require.Len(t, created, 1)
		assert.Equal(t, ma, created[0]["target"])
		actor := created[0]["actor"].(map[string]any)
		byActor := auditEvents(t, n, aud, url.Values{"actor": {actor["id"].(string)}, "actor_type": {actor["type"].(string)}})
		assert.NotEmpty(t, byActor)
		for _, e := range byActor {
			assert.Equal(t, actor["id"], e["actor"].(map[string]any)["id"])
		}
		future := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
		assert.Empty(t, auditEvents(t, n, aud, url.Values{"since": {future}}))
		assert.NotEmpty(t, auditEvents(t, n, aud, url.Values{"until": {future}, "action": {"mandate.created"}}))
		for _, q := range []string{"since=yesterday", "until=2020-01-01T00:00:00Z&since=2021-01-01T00:00:00Z", "limit=0", "limit=101"} {
			r := n.Do(t, apptest.Req{Method: "GET", Path: "/v1/audit_events?" + q, Key: aud})
			assert.Equal(t, 400, r.Status, "%s: %s", q, r.Body)
			assert.Equal(t, "invalid_request_error", r.ErrorType())
		}

		// Changes nothing.
		for _, w := range []apptest.Req{
			{Method: "POST", Path: "/v1/mandates", Body: map[string]any{"agent": a.agent, "payer": "self", "currency": "USD", "budget": 100}},
			{Method: "POST", Path: "/v1/mandates/" + ma + "/revoke"},
			{Method: "POST", Path: "/v1/refunds", Body: map[string]any{"charge": cha}},
			{Method: "POST", Path: "/v1/api_keys", Body: map[string]any{"type": "restricted", "scopes": []string{"audit:read"}}},
			{Method: "GET", Path: "/v1/api_keys"},
		} {
			w.Key = aud
			r := n.Do(t, w)
			assert.Equal(t, 403, r.Status, "%s %s: %s", w.Method, w.Path, r.Body)
		}
		r = n.Do(t, apptest.Req{Method: "POST", Path: "/v1/api_keys", Key: a.key,
			Body: map[string]any{"type": "restricted", "scopes": []string{"audit:read", "charges:write"}}})
		assert.Equal(t, 400, r.Status, string(r.Body))
		assert.Equal(t, "scopes", r.JSON["error"].(map[string]any)["param"])

		// Checkpoints: signed, listed oldest first with a cursor.
		for range 2 {
			_, err := n.App.Audit.ExportCheckpoint(context.Background())
			require.NoError(t, err)
		}
		r = n.Do(t, apptest.Req{Method: "GET", Path: "/v1/audit/checkpoints?limit=1", Key: aud})
		require.Equal(t, 200, r.Status, string(r.Body))
		cps := r.JSON["data"].([]any)
		require.Len(t, cps, 1)
		assert.True(t, r.JSON["has_more"].(bool))
		first := cps[0].(map[string]any)
		assert.NotEmpty(t, first["jws"])
		r = n.Do(t, apptest.Req{Method: "GET", Path: "/v1/audit/checkpoints?starting_after=" + first["id"].(string), Key: aud})
		require.Equal(t, 200, r.Status, string(r.Body))
		assert.NotEmpty(t, r.JSON["data"])
		r = n.Do(t, apptest.Req{Method: "GET", Path: "/v1/audit/checkpoints?starting_after=nope", Key: aud})
		assert.Equal(t, 400, r.Status, string(r.Body))
		r = n.Do(t, apptest.Req{Method: "GET", Path: "/v1/audit/checkpoints", Key: b.key})
		assert.Equal(t, 200, r.Status, "a secret key holds audit:read too")
	})
}

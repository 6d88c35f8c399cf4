package web_test

import (
	"html"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/app/apptest"
	"github.com/perfectpay/perfectpay/authz"
)

// timelineOf returns the entries of mandate id's timeline by type (the
// last of each).
func timelineOf(t *testing.T, n *apptest.Node, key, id string) map[string]map[string]any {
	t.Helper()
	r := n.Do(t, apptest.Req{Method: "GET", Path: "/v1/mandates/" + id + "/timeline?limit=100", Key: key})
	require.Equal(t, http.StatusOK, r.Status, string(r.Body))
	out := map[string]map[string]any{}
	for _, e := range r.JSON["entries"].([]any) {
		m := e.(map[string]any)
		out[m["type"].(string)] = m
	}
	return out
}

// auditDataOf returns the data of the last audit entry of action.
func auditDataOf(t *testing.T, n *apptest.Node, key, action string) (actor, data map[string]any) {
	t.Helper()
	r := n.Do(t, apptest.Req{Method: "GET", Path: "/v1/audit_events?limit=100&action=" + action, Key: key})
	require.Equal(t, http.StatusOK, r.Status, string(r.Body))
	list := r.JSON["data"].([]any)
	require.NotEmpty(t, list, action)
	e := list[len(list)-1].(map[string]any)
	d, _ := e["data"].(map[string]any)
	return e["actor"].(map[string]any), d
}

// TestApprovalNamesWhoAndWithWhichFactor: a payer's answer to a held
// charge names the payer and the factor they gave (an authenticator code,
// a recovery code) in the audit entry, the timeline API and the console's
// timeline page.
func TestApprovalNamesWhoAndWithWhichFactor(t *testing.T) {
	apptest.EachDriver(t, func(t *testing.T, driver string) {
		s := newShop(t, driver)
		r := s.charge(t, 4000, "", "big-one")
		require.Equal(t, http.StatusPaymentRequired, r.Status, string(r.Body))
		apr := r.JSON["approval"].(map[string]any)["id"].(string)
		got := s.b.post("/approvals/"+apr, "/approvals/"+apr, url.Values{"decision": {"approve"}, "code": {code(t, s.payer.Secret, s.c.Now())}})
		require.Equal(t, http.StatusOK, got.Status, got.Body)
		r = s.charge(t, 4500, "", "big-two")
		require.Equal(t, http.StatusPaymentRequired, r.Status, string(r.Body))
		apr2 := r.JSON["approval"].(map[string]any)["id"].(string)
		got = s.b.post("/approvals/"+apr2, "/approvals/"+apr2, url.Values{"decision": {"deny"}, "code": {s.payer.Recovery[0]}})
		require.Equal(t, http.StatusOK, got.Status, got.Body)

		actor, data := auditDataOf(t, s.n, s.key, "approval.approved")
		assert.Equal(t, "user", actor["type"])
		assert.Equal(t, s.payer.ID, actor["id"])
		assert.Equal(t, "totp", data["factor"])
		assert.Equal(t, s.payer.ID, data["by"])
		_, data = auditDataOf(t, s.n, s.key, "approval.denied")
		assert.Equal(t, "recovery_code", data["factor"])

		tl := timelineOf(t, s.n, s.key, s.mandate)
		for typ, factor := range map[string]string{"approval.approved": "totp", "approval.denied": "recovery_code"} {
			e := tl[typ]
			require.NotNil(t, e, typ)
			assert.Equal(t, "approval", e["kind"])
			assert.Equal(t, map[string]any{"type": "user", "id": s.payer.ID}, e["actor"], typ)
			assert.Equal(t, factor, e["factor"], typ)
		}

		aud := newBrowser(t, s.n)
		signUpTeam(t, s.n, s.c, aud, s.key, s.tenant, "auditor@example.com", "auditor")
		pg := aud.get("/console/mandates/" + s.mandate)
		require.Equal(t, http.StatusOK, pg.Status, pg.Body)
		body := html.UnescapeString(pg.Body)
		assert.Contains(t, body, "by user "+s.payer.ID+", confirmed with <span class=\"factor\">an authenticator code</span>")
		assert.Contains(t, body, "confirmed with <span class=\"factor\">a recovery code</span>")
	})
}

// TestMandateConsentNamesItsFactor: a payer's approval of a mandate on the
// consent page names them and their factor in the mandate's timeline.
func TestMandateConsentNamesItsFactor(t *testing.T) {
	apptest.EachDriver(t, func(t *testing.T, driver string) {
		n, c := node(t, driver)
		s := newShopAgent(t, n)
		b := newBrowser(t, n)
		p := signUp(t, n, c, b, s.key, s.tenant, "pat@example.com")
		r := n.Do(t, apptest.Req{Method: "POST", Path: "/v1/mandates", Key: s.key, Body: map[string]any{
			"agent": s.agent, "payer": p.ID, "currency": "USD", "budget": 10000, "payment_methods": []string{s.card},
			"allowed_merchants": []string{s.merchant}}})
		require.Equal(t, 201, r.Status, string(r.Body))
		id := r.JSON["id"].(string)
		path := authz.PathConsent + "/mandates/" + id
		got := b.post(path, path, url.Values{"decision": {"approve"}, "code": {code(t, p.Secret, c.Now())}})
		require.Equal(t, http.StatusOK, got.Status, got.Body)
		c.Add(30 * time.Second)

		e := timelineOf(t, n, s.key, id)["mandate.approved"]
		require.NotNil(t, e)
		assert.Equal(t, map[string]any{"type": "user", "id": p.ID}, e["actor"])
		assert.Equal(t, "totp", e["factor"])
		_, data := auditDataOf(t, n, s.key, "mandate.approved")
		assert.Equal(t, "totp", data["factor"])
	})
}

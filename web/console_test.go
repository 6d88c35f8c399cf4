package web_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/app/apptest"
)

func TestConsole(t *testing.T) {
	apptest.EachDriver(t, func(t *testing.T, driver string) {
		s := newShop(t, driver)
		dev := newBrowser(t, s.n)
		signUpTeam(t, s.n, s.c, dev, s.key, s.tenant, "dev@example.com", "developer")

		pg := dev.get("/console")
		require.Equal(t, http.StatusOK, pg.Status, pg.Body)
		assert.Contains(t, pg.Body, "Shopping Agent")
		assert.Contains(t, pg.Body, s.mandate)
		// Team members have no payer's page.
		got := dev.get("/me")
		assert.Equal(t, http.StatusSeeOther, got.Status)
		assert.Equal(t, "/console", got.Location)

		// Register an agent: its secret is shown once.
		got = dev.post("/console", "/console/agents", url.Values{"name": {"Travel Agent"}})
		require.Equal(t, http.StatusOK, got.Status, got.Body)
		assert.Contains(t, got.Body, "Client secret of")
		assert.Contains(t, got.Body, "Travel Agent")

		// Preview a mandate in plain words; nothing is stored.
		form := url.Values{"agent": {s.agent}, "payer": {s.payer.ID}, "currency": {"USD"}, "budget": {"200"},
			"max_amount_per_charge": {"50.00"}, "approval_threshold": {"30"}, "payment_methods": {s.card},
			"allowed_merchants": {s.merchant}, "valid_until": {"2026-12-31"}, "intent": {"preview"}}
		got = dev.post("/console", "/console/mandates", form)
		require.Equal(t, http.StatusOK, got.Status, got.Body)
		for _, want := range []string{"Shopping Agent may spend up to 200.00 USD in total.", "At most 50.00 USD per purchase.",
			"Only at Acme Books.", "Until 31 Dec 2026.", "Purchases over 30.00 USD need your approval."} {
			assert.Contains(t, got.Body, want)
		}
		r := s.n.Do(t, apptest.Req{Method: "GET", Path: "/v1/mandates?payer=" + s.payer.ID, Key: s.key})
		require.Len(t, r.JSON["data"], 1)
		// A bad amount is explained and the form kept.
		form.Set("budget", "12.345")
		got = dev.post("/console", "/console/mandates", form)
		assert.Equal(t, http.StatusBadRequest, got.Status)
		assert.Contains(t, got.Body, "budget must be an amount")
		form.Set("budget", "200")
		form.Set("intent", "create")
		got = dev.post("/console", "/console/mandates", form)
		require.Equal(t, http.StatusSeeOther, got.Status, got.Body)
		r = s.n.Do(t, apptest.Req{Method: "GET", Path: "/v1/mandates?payer=" + s.payer.ID, Key: s.key})
		require.Len(t, r.JSON["data"], 2)
		created := r.JSON["data"].([]any)[0].(map[string]any)
		assert.Equal(t, "pending_approval", created["status"]) // the payer approves it
		assert.Equal(t, 20000.0, created["budget"])

		// Suspend and revoke the active mandate: charges stop.
		got = dev.post("/console", "/console/mandates/"+s.mandate+"/suspend", url.Values{})
		require.Equal(t, http.StatusSeeOther, got.Status, got.Body)
		assert.Equal(t, http.StatusForbidden, s.charge(t, 1000, "", "").Status)
		got = dev.post("/console", "/console/mandates/"+s.mandate+"/resume", url.Values{})
		require.Equal(t, http.StatusSeeOther, got.Status, got.Body)
		assert.Equal(t, http.StatusOK, s.charge(t, 1000, "", "").Status)
		// Recent decisions with their reasons.
		assert.Contains(t, dev.get("/console").Body, "allow")

		// Suspend the agent: its charges stop too.
		got = dev.post("/console", "/console/agents/"+s.agent+"/suspend", url.Values{})
		require.Equal(t, http.StatusSeeOther, got.Status, got.Body)
		assert.Equal(t, http.StatusForbidden, s.charge(t, 1000, "", "").Status)
		got = dev.post("/console", "/console/agents/"+s.agent+"/resume", url.Values{})
		require.Equal(t, http.StatusSeeOther, got.Status, got.Body)
		got = dev.post("/console", "/console/mandates/"+s.mandate+"/revoke", url.Values{})
		require.Equal(t, http.StatusSeeOther, got.Status, got.Body)
		assert.Equal(t, http.StatusForbidden, s.charge(t, 1000, "", "").Status)

		// A payer has no console.
		assert.Equal(t, http.StatusForbidden, s.b.get("/console").Status)
	})
}

func TestConsoleAuditorIsReadOnly(t *testing.T) {
	apptest.EachDriver(t, func(t *testing.T, driver string) {
		s := newShop(t, driver)
		aud := newBrowser(t, s.n)
		signUpTeam(t, s.n, s.c, aud, s.key, s.tenant, "auditor@example.com", "auditor")
		pg := aud.get("/console")
		require.Equal(t, http.StatusOK, pg.Status, pg.Body)
		assert.Contains(t, pg.Body, s.mandate)
		assert.Contains(t, pg.Body, "read-only")
		assert.NotContains(t, pg.Body, `action="/console/`)
		for _, path := range []string{"/console/agents", "/console/mandates", "/console/mandates/" + s.mandate + "/revoke",
			"/console/agents/" + s.agent + "/revoke"} {
			got := aud.post("/console", path, url.Values{"name": {"x"}, "intent": {"create"}})
			assert.Equal(t, http.StatusForbidden, got.Status, path)
		}
		assert.Equal(t, http.StatusOK, s.charge(t, 1000, "", "").Status)
		// Roles outside the list are refused by the API.
		r := s.n.Do(t, apptest.Req{Method: "POST", Path: "/v1/team_invitations", Key: s.key,
			Body: map[string]any{"email": "x@example.com", "role": "root"}})
		assert.Equal(t, http.StatusBadRequest, r.Status)
		assert.True(t, strings.Contains(string(r.Body), "role"))
	})
}

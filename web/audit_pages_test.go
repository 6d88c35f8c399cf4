package web_test

import (
	"fmt"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/app/apptest"
	"github.com/perfectpay/perfectpay/authz"
)

// delegate registers a second agent and has it narrow the shop's token
// into a child mandate; it returns the agent, its token and the child.
func (s *shop) delegate(t *testing.T) (agent, token, child string) {
	t.Helper()
	r := s.n.Do(t, apptest.Req{Method: "POST", Path: "/v1/agents", Key: s.key, Body: map[string]any{"name": "Errand Agent",
		"token_endpoint_auth_method": "client_secret_basic", "scopes": []string{"charges:write"},
		"grant_types": []string{authz.GrantClientCredentials, authz.GrantTokenExchange}}})
	require.Equal(t, http.StatusCreated, r.Status, string(r.Body))
	agent, sec := r.JSON["id"].(string), r.JSON["client_secret"].(string)
	narrow := fmt.Sprintf(`[{"type":"payment_mandate","currency":"USD","budget":2000,"max_amount_per_charge":1500,"approval_threshold":1500,"payment_methods":[%q],"allowed_merchants":[%q]}]`,
		s.card, s.merchant)
	st, body := form(t, s.n, "/oauth2/token", [2]string{agent, sec}, url.Values{"grant_type": {authz.GrantTokenExchange},
		"subject_token": {s.token}, "subject_token_type": {authz.TokenTypeAccessToken}, "scope": {"charges:write"},
		"authorization_details": {narrow}})
	require.Equal(t, http.StatusOK, st, body)
	return agent, body["access_token"].(string), body["authorization_details"].([]any)[0].(map[string]any)["mandate_id"].(string)
}

var formTagRE = regexp.MustCompile(`<form[^>]*>`)

// TestMandateTimelinePage: an auditor reads a mandate's delegation tree,
// its timeline newest first and every decision in plain words, filters it
// by agent and time and pages through it; the page changes nothing, and
// another tenant's auditor does not find it.
func TestMandateTimelinePage(t *testing.T) {
	apptest.EachDriver(t, func(t *testing.T, driver string) {
		s := newShop(t, driver)
		require.Equal(t, http.StatusOK, s.charge(t, 1000, "", "").Status)
		require.Equal(t, http.StatusForbidden, s.charge(t, 6000, "", "").Status) // over 50.00 per purchase
		errand, tok, child := s.delegate(t)
		r := s.n.Do(t, apptest.Req{Method: "POST", Path: "/v1/charges", Key: tok, Header: map[string]string{"Idempotency-Key": "idem_errand_1"},
			Body: map[string]any{"amount": 1200, "currency": "USD", "payment_method": s.card, "merchant": s.merchant, "description": "a map"}})
		require.Equal(t, http.StatusOK, r.Status, string(r.Body))

		aud := newBrowser(t, s.n)
		signUpTeam(t, s.n, s.c, aud, s.key, s.tenant, "auditor@example.com", "auditor")
		// The console links the page.
		assert.Contains(t, aud.get("/console").Body, `href="/console/mandates/`+s.mandate+`"`)

		path := "/console/mandates/" + s.mandate
		pg := aud.get(path)
		require.Equal(t, http.StatusOK, pg.Status, pg.Body)
		body := html.UnescapeString(pg.Body)
		// The tree: the mandate and its child, each with agent, status and budget left.
		tree := body[strings.Index(body, `aria-label="Delegation tree"`):strings.Index(body, "<h2>Timeline</h2>")]
		assert.Contains(t, tree, s.mandate)
		assert.Contains(t, tree, child)
		assert.Contains(t, tree, "Shopping Agent")
		assert.Contains(t, tree, "Errand Agent")
		assert.Contains(t, tree, "178.00 USD left of 200.00 USD") // 10.00 + 12.00 spent below it
		assert.Contains(t, tree, "8.00 USD left of 20.00 USD")
		assert.Contains(t, tree, "active")
		// Decisions explained: the refusal with its numbers, the policy version, the input digest, the latency.
		assert.Contains(t, body, "Refused because")
		assert.Contains(t, body, "50.00")
		assert.Contains(t, body, "Policy version")
		assert.Contains(t, body, "Input digest")
		assert.Contains(t, body, "Decided in")
		assert.Contains(t, body, "Allowed")
		// Newest first: the delegation comes before the mandate's creation.
		del, created := strings.Index(body, "Delegated to another agent"), strings.LastIndex(body, "Mandate created")
		require.Positive(t, del)
		assert.Less(t, del, created)
		// Nothing on the page changes anything: its only forms are the
		// filter (GET) and signing out.
		for _, f := range formTagRE.FindAllString(pg.Body, -1) {
			if strings.Contains(f, `action="/logout"`) {
				continue
			}
			assert.Contains(t, f, `method="get"`, f)
		}
		assert.NotContains(t, pg.Body, `action="/console/mandates/`+s.mandate+`/`)

		// Filtered by the errand agent: its decision, not the refusal.
		got := aud.get(path + "?" + url.Values{"agent": {errand}}.Encode())
		require.Equal(t, http.StatusOK, got.Status, got.Body)
		assert.NotContains(t, got.Body, "Refused because")
		assert.Contains(t, got.Body, "Allowed")
		assert.Contains(t, got.Body, "Clear the filters")
		// By time: nothing from tomorrow on; a bad date is explained.
		tomorrow := s.c.Now().AddDate(0, 0, 2).Format("2006-01-02")
		got = aud.get(path + "?since=" + tomorrow)
		require.Equal(t, http.StatusOK, got.Status, got.Body)
		assert.Contains(t, got.Body, "Nothing happened that matches the filters.")
		got = aud.get(path + "?since=yesterday")
		assert.Equal(t, http.StatusBadRequest, got.Status)
		assert.Contains(t, got.Body, "since must be a date")

		// Paged: every entry once, newest first, across pages.
		s.n.App.Pages.SetTimelinePageSize(3)
		entryRE := regexp.MustCompile(`<li id="e-([^"]+)">`)
		seen := map[string]bool{}
		next, pages := path, 0
		for next != "" {
			got := aud.get(html.UnescapeString(next))
			require.Equal(t, http.StatusOK, got.Status, got.Body)
			ms := entryRE.FindAllStringSubmatch(got.Body, -1)
			require.NotEmpty(t, ms)
			assert.LessOrEqual(t, len(ms), 3)
			for _, m := range ms {
				assert.False(t, seen[m[1]], "entry %s shown twice", m[1])
				seen[m[1]] = true
			}
			pages++
			next = ""
			if m := regexp.MustCompile(`<a href="([^"]+)" rel="next">`).FindStringSubmatch(got.Body); m != nil {
				next = m[1]
			}
		}
		assert.Equal(t, len(entryRE.FindAllString(pg.Body, -1)), len(seen), "the small pages show what one page showed")
		assert.Greater(t, pages, 2)

		// Another tenant's auditor: no such mandate.
		bt2, key2 := s.n.Tenant(t)
		other := newBrowser(t, s.n)
		signUpTeam(t, s.n, s.c, other, key2, bt2.Tenant.ID, "auditor@example.org", "auditor")
		got = other.get(path)
		assert.Equal(t, http.StatusNotFound, got.Status, got.Body)
		assert.NotContains(t, got.Body, "Shopping Agent")
		assert.Equal(t, http.StatusNotFound, other.get(path+"?agent="+errand).Status)
	})
}

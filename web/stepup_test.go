package web_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/accounts"
	"github.com/perfectpay/perfectpay/app/apptest"
	"github.com/perfectpay/perfectpay/internal/ids"
)

// shop is a tenant with a signed-up payer, the payer's card, a merchant
// and an agent with an active mandate of that payer.
type shop struct {
	n                          *apptest.Node
	c                          *clock
	key, tenant                string
	payer                      *person
	b                          *browser // the payer's browser
	card, merchant, agent, sec string
	mandate, token             string
}

func newShop(t *testing.T, driver string) *shop {
	n, c := node(t, driver)
	bt, key := n.Tenant(t)
	s := &shop{n: n, c: c, key: key, tenant: bt.Tenant.ID, b: newBrowser(t, n)}
	s.payer = signUp(t, n, c, s.b, key, s.tenant, "pat@example.com")
	r := n.Do(t, apptest.Req{Method: "POST", Path: "/v1/tokens", Key: apptest.Key(bt, accounts.KindPublishable, accounts.ModeTest),
		Body: map[string]any{"card": map[string]any{"number": "4242424242424242", "exp_month": 12, "exp_year": 2040, "cvc": "123"}}})
	require.Equal(t, http.StatusOK, r.Status, string(r.Body))
	s.card = r.JSON["id"].(string)
	_, mk := n.Tenant(t)
	r = n.Do(t, apptest.Req{Method: "POST", Path: "/v1/merchants", Key: mk, Body: map[string]any{
		"display_name": "Acme Books", "mcc": "5942", "country": "US", "domains": []string{"acmebooks.example"}}})
	require.Contains(t, []int{200, 201}, r.Status, string(r.Body))
	s.merchant = r.JSON["id"].(string)
	r = n.Do(t, apptest.Req{Method: "POST", Path: "/v1/agents", Key: key, Body: map[string]any{"name": "Shopping Agent",
		"token_endpoint_auth_method": "client_secret_basic", "grant_types": []string{"client_credentials"}, "scopes": []string{"charges:write"}}})
	require.Equal(t, http.StatusCreated, r.Status, string(r.Body))
	s.agent, s.sec = r.JSON["id"].(string), r.JSON["client_secret"].(string)
	r = n.Do(t, apptest.Req{Method: "POST", Path: "/v1/mandates", Key: key, Body: map[string]any{
		"agent": s.agent, "payer": s.payer.ID, "currency": "USD", "budget": 20000, "max_amount_per_charge": 5000,
		"approval_threshold": 3000, "payment_methods": []string{s.card}, "allowed_merchants": []string{s.merchant}}})
	require.Equal(t, http.StatusCreated, r.Status, string(r.Body))
	require.Equal(t, "pending_approval", r.JSON["status"])
	s.mandate = r.JSON["id"].(string)
	// The payer's consent activates it (the consent page's part).
	_, err := n.App.Mandates.Approve(context.Background(), s.tenant, s.mandate)
	require.NoError(t, err)
	s.token = s.tokenFor(t, s.mandate)
	return s
}

func (s *shop) tokenFor(t *testing.T, mandate string) string {
	form := url.Values{"grant_type": {"client_credentials"}, "scope": {"charges:write"},
		"authorization_details": {fmt.Sprintf(`[{"type":"payment_mandate","mandate_id":%q}]`, mandate)}}
	req, err := http.NewRequest(http.MethodPost, s.n.URL+"/oauth2/token", strings.NewReader(form.Encode()))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(s.agent, s.sec)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var body struct {
		AccessToken string `json:"access_token"`
	}
	require.NoError(t, jsonDecode(resp, &body))
	return body.AccessToken
}

func (s *shop) charge(t *testing.T, amount int64, approval, idem string) *apptest.Response {
	body := map[string]any{"amount": amount, "currency": "USD", "payment_method": s.card, "merchant": s.merchant,
		"description": "three paperbacks"}
	if approval != "" {
		body["approval"] = approval
	}
	if idem == "" {
		idem = ids.New("idem")
	}
	return s.n.Do(t, apptest.Req{Method: "POST", Path: "/v1/charges", Key: s.token, Body: body, Header: map[string]string{"Idempotency-Key": idem}})
}

func TestStepUpApprovedOnThePage(t *testing.T) {
	apptest.EachDriver(t, func(t *testing.T, driver string) {
		s := newShop(t, driver)
		r := s.charge(t, 4000, "", "big-one")
		require.Equal(t, http.StatusPaymentRequired, r.Status, string(r.Body))
		apr := r.JSON["approval"].(map[string]any)["id"].(string)

		pg := s.b.get("/approvals/" + apr)
		require.Equal(t, http.StatusOK, pg.Status, pg.Body)
		for _, want := range []string{"40.00 USD", "Acme Books", "category 5942", "Shopping Agent", "200.00 USD", "three paperbacks"} {
			assert.Contains(t, pg.Body, want)
		}
		assert.Contains(t, pg.Body, "approval threshold") // the policy's reason

		// A wrong code approves nothing.
		got := s.b.post("/approvals/"+apr, "/approvals/"+apr, url.Values{"decision": {"approve"}, "code": {"000000"}})
		assert.Equal(t, http.StatusUnauthorized, got.Status)
		r = s.charge(t, 4000, apr, "big-one")
		require.Equal(t, http.StatusPaymentRequired, r.Status, string(r.Body))
		// Without the CSRF token nothing happens either.
		got = s.b.do(http.MethodPost, "/approvals/"+apr, url.Values{"decision": {"approve"}, "code": {code(t, s.payer.Secret, s.c.Now())}})
		assert.Equal(t, http.StatusForbidden, got.Status)

		got = s.b.post("/approvals/"+apr, "/approvals/"+apr, url.Values{"decision": {"approve"}, "code": {code(t, s.payer.Secret, s.c.Now())}})
		require.Equal(t, http.StatusOK, got.Status, got.Body)
		assert.Contains(t, got.Body, "You approved this purchase")
		s.c.Add(30e9)
		r = s.charge(t, 4000, apr, "big-one")
		require.Equal(t, http.StatusOK, r.Status, string(r.Body))
		assert.Equal(t, "succeeded", r.JSON["status"])
		// Answered: the page offers no form any more.
		got = s.b.post("/approvals/"+apr, "/approvals/"+apr, url.Values{"decision": {"deny"}, "code": {code(t, s.payer.Secret, s.c.Now())}})
		assert.Equal(t, http.StatusConflict, got.Status)

		// Declined on the page: the retry is refused.
		r = s.charge(t, 4500, "", "big-two")
		require.Equal(t, http.StatusPaymentRequired, r.Status, string(r.Body))
		apr2 := r.JSON["approval"].(map[string]any)["id"].(string)
		s.c.Add(30e9)
		got = s.b.post("/approvals/"+apr2, "/approvals/"+apr2, url.Values{"decision": {"deny"}, "code": {code(t, s.payer.Secret, s.c.Now())}})
		require.Equal(t, http.StatusOK, got.Status, got.Body)
		assert.Contains(t, got.Body, "You declined this purchase")
		r = s.charge(t, 4500, apr2, "big-two")
		assert.Equal(t, http.StatusForbidden, r.Status, string(r.Body))
	})
}

func TestApprovalAndMandatesOnlyForTheirPayer(t *testing.T) {
	apptest.EachDriver(t, func(t *testing.T, driver string) {
		s := newShop(t, driver)
		r := s.charge(t, 4000, "", "")
		require.Equal(t, http.StatusPaymentRequired, r.Status, string(r.Body))
		apr := r.JSON["approval"].(map[string]any)["id"].(string)

		// Another payer of the same tenant.
		ob := newBrowser(t, s.n)
		signUp(t, s.n, s.c, ob, s.key, s.tenant, "other@example.com")
		assert.Equal(t, http.StatusNotFound, ob.get("/approvals/"+apr).Status)
		assert.NotContains(t, ob.get("/me").Body, s.mandate)
		got := ob.post("/me", "/me/mandates/"+s.mandate+"/revoke", url.Values{})
		assert.Equal(t, http.StatusNotFound, got.Status)

		// A payer of another tenant, with the same email.
		tb, keyB := s.n.Tenant(t)
		xb := newBrowser(t, s.n)
		signUp(t, s.n, s.c, xb, keyB, tb.Tenant.ID, "pat@example.com")
		assert.Equal(t, http.StatusNotFound, xb.get("/approvals/"+apr).Status)
		assert.NotContains(t, xb.get("/me").Body, s.mandate)
		got = xb.post("/me", "/me/mandates/"+s.mandate+"/revoke", url.Values{})
		assert.Equal(t, http.StatusNotFound, got.Status)

		// The mandate still works.
		assert.Equal(t, http.StatusOK, s.charge(t, 1000, "", "").Status)
	})
}

func TestPayerPageShowsAndRevokes(t *testing.T) {
	apptest.EachDriver(t, func(t *testing.T, driver string) {
		s := newShop(t, driver)
		require.Equal(t, http.StatusOK, s.charge(t, 1000, "", "").Status)
		r := s.charge(t, 6000, "", "")
		require.Equal(t, http.StatusForbidden, r.Status, string(r.Body))
		r = s.charge(t, 4000, "", "")
		require.Equal(t, http.StatusPaymentRequired, r.Status, string(r.Body))
		apr := r.JSON["approval"].(map[string]any)["id"].(string)

		pg := s.b.get("/me")
		require.Equal(t, http.StatusOK, pg.Status, pg.Body)
		for _, want := range []string{s.mandate, "Shopping Agent", "190.00 USD", "A purchase was refused", "60.00 USD",
			"/approvals/" + apr, "At most 50.00 USD per purchase.", "Purchases over 30.00 USD need your approval."} {
			assert.Contains(t, pg.Body, want)
		}

		got := s.b.post("/me", "/me/mandates/"+s.mandate+"/revoke", url.Values{})
		require.Equal(t, http.StatusSeeOther, got.Status, got.Body)
		r = s.charge(t, 1000, "", "")
		assert.Equal(t, http.StatusForbidden, r.Status, string(r.Body))
		assert.Contains(t, s.b.get("/me?revoked=1").Body, "revoked")
	})
}

// A revocation on the payer's page served by one node refuses the next
// charge made through another node of the same database.
func TestPayerRevokeStopsChargesOnEveryNode(t *testing.T) {
	s := newShop(t, "postgres")
	other := apptest.NewWithURL(t, "postgres", s.n.App.Config.Store.Postgres.URL, cheap)
	charge := func(n *apptest.Node) int {
		return n.Do(t, apptest.Req{Method: "POST", Path: "/v1/charges", Key: s.token, Body: map[string]any{
			"amount": 1000, "currency": "USD", "payment_method": s.card, "merchant": s.merchant},
			Header: map[string]string{"Idempotency-Key": ids.New("idem")}}).Status
	}
	require.Equal(t, http.StatusOK, charge(other))
	got := s.b.post("/me", "/me/mandates/"+s.mandate+"/revoke", url.Values{})
	require.Equal(t, http.StatusSeeOther, got.Status, got.Body)
	assert.Equal(t, http.StatusForbidden, charge(other))
	assert.Equal(t, http.StatusForbidden, charge(s.n))
}

package web_test

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/accounts"
	"github.com/perfectpay/perfectpay/app/apptest"
	"github.com/perfectpay/perfectpay/authz"
	"github.com/perfectpay/perfectpay/internal/ids"
)

const agentCallback = "https://agent.test/callback"

// shopAgent is a tenant with a card, a merchant and agents of the
// authorization code grant and of CIBA.
type shopAgent struct {
	n                          *apptest.Node
	tenant, key                string
	card, merchant             string
	agent, secret              string
	cibaAgent, cibaSecret      string
	verifier, challenge, state string
}

func form(t *testing.T, n *apptest.Node, path string, basic [2]string, f url.Values) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, n.URL+path, strings.NewReader(f.Encode()))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(basic[0]), url.QueryEscape(basic[1]))
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	_ = json.Unmarshal(raw, &out)
	return resp.StatusCode, out
}

func newShopAgent(t *testing.T, n *apptest.Node) *shopAgent {
	b, key := n.Tenant(t)
	s := &shopAgent{n: n, tenant: b.Tenant.ID, key: key}
	r := n.Do(t, apptest.Req{Method: "POST", Path: "/v1/tokens", Key: apptest.Key(b, accounts.KindPublishable, accounts.ModeTest),
		Body: map[string]any{"card": map[string]any{"number": "4242424242424242", "exp_month": 12, "exp_year": 2030, "cvc": "123"}}})
	require.Contains(t, []int{200, 201}, r.Status, string(r.Body))
	s.card = r.JSON["id"].(string)
	_, mk := n.Tenant(t)
	r = n.Do(t, apptest.Req{Method: "POST", Path: "/v1/merchants", Key: mk, Body: map[string]any{
		"display_name": "Acme Books", "mcc": "5942", "country": "US", "domains": []string{"acmebooks.example"}}})
	require.Contains(t, []int{200, 201}, r.Status, string(r.Body))
	s.merchant = r.JSON["id"].(string)
	r = n.Do(t, apptest.Req{Method: "POST", Path: "/v1/agents", Key: key, Body: map[string]any{
		"name": "Shopping Agent", "token_endpoint_auth_method": "client_secret_basic",
		"grant_types": []string{authz.GrantAuthorizationCode}, "redirect_uris": []string{agentCallback}, "scopes": []string{"charges:write"}}})
	require.Equal(t, 201, r.Status, string(r.Body))
	s.agent, s.secret = r.JSON["id"].(string), r.JSON["client_secret"].(string)
	r = n.Do(t, apptest.Req{Method: "POST", Path: "/v1/agents", Key: key, Body: map[string]any{
		"name": "Errand Agent", "token_endpoint_auth_method": "client_secret_basic",
		"grant_types": []string{authz.GrantCIBA}, "scopes": []string{"charges:write"}}})
	require.Equal(t, 201, r.Status, string(r.Body))
	s.cibaAgent, s.cibaSecret = r.JSON["id"].(string), r.JSON["client_secret"].(string)
	return s
}

func (s *shopAgent) terms() string {
	return fmt.Sprintf(`[{"type":"payment_mandate","currency":"USD","budget":20000,"max_amount_per_charge":5000,
		"approval_threshold":3000,"payment_methods":[%q],"allowed_merchants":[%q],"valid_until":"2026-12-31T23:59:00Z",
		"description":"books for the reading group"}]`, s.card, s.merchant)
}

// push makes a new PKCE pair and pushes an authorization request.
func (s *shopAgent) push(t *testing.T) string {
	v := make([]byte, 32)
	_, _ = rand.Read(v)
	s.verifier = base64.RawURLEncoding.EncodeToString(v)
	sum := sha256.Sum256([]byte(s.verifier))
	s.challenge, s.state = base64.RawURLEncoding.EncodeToString(sum[:]), ids.New("st")
	st, body := form(t, s.n, authz.PathPAR, [2]string{s.agent, s.secret}, url.Values{
		"client_id": {s.agent}, "response_type": {"code"}, "redirect_uri": {agentCallback}, "state": {s.state},
		"scope": {"charges:write"}, "code_challenge": {s.challenge}, "code_challenge_method": {"S256"},
		"authorization_details": {s.terms()}})
	require.Equal(t, http.StatusCreated, st, body)
	return body["request_uri"].(string)
}

// authorize sends the payer's browser to /oauth2/authorize and returns
// the consent page's path.
func (s *shopAgent) authorize(t *testing.T, b *browser, requestURI string) string {
	got := b.get(authz.PathAuthorize + "?" + url.Values{"client_id": {s.agent}, "request_uri": {requestURI}}.Encode())
	require.Equal(t, http.StatusSeeOther, got.Status, got.Body)
	require.True(t, strings.HasPrefix(got.Location, authz.PathConsent+"/azr_"), got.Location)
	return got.Location
}

func (s *shopAgent) redeem(t *testing.T, code string) (int, map[string]any) {
	return form(t, s.n, authz.PathToken, [2]string{s.agent, s.secret}, url.Values{"grant_type": {"authorization_code"},
		"code": {code}, "redirect_uri": {agentCallback}, "code_verifier": {s.verifier}})
}

func (s *shopAgent) charge(t *testing.T, tok string, amount int64) *apptest.Response {
	return s.n.Do(t, apptest.Req{Method: "POST", Path: "/v1/charges", Key: tok, Header: map[string]string{"Idempotency-Key": ids.New("idem")},
		Body: map[string]any{"amount": amount, "currency": "USD", "payment_method": s.card, "merchant": s.merchant, "description": "two paperbacks"}})
}

// TestConsentAuthorizationCode walks the authorization code grant with a
// person: PAR → /oauth2/authorize → sign-in → consent page → approve with
// a TOTP code → the agent's redirect URI with code, state and iss → the
// code for a token → a charge within the terms. A reused code revokes that
// token; a declined request returns access_denied; a payer of another
// tenant cannot see or answer the request.
func TestConsentAuthorizationCode(t *testing.T) {
	apptest.EachDriver(t, func(t *testing.T, driver string) {
		n, c := node(t, driver)
		s := newShopAgent(t, n)
		b := newBrowser(t, n)
		p := signUp(t, n, c, b, s.key, s.tenant, "pat@example.com")

		consent := s.authorize(t, b, s.push(t))
		page := b.get(consent)
		require.Equal(t, http.StatusOK, page.Status, page.Body)
		assert.Contains(t, page.Body, "Shopping Agent may spend up to 200.00 USD in total.")
		assert.Contains(t, page.Body, "At most 50.00 USD per purchase.")
		assert.Contains(t, page.Body, "Only at Acme Books.")
		assert.Contains(t, page.Body, "Until 31 Dec 2026.")
		assert.Contains(t, page.Body, "Purchases over 30.00 USD need your approval.")
		csp := page.Header.Get("Content-Security-Policy")
		assert.Contains(t, csp, "default-src 'none'")
		assert.Contains(t, csp, "frame-ancestors 'none'")
		assert.Contains(t, csp, "form-action 'self' https://agent.test;", "the answer may redirect to the agent, and only there")
		assert.Equal(t, "no-referrer", page.Header.Get("Referrer-Policy"))

		// A wrong code does not approve.
		got := b.post(consent, consent, url.Values{"decision": {"approve"}, "code": {"000000"}})
		require.NotEqual(t, http.StatusSeeOther, got.Status, got.Body)

		got = b.post(consent, consent, url.Values{"decision": {"approve"}, "code": {code(t, p.Secret, c.Now())}})
		require.Equal(t, http.StatusSeeOther, got.Status, got.Body)
		c.Add(30 * time.Second)
		back, err := url.Parse(got.Location)
		require.NoError(t, err)
		assert.Equal(t, agentCallback, back.Scheme+"://"+back.Host+back.Path)
		assert.Equal(t, s.state, back.Query().Get("state"))
		assert.Equal(t, n.App.Issuer.Options().Issuer, back.Query().Get("iss"))

		st, body := s.redeem(t, back.Query().Get("code"))
		require.Equal(t, 200, st, body)
		tok := body["access_token"].(string)
		details, _ := json.Marshal(body["authorization_details"])
		assert.Contains(t, string(details), `"mandate_id":"mdt_`)
		var granted []map[string]any
		require.NoError(t, json.Unmarshal(details, &granted))
		mandateID := granted[0]["mandate_id"].(string)

		m := n.Do(t, apptest.Req{Method: "GET", Path: "/v1/mandates/" + mandateID, Key: s.key})
		require.Equal(t, 200, m.Status, string(m.Body))
		assert.Equal(t, "active", m.JSON["status"])
		assert.Equal(t, p.ID, m.JSON["payer"])
		assert.Equal(t, s.agent, m.JSON["agent"])

		r := s.charge(t, tok, 2000)
		require.Contains(t, []int{200, 201}, r.Status, string(r.Body))

		// The consent is answered once.
		again := b.post(consent, consent, url.Values{"decision": {"approve"}, "code": {code(t, p.Secret, c.Now())}})
		assert.Equal(t, http.StatusConflict, again.Status, again.Body)
		c.Add(30 * time.Second)

		// A reused code is refused and revokes what it issued.
		st, body = s.redeem(t, back.Query().Get("code"))
		require.Equal(t, 400, st, body)
		assert.Equal(t, "invalid_grant", body["error"])
		r = s.charge(t, tok, 1000)
		assert.Contains(t, []int{401, 403}, r.Status, string(r.Body))

		// Declined: access_denied at the redirect URI.
		consent = s.authorize(t, b, s.push(t))
		got = b.post(consent, consent, url.Values{"decision": {"deny"}})
		require.Equal(t, http.StatusSeeOther, got.Status, got.Body)
		back, _ = url.Parse(got.Location)
		assert.Equal(t, "access_denied", back.Query().Get("error"))
		assert.Equal(t, s.state, back.Query().Get("state"))
		assert.Empty(t, back.Query().Get("code"))

		// A payer of another tenant sees no such request and cannot answer it.
		consent = s.authorize(t, b, s.push(t))
		other := newShopAgent(t, n)
		b2 := newBrowser(t, n)
		p2 := signUp(t, n, c, b2, other.key, other.tenant, "sam@example.com")
		assert.Equal(t, http.StatusNotFound, b2.get(consent).Status)
		got = b2.post("/me", consent, url.Values{"decision": {"approve"}, "code": {code(t, p2.Secret, c.Now())}})
		assert.Equal(t, http.StatusNotFound, got.Status, got.Body)
		assert.Equal(t, http.StatusOK, b.get(consent).Status, "still waiting for its own payer")
	})
}

// TestConsentCIBA: an agent asks by the backchannel; the tenant gets
// approval.requested with the page's URL; the payer approves there; the
// agent's polls go authorization_pending → slow_down → a token.
func TestConsentCIBA(t *testing.T) {
	apptest.EachDriver(t, func(t *testing.T, driver string) {
		n, c := node(t, driver)
		s := newShopAgent(t, n)
		b := newBrowser(t, n)
		p := signUp(t, n, c, b, s.key, s.tenant, "pat@example.com")
		basic := [2]string{s.cibaAgent, s.cibaSecret}

		st, body := form(t, n, authz.PathBCAuthorize, basic, url.Values{"login_hint": {"cus_nobody"}, "binding_message": {"K7 blue"},
			"authorization_details": {s.terms()}})
		require.Equal(t, 400, st, body)
		assert.Equal(t, "unknown_user_id", body["error"])

		st, body = form(t, n, authz.PathBCAuthorize, basic, url.Values{"login_hint": {p.ID}, "binding_message": {"K7 blue"},
			"scope": {"openid charges:write"}, "authorization_details": {s.terms()}})
		require.Equal(t, 200, st, body)
		id := body["auth_req_id"].(string)

		ev := n.Do(t, apptest.Req{Method: "GET", Path: "/v1/events?limit=100", Key: s.key})
		require.Equal(t, 200, ev.Status, string(ev.Body))
		assert.Contains(t, string(ev.Body), authz.EventApprovalRequested)
		assert.Contains(t, string(ev.Body), authz.PathConsent+"/"+id)

		poll := func() (int, map[string]any) {
			return form(t, n, authz.PathToken, basic, url.Values{"grant_type": {authz.GrantCIBA}, "auth_req_id": {id}})
		}
		st, body = poll()
		require.Equal(t, 400, st)
		assert.Equal(t, "authorization_pending", body["error"])
		st, body = poll()
		require.Equal(t, 400, st)
		assert.Equal(t, "slow_down", body["error"])

		page := b.get(authz.PathConsent + "/" + id)
		require.Equal(t, 200, page.Status, page.Body)
		assert.Contains(t, page.Body, "K7 blue")
		assert.Contains(t, page.Body, "Errand Agent may spend up to 200.00 USD in total.")
		got := b.post(authz.PathConsent+"/"+id, authz.PathConsent+"/"+id, url.Values{"decision": {"approve"}, "code": {code(t, p.Secret, c.Now())}})
		require.Equal(t, 200, got.Status, got.Body)

		require.Eventually(t, func() bool {
			st, body = poll()
			return st == 200
		}, 30*time.Second, time.Second, "the token after the interval")
		assert.NotEmpty(t, body["access_token"])
		r := s.charge(t, body["access_token"].(string), 1500)
		require.Contains(t, []int{200, 201}, r.Status, string(r.Body))
	})
}

// TestConsentPendingMandate: a mandate a tenant made for its customer
// waits for that payer, who approves it on the consent page with a code;
// no one else can.
func TestConsentPendingMandate(t *testing.T) {
	apptest.EachDriver(t, func(t *testing.T, driver string) {
		n, c := node(t, driver)
		s := newShopAgent(t, n)
		b := newBrowser(t, n)
		p := signUp(t, n, c, b, s.key, s.tenant, "pat@example.com")
		r := n.Do(t, apptest.Req{Method: "POST", Path: "/v1/mandates", Key: s.key, Body: map[string]any{
			"agent": s.agent, "payer": p.ID, "currency": "USD", "budget": 10000, "payment_methods": []string{s.card},
			"allowed_merchants": []string{s.merchant}, "description": "office supplies"}})
		require.Equal(t, 201, r.Status, string(r.Body))
		require.Equal(t, "pending_approval", r.JSON["status"])
		id := r.JSON["id"].(string)
		path := authz.PathConsent + "/mandates/" + id

		b2 := newBrowser(t, n)
		signUp(t, n, c, b2, s.key, s.tenant, "sam@example.com")
		assert.Equal(t, http.StatusNotFound, b2.get(path).Status, "another payer of the tenant")

		page := b.get(path)
		require.Equal(t, http.StatusOK, page.Status, page.Body)
		assert.Contains(t, page.Body, "Shopping Agent may spend up to 100.00 USD in total.")
		got := b.post(path, path, url.Values{"decision": {"approve"}})
		require.NotEqual(t, http.StatusOK, got.Status, "allowing needs a code")
		got = b.post(path, path, url.Values{"decision": {"approve"}, "code": {code(t, p.Secret, c.Now())}})
		require.Equal(t, http.StatusOK, got.Status, got.Body)
		c.Add(30 * time.Second)
		r = n.Do(t, apptest.Req{Method: "GET", Path: "/v1/mandates/" + id, Key: s.key})
		assert.Equal(t, "active", r.JSON["status"])
		got = b.post(path, path, url.Values{"decision": {"approve"}, "code": {code(t, p.Secret, c.Now())}})
		assert.Equal(t, http.StatusConflict, got.Status, "approved once")
	})
}

package server_test

import (
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/app/apptest"
	"github.com/perfectpay/perfectpay/authz"
	"github.com/perfectpay/perfectpay/server"
)

// panMoreExamples are the JSON API routes the robustness sweep does not
// drive, each with a valid request and its state.
func panMoreExamples(t *testing.T, n *apptest.Node, w *world, opTok string) map[string][]panCase {
	r := n.Do(t, apptest.Req{Method: "GET", Path: "/v1/tenant", Key: w.sk})
	require.Equal(t, 200, r.Status, string(r.Body))
	tenant := r.JSON["id"].(string)
	r = n.Do(t, apptest.Req{Method: "POST", Path: "/v1/customers", Key: w.sk, Body: map[string]any{"email": "pan-sweep@example.com", "name": "Pat Payer"}})
	require.Contains(t, []int{200, 201}, r.Status, string(r.Body))
	customer := r.JSON["id"].(string)
	sk := "Bearer " + w.sk
	one := func(path string, body map[string]any, auth, at string) []panCase {
		return []panCase{{route: route{method: "POST", path: path, body: body}, auth: auth, at: at}}
	}
	return map[string][]panCase{
		"POST /v1/client_domains": one("/v1/client_domains", map[string]any{"domain": "agents.a-shop.example"}, sk, ""),
		"POST /v1/tenants/{id}/verification": one("/v1/tenants/{id}/verification", map[string]any{
			"status": "pending", "legal_name": "A Shop Ltd", "registration_number": "HRB 1234", "country": "US",
			"evidence_reference": "case-17", "notes": "sweep", "reviewed_by": "ops@example.com"},
			"Bearer "+opTok, "/v1/tenants/"+tenant+"/verification"),
		"POST /v1/tenants/{id}/jurisdictions": one("/v1/tenants/{id}/jurisdictions", map[string]any{
			"countries": []any{"US", "GB"}}, "Bearer "+opTok, "/v1/tenants/"+tenant+"/jurisdictions"),
		"POST /v1/tenant/allowed_countries": one("/v1/tenant/allowed_countries", map[string]any{
			"allowed_countries": []any{"US"}}, "Bearer "+w.live, ""),
		"POST /v1/customers": one("/v1/customers", map[string]any{"email": "pat@example.com", "name": "Pat Payer"}, sk, ""),
		"POST /v1/customers/{id}/invite": one("/v1/customers/{id}/invite", map[string]any{}, sk,
			"/v1/customers/"+customer+"/invite"),
		// No body: only the stored Idempotency-Key can carry a number.
		"POST /v1/customers/{id}/erase": one("/v1/customers/{id}/erase", map[string]any{}, sk,
			"/v1/customers/"+customer+"/erase"),
		"POST /v1/agents/{id}/anomaly/clear": one("/v1/agents/{id}/anomaly/clear", map[string]any{}, sk,
			"/v1/agents/"+w.a["agent"]+"/anomaly/clear"),
		"POST /v1/team_invitations": one("/v1/team_invitations", map[string]any{
			"email": "dana@example.com", "name": "Dana Dev", "role": "developer"}, sk, ""),
	}
}

// panMoreForms are the OAuth form endpoints added after panForms: pushed
// authorization and the backchannel (CIBA) request, each from an agent
// holding its grant. The card-number check stands in front of both, so
// the answer is RFC 6749's 400. It also returns the id of a backchannel
// request waiting for its payer: the consent page's id.
func panMoreForms(t *testing.T, n *apptest.Node, w *world, payer string) (map[string]formCase, string) {
	agentOf := func(grant string, extra map[string]any) [2]string {
		body := map[string]any{"name": "sweep " + grant, "token_endpoint_auth_method": "client_secret_basic",
			"grant_types": []string{grant}, "scopes": []string{"charges:write"}}
		for k, v := range extra {
			body[k] = v
		}
		r := n.Do(t, apptest.Req{Method: "POST", Path: "/v1/agents", Key: w.sk, Body: body})
		require.Equal(t, 201, r.Status, string(r.Body))
		return [2]string{r.JSON["id"].(string), r.JSON["client_secret"].(string)}
	}
	code := agentOf(authz.GrantAuthorizationCode, map[string]any{"redirect_uris": []string{"https://agent.example/cb"}})
	ciba := agentOf(authz.GrantCIBA, nil)
	details := fmt.Sprintf(`[{"type":"payment_mandate","currency":"USD","budget":1000,"payment_methods":[%q],"description":"books"}]`, w.card)
	bc := url.Values{"login_hint": {payer}, "binding_message": {"K7 blue"}, "scope": {"openid charges:write"}, "authorization_details": {details}}
	st, body, _ := postForm(t, n, formReq{path: authz.PathBCAuthorize, basic: ciba, form: bc})
	require.Equal(t, 200, st, body)
	return map[string]formCase{
		"POST " + authz.PathPAR: {path: authz.PathPAR, basic: code, form: url.Values{
			"response_type": {"code"}, "client_id": {code[0]}, "redirect_uri": {"https://agent.example/cb"},
			"scope": {"charges:write"}, "state": {"s-17"}, "code_challenge": {"E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"},
			"code_challenge_method": {"S256"}, "authorization_details": {details}}},
		"POST " + authz.PathBCAuthorize: {path: authz.PathBCAuthorize, basic: ciba, form: bc},
	}, body["auth_req_id"].(string)
}

// panRegister sends a card number in every string of a valid RFC 7591
// registration: RFC 7591's 400 invalid_client_metadata naming the field
// (the registration endpoint answers in its RFC's shape, not the API's),
// no echo, and no client registered.
func (sw *sweep) panRegister(t *testing.T) {
	n, w := sw.w.n, sw.w
	r := n.Do(t, apptest.Req{Method: "POST", Path: "/v1/api_keys", Key: w.sk, Body: map[string]any{"type": "restricted", "scopes": []string{server.ScopeRegister}}})
	require.Equal(t, 201, r.Status, string(r.Body))
	auth := "Bearer " + r.JSON["secret"].(string)
	body := map[string]any{"client_name": "sweep agent", "token_endpoint_auth_method": "private_key_jwt",
		"grant_types": []string{"client_credentials"}, "scope": "charges:write", "jwks": w.jwksOfVictim}
	b, err := json.Marshal(body)
	require.NoError(t, err)
	var generic any
	require.NoError(t, json.Unmarshal(b, &generic))
	before := w.count(t, "/v1/agents")
	for i, s := range stringSlots(generic, "", func(v any) any { return v }) {
		b, err := json.Marshal(s.replace(pans[i%len(pans)]))
		require.NoError(t, err)
		r := sw.do(t, rreq{method: "POST", path: authz.PathRegister, body: b, ctype: "application/json", auth: auth})
		if assert.Equal(t, 400, r.status, "a card number in %q: %s", s.param, r.body) {
			assert.Equal(t, "invalid_client_metadata", r.json["error"], "RFC 7591 shape")
			desc, _ := r.json["error_description"].(string)
			if s.param != "" {
				assert.True(t, strings.HasPrefix(desc, s.param+" "), "%q names %q", desc, s.param)
			}
		}
		for _, d := range panDigits {
			assert.NotContains(t, string(r.body), d, "the card number is echoed")
		}
	}
	assert.Equal(t, before, w.count(t, "/v1/agents"), "a refused registration registered nothing")
}

// panMCP sends a card number in every string of a JSON-RPC tool call: 400
// parameter_invalid naming the member before any tool runs, no echo, no
// charge. The MCP endpoint takes no Idempotency-Key (JSON-RPC ids are not
// stored), so that header is not swept here.
func (sw *sweep) panMCP(t *testing.T) {
	w, n := sw.w, sw.w.n
	// A token for the MCP resource (RFC 8707): the API's default audience
	// is refused there before the body is read.
	r := n.Do(t, apptest.Req{Method: "GET", Path: "/.well-known/oauth-protected-resource" + server.PathMCP})
	require.Equal(t, 200, r.Status, string(r.Body))
	resource := r.JSON["resource"].(string)
	agent, secret := secretAgent(t, n, w.sk, map[string]any{
		"grant_types": []string{authz.GrantClientCredentials}, "scopes": []string{"charges:write"}})
	mandate := createMandate(t, n, w.sk, agent, w.card)
	code, body, _ := postForm(t, n, formReq{path: authz.PathToken, basic: [2]string{agent, secret}, form: url.Values{
		"grant_type": {"client_credentials"}, "scope": {"charges:write"}, "resource": {resource},
		"authorization_details": {fmt.Sprintf(`[{"type":"payment_mandate","mandate_id":%q}]`, mandate)}}})
	require.Equal(t, 200, code, body)
	tok := body["access_token"].(string)
	call := map[string]any{"jsonrpc": "2.0", "id": "call-1", "method": "tools/call", "params": map[string]any{
		"name": "create_charge", "arguments": map[string]any{"amount": 100, "currency": "USD", "payment_method": w.card,
			"merchant": w.a["merchant"], "description": "sweep"}}}
	b, err := json.Marshal(call)
	require.NoError(t, err)
	var generic any
	require.NoError(t, json.Unmarshal(b, &generic))
	before := w.count(t, "/v1/charges")
	for i, s := range stringSlots(generic, "", func(v any) any { return v }) {
		b, err := json.Marshal(s.replace(pans[i%len(pans)]))
		require.NoError(t, err)
		r := sw.do(t, rreq{method: "POST", path: server.PathMCP, body: b, ctype: "application/json", auth: "Bearer " + tok,
			header: map[string]string{"Accept": "application/json, text/event-stream"}})
		if assert.Equal(t, 400, r.status, "a card number in %q: %s", s.param, r.body) {
			assert.Equal(t, "parameter_invalid", r.errField("code"), s.param)
			assert.Equal(t, s.param, r.errField("param"))
		}
		for _, d := range panDigits {
			assert.NotContains(t, string(r.body), d, "the card number is echoed")
		}
	}
	assert.Equal(t, before, w.count(t, "/v1/charges"), "no tool ran")
}

// pageCase is a server-rendered page's POST: its path and the fields its
// form sends (the JSON ones, the passkey ceremonies, send json instead).
type pageCase struct {
	path string
	form url.Values
	json map[string]any
	sess *pageSession // signed in; nil: a browser that has opened the sign-in page
	// ceremony is the options step whose sealed ceremony cookie each
	// request carries, so the page verifies the credential sent.
	ceremony string
}

// panPages are the pages' POST routes with the fields each form sends. A
// card number in any form field or field name is refused in front of every
// page (the same check as the OAuth forms: 400 in RFC 6749's shape), so no
// page handler sees it, whatever its session. The sweep sends each page's
// own fields as a browser does: signed in with its second factor and the
// session's CSRF token for the pages behind sign-in, with the sign-in
// page's CSRF cookie and token for the ones before it.
func panPages(w *world, pw *pageWorld, consent string) map[string]pageCase {
	f := func(kv ...string) url.Values {
		v := url.Values{"csrf_token": {"{csrf}"}}
		for i := 0; i < len(kv); i += 2 {
			v.Set(kv[i], kv[i+1])
		}
		return v
	}
	assertion := map[string]any{"id": "AAAA", "rawId": "AAAA", "type": "public-key",
		"response": map[string]any{"clientDataJSON": "e30", "authenticatorData": "AA", "signature": "AA", "userHandle": "AA"}}
	m := map[string]pageCase{
		"POST /login":                        {path: "/login", form: f("tenant", "a-shop", "email", "pat@example.com", "password", "correct horse", "return", "/me")},
		"POST /login/mfa":                    {path: "/login/mfa", form: f("code", "123456")},
		"POST /mfa/setup":                    {path: "/mfa/setup", form: f("code", "123456")},
		"POST /logout":                       {path: "/logout", form: f()},
		"POST /logout/everywhere":            {path: "/logout/everywhere", form: f()},
		"POST /invitations/{token}":          {path: pw.invitation, form: f("password", "correct horse battery", "password_again", "correct horse battery")},
		"POST /approvals/{id}":               {path: "/approvals/" + w.approveID, form: f("decision", "approve", "code", "123456")},
		"POST /me/mandates/{id}/revoke":      {path: "/me/mandates/" + pw.payerMandate + "/revoke", form: f()},
		"POST /console/agents":               {path: "/console/agents", form: f("name", "sweep agent", "intent", "create", "jwks", string(w.jwksOfVictim))},
		"POST /console/agents/{id}/{action}": {path: "/console/agents/" + w.a["agent"] + "/suspend", form: f()},
		"POST /console/mandates": {path: "/console/mandates", form: f("agent", w.a["agent"], "budget", "1000", "period_budget", "500",
			"allowed_merchants", "books.example", "valid_until", "2030-01-01")},
		"POST /console/mandates/{id}/{action}":         {path: "/console/mandates/" + w.mandate + "/suspend", form: f()},
		"POST " + authz.PathConsent + "/mandates/{id}": {path: authz.PathConsent + "/mandates/" + pw.payerMandate, form: f("decision", "approve", "code", "123456")},
		"POST " + authz.PathConsent + "/{id}":          {path: authz.PathConsent + "/" + consent, form: f("decision", "approve", "code", "123456")},
		// The passkey ceremonies post WebAuthn's JSON with the CSRF token
		// in a header; the account and a new passkey's name are query
		// parameters (webauthn.js).
		"POST /passkeys/register/options": {path: "/passkeys/register/options", json: map[string]any{}},
		"POST /passkeys/register": {path: "/passkeys/register?name=laptop", ceremony: "/passkeys/register/options", json: map[string]any{"id": "AAAA", "rawId": "AAAA", "type": "public-key",
			"response": map[string]any{"clientDataJSON": "e30", "attestationObject": "oA"}}},
		"POST /login/passkey/options": {path: "/login/passkey/options", json: map[string]any{}},
		"POST /login/passkey":         {path: "/login/passkey", json: assertion},
		"POST /passkey/options":       {path: "/passkey/options?tenant=a-shop&return=%2Fme", json: map[string]any{}},
		"POST /passkey":               {path: "/passkey", ceremony: "/passkey/options?tenant=" + url.QueryEscape(pw.tenant), json: assertion},
	}
	for k, c := range m {
		switch {
		case strings.HasPrefix(k, "POST /login"), strings.HasPrefix(k, "POST /passkey/"), k == "POST /passkey", strings.HasPrefix(k, "POST /invitations/"):
			// before sign-in
		case strings.HasPrefix(k, "POST /approvals/"), strings.HasPrefix(k, "POST /me/"), strings.HasPrefix(k, "POST "+authz.PathConsent):
			c.sess = &pw.payer
		default:
			c.sess = &pw.admin
		}
		m[k] = c
	}
	return m
}

var csrfField = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)

// preSignIn opens the sign-in page as a browser does: its CSRF token and
// the cookies that go with it.
func (sw *sweep) preSignIn(t *testing.T) (csrf, cookies string) {
	r := sw.do(t, rreq{method: "GET", path: "/login"})
	require.Equal(t, 200, r.status, string(r.body))
	m := csrfField.FindSubmatch(r.body)
	require.Len(t, m, 2, "the sign-in form carries a CSRF token")
	var cs []string
	for _, c := range (&http.Response{Header: r.header}).Cookies() {
		cs = append(cs, c.Name+"="+c.Value)
	}
	require.NotEmpty(t, cs, "the sign-in page sets its CSRF cookie")
	return html.UnescapeString(string(m[1])), strings.Join(cs, "; ")
}

// panPage sends a card number in each field (and field name, and query
// parameter) of a page's POST. A form is refused with 400 in RFC 6749's
// shape naming the field. A JSON ceremony is refused (4xx) by the page,
// which keeps nothing of it; an options step reads no body, and a number
// in its query finds no account (the ceremony cookie it sets is sealed).
// No answer, nor cookie, echoes the number. Nothing is
// stored: the postgres run reads every table afterwards.
func (sw *sweep) panPage(t *testing.T, pc pageCase) {
	var csrf, cookies string
	if pc.sess != nil {
		csrf, cookies = pc.sess.csrf, pc.sess.cookies
	} else {
		csrf, cookies = sw.preSignIn(t)
	}
	check := func(what string, r *rresp) {
		for _, d := range panDigits {
			assert.NotContains(t, string(r.body), d, "%s %s: the card number is echoed", pc.path, what)
			for _, c := range r.header.Values("Set-Cookie") {
				assert.NotContains(t, c, d, "%s %s: the card number is set in a cookie", pc.path, what)
			}
		}
		assert.Less(t, r.status, 500, "%s %s: %s", pc.path, what, r.body)
	}
	hdr := map[string]string{"X-CSRF-Token": csrf, "Cookie": cookies}
	i := 0
	next := func() string { i++; return pans[i%len(pans)] }
	base, rawQuery, _ := strings.Cut(pc.path, "?")
	query, err := url.ParseQuery(rawQuery)
	require.NoError(t, err)
	if pc.json != nil {
		b, err := json.Marshal(pc.json)
		require.NoError(t, err)
		var generic any
		require.NoError(t, json.Unmarshal(b, &generic))
		slots := stringSlots(generic, "", func(v any) any { return v })
		if len(slots) == 0 && len(query) == 0 {
			// The options steps take no input: a number sent in a body
			// anyway is ignored, never kept, never echoed.
			slots = []slot{{"", func(pan string) any { return map[string]any{pan: pan} }}}
		}
		for _, s := range slots {
			b, err := json.Marshal(s.replace(next()))
			require.NoError(t, err)
			r := sw.do(t, rreq{method: "POST", path: pc.path, body: b, ctype: "application/json", header: sw.withCeremony(t, pc, hdr)})
			check("JSON "+s.param, r)
			if len(pc.json) > 0 {
				// A ceremony's answer is refused: its session (ceremony
				// cookie) is not there, or the assertion does not verify.
				assert.GreaterOrEqual(t, r.status, 400, "%s: %s", pc.path, r.body)
			}
		}
		// The query parameters: the account a ceremony is for, a new
		// passkey's name. A number there finds no account or is dropped.
		for name := range query {
			q := cloneForm(query)
			q.Set(name, next())
			r := sw.do(t, rreq{method: "POST", path: base + "?" + q.Encode(), body: b, ctype: "application/json", header: sw.withCeremony(t, pc, hdr)})
			check("query "+name, r)
		}
		return
	}
	type mut struct {
		param string
		form  url.Values
		query string
	}
	form := cloneForm(pc.form)
	if form.Has("csrf_token") {
		form.Set("csrf_token", csrf)
	}
	var muts []mut
	for name, vs := range form {
		c := cloneForm(form)
		delete(c, name)
		c[next()] = vs
		muts = append(muts, mut{form: c})
		c = cloneForm(form)
		c.Set(name, next())
		muts = append(muts, mut{param: name, form: c})
		muts = append(muts, mut{param: name, form: form, query: url.Values{name: {next()}}.Encode()})
	}
	for _, m := range muts {
		path := pc.path
		if m.query != "" {
			path += "?" + m.query
		}
		r := sw.do(t, rreq{method: "POST", path: path, body: []byte(m.form.Encode()), ctype: "application/x-www-form-urlencoded",
			header: map[string]string{"Cookie": cookies}})
		check(m.param, r)
		if assert.Equal(t, http.StatusBadRequest, r.status, "%s: a card number in %q: %s", pc.path, m.param, r.body) {
			assert.Equal(t, "invalid_request", r.json["error"])
			desc, _ := r.json["error_description"].(string)
			if m.param != "" {
				assert.True(t, strings.HasPrefix(desc, m.param+" "), "%q names %q", desc, m.param)
			}
		}
	}
}

// pageSession is a browser signed in to the pages with its second factor:
// its cookies and the session's CSRF token.
type pageSession struct {
	cookies, csrf string
}

// pageWorld is what the pages need: a team admin (the console) and a payer
// (consent, approvals, their mandates) of A signed in, A's tenant id and
// an unused invitation's path.
type pageWorld struct {
	admin, payer       pageSession
	payerID            string
	payerMandate       string // a mandate of A for the payer, waiting for the payer's consent
	tenant, invitation string
}

// signInPages invites a team admin and a payer of A, follows each
// invitation, signs in and enrols TOTP as a browser does.
func signInPages(t *testing.T, n *apptest.Node, w *world) *pageWorld {
	r := n.Do(t, apptest.Req{Method: "GET", Path: "/v1/tenant", Key: w.sk})
	require.Equal(t, 200, r.Status, string(r.Body))
	pw := &pageWorld{tenant: r.JSON["id"].(string)}
	invite := func(path, email string, body map[string]any) (string, string) {
		body["email"] = email
		r := n.Do(t, apptest.Req{Method: "POST", Path: path, Key: w.sk, Body: body})
		require.Equal(t, http.StatusCreated, r.Status, string(r.Body))
		u, err := url.Parse(r.JSON["invitation"].(map[string]any)["url"].(string))
		require.NoError(t, err)
		id, _ := r.JSON["id"].(string)
		return u.Path, id // the link names the public URL; the node listens elsewhere
	}
	enrol := func(inv, email, home string) pageSession {
		jar, err := cookiejar.New(nil)
		require.NoError(t, err)
		c := &http.Client{Jar: jar, Timeout: 30 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		do := func(method, path string, form url.Values) (int, string, string) {
			var body io.Reader
			if form != nil {
				body = strings.NewReader(form.Encode())
			}
			req, err := http.NewRequest(method, n.URL+path, body)
			require.NoError(t, err)
			if form != nil {
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			}
			resp, err := c.Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			raw, err := io.ReadAll(resp.Body)
			require.NoError(t, err)
			return resp.StatusCode, string(raw), resp.Header.Get("Location")
		}
		csrfOf := func(page string) string {
			m := csrfField.FindStringSubmatch(page)
			require.Len(t, m, 2, "no CSRF token in %s", page)
			return html.UnescapeString(m[1])
		}
		post := func(from, path string, form url.Values) (int, string, string) {
			st, page, _ := do("GET", from, nil)
			require.Equal(t, 200, st, page)
			form.Set("csrf_token", csrfOf(page))
			return do("POST", path, form)
		}
		const password = "violet-harbour-tangent-42"
		st, page, _ := post(inv, inv, url.Values{"password": {password}, "password_again": {password}})
		require.Equal(t, http.StatusSeeOther, st, page)
		st, page, loc := post("/login?tenant="+pw.tenant, "/login", url.Values{"tenant": {pw.tenant}, "email": {email}, "password": {password}})
		require.Equal(t, http.StatusSeeOther, st, page)
		require.True(t, strings.HasPrefix(loc, "/mfa/setup"), loc)
		st, page, _ = do("GET", loc, nil)
		require.Equal(t, 200, st, page)
		m := regexp.MustCompile(`<code class="secret">([A-Z2-7]+)</code>`).FindStringSubmatch(page)
		require.Len(t, m, 2, page)
		code, err := totp.GenerateCode(m[1], time.Now())
		require.NoError(t, err)
		st, page, _ = do("POST", "/mfa/setup", url.Values{"csrf_token": {csrfOf(page)}, "code": {code}})
		require.Equal(t, 200, st, page)
		st, page, _ = do("GET", home, nil)
		require.Equal(t, 200, st, page)
		u, err := url.Parse(n.URL)
		require.NoError(t, err)
		var cs []string
		for _, ck := range jar.Cookies(u) {
			cs = append(cs, ck.Name+"="+ck.Value)
		}
		return pageSession{cookies: strings.Join(cs, "; "), csrf: csrfOf(page)}
	}
	inv, _ := invite("/v1/team_invitations", "pan-admin@example.com", map[string]any{"name": "Dana Dev", "role": "admin"})
	pw.admin = enrol(inv, "pan-admin@example.com", "/console")
	inv, pw.payerID = invite("/v1/customers", "pan-payer@example.com", map[string]any{"name": "Pat Payer"})
	pw.payer = enrol(inv, "pan-payer@example.com", "/me")
	r = n.Do(t, apptest.Req{Method: "POST", Path: "/v1/mandates", Key: w.sk, Body: map[string]any{
		"agent": w.a["agent"], "payer": pw.payerID, "currency": "USD", "budget": 1000, "payment_methods": []string{w.card}}})
	require.Equal(t, 201, r.Status, string(r.Body))
	pw.payerMandate = r.JSON["id"].(string)
	pw.invitation, _ = invite("/v1/team_invitations", "pan-invitee@example.com", map[string]any{"name": "Ivy Invitee", "role": "developer"})
	return pw
}

// withCeremony runs the page's options step, when it has one, and returns
// the headers with the ceremony cookie it set (each ceremony is used once).
func (sw *sweep) withCeremony(t *testing.T, pc pageCase, hdr map[string]string) map[string]string {
	if pc.ceremony == "" {
		return hdr
	}
	r := sw.do(t, rreq{method: "POST", path: pc.ceremony, body: []byte("{}"), ctype: "application/json", header: hdr})
	require.Equal(t, 200, r.status, "%s: %s", pc.ceremony, r.body)
	out := map[string]string{}
	for k, v := range hdr {
		out[k] = v
	}
	for _, c := range (&http.Response{Header: r.header}).Cookies() {
		out["Cookie"] += "; " + c.Name + "=" + c.Value
	}
	return out
}

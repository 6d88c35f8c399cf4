package main

// The human-present part of the demo: a payer grants a mandate to an
// agent on the consent page, the standard way (PAR + PKCE + RAR, the
// authorization code grant). The demo prints the URLs a person opens and
// waits for them; with Auto, it plays the person itself over HTTP (choose
// a password, turn on TOTP, allow with a recovery code).

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
)

const personPassword = "violet-harbour-tangent-42"

// personStory is the agent's side of a consent, and, in auto mode, the
// person's side too.
type personStory struct {
	*story
	auto     bool
	email    string
	payer    string
	invite   string
	agentID  string
	secret   string
	callback string
	codes    chan url.Values
	token    string
	redeem   url.Values // the code's redemption, replayed at the end
}

func (s *story) person(auto bool) *personStory {
	return &personStory{story: s, auto: auto, email: "pat+" + newKey()[5:13] + "@example.com", codes: make(chan url.Values, 1)}
}

// invitePayer creates the payer and its invitation.
func (p *personStory) invitePayer(ctx context.Context) error {
	var c struct {
		ID         string `json:"id"`
		Invitation struct {
			URL string `json:"url"`
		} `json:"invitation"`
	}
	if err := p.c.mustCall(ctx, http.MethodPost, "/v1/customers", bearer(p.sk), map[string]any{"email": p.email, "name": "Pat"}, &c); err != nil {
		return err
	}
	u, err := url.Parse(c.Invitation.URL)
	if err != nil || c.ID == "" {
		return p.failf("POST /v1/customers gave no payer id or invitation link")
	}
	p.payer, p.invite = c.ID, p.c.base+u.Path
	p.ok("payer %s (%s), invited", p.payer, p.email)
	return nil
}

// registerAgent registers an agent of the authorization code grant whose
// redirect URI is a listener of this demo.
func (p *personStory) registerAgent(ctx context.Context) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	p.callback = "http://" + ln.Addr().String() + "/callback"
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case p.codes <- r.URL.Query():
		default:
		}
		_, _ = io.WriteString(w, "<!doctype html><title>agent</title><p>Back at the agent: you can close this tab.</p>")
	})}
	go func() { _ = srv.Serve(ln) }()
	go func() { <-ctx.Done(); _ = srv.Close() }()
	var a agent
	err = p.c.mustCall(ctx, http.MethodPost, "/v1/agents", bearer(p.sk), map[string]any{
		"name": "Shopping Agent", "token_endpoint_auth_method": "client_secret_basic",
		"grant_types": []string{"authorization_code"}, "redirect_uris": []string{p.callback}, "scopes": []string{"charges:write"},
	}, &a)
	if err != nil {
		return err
	}
	p.agentID, p.secret = a.ID, a.ClientSecret
	p.ok("agent %s may ask payers for mandates; it gets its answers at %s", a.ID, p.callback)
	return nil
}

// consent pushes the request and has the person answer it.
func (p *personStory) consent(ctx context.Context) error {
	v := make([]byte, 32)
	_, _ = rand.Read(v)
	verifier := base64.RawURLEncoding.EncodeToString(v)
	sum := sha256.Sum256([]byte(verifier))
	details, _ := json.Marshal([]map[string]any{{"type": "payment_mandate", "currency": currency, "budget": budget,
		"max_amount_per_charge": perChargeCap, "approval_threshold": approvalThreshold, "payment_methods": []string{p.card.ID},
		"allowed_merchants": []string{p.books.ID}, "description": "books for Pat's reading group"}})
	state := newKey()
	st, body, err := p.c.formJSON(ctx, "/oauth2/par", p.agentID, p.secret, url.Values{
		"client_id": {p.agentID}, "response_type": {"code"}, "redirect_uri": {p.callback}, "state": {state},
		"scope": {"charges:write"}, "code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])},
		"code_challenge_method": {"S256"}, "authorization_details": {string(details)}})
	if err != nil {
		return err
	}
	uri, _ := body["request_uri"].(string)
	if st != http.StatusCreated || uri == "" {
		return p.failf("POST /oauth2/par: HTTP %d %v", st, body)
	}
	p.ok("the agent pushed its request (PAR, PKCE S256, a payment_mandate of %s): %s, usable once", usd(budget), uri)
	authorize := p.c.base + "/oauth2/authorize?" + url.Values{"client_id": {p.agentID}, "request_uri": {uri}}.Encode()
	if p.auto {
		if err := p.playPerson(ctx, authorize); err != nil {
			return err
		}
	} else {
		p.say("Now be the payer, in a browser (you have 90 seconds to start):")
		p.say("  1. open %s, choose a password, sign in and turn on two-step verification;", p.invite)
		p.say("  2. open %s and allow the agent with a code from your app.", authorize)
		p.say("Waiting for your answer…")
	}
	var back url.Values
	select {
	case back = <-p.codes:
	case <-ctx.Done():
		return errors.New("no answer came back to the agent in time")
	}
	switch {
	case back.Get("error") != "":
		return p.failf("the payer's answer: %s (%s)", back.Get("error"), back.Get("error_description"))
	case back.Get("state") != state:
		return p.failf("the answer carries state %q, not the agent's", back.Get("state"))
	}
	p.ok("back at the agent: a code, the agent's state and iss=%s (RFC 9207)", back.Get("iss"))
	st, tr, err := p.c.form(ctx, "/oauth2/token", p.agentID, p.secret, url.Values{"grant_type": {"authorization_code"},
		"code": {back.Get("code")}, "redirect_uri": {p.callback}, "code_verifier": {verifier}})
	if err != nil {
		return err
	}
	if st != http.StatusOK || tr.AccessToken == "" {
		return p.failf("redeeming the code: HTTP %d %s %s", st, tr.Error, tr.ErrorDescription)
	}
	p.token = tr.AccessToken
	p.ok("the code (valid 60 s, once) and the PKCE verifier bought an access token carrying %s", compact(tr.AuthorizationDetails))
	p.redeem = url.Values{"grant_type": {"authorization_code"}, "code": {back.Get("code")}, "redirect_uri": {p.callback},
		"code_verifier": {verifier}}
	return nil
}

var (
	csrfRE     = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)
	totpRE     = regexp.MustCompile(`<code class="secret">([A-Z2-7]+)</code>`)
	recoveryRE = regexp.MustCompile(`<code>([a-z0-9]{5}-[a-z0-9]{5})</code>`)
)

// playPerson is the payer, over HTTP as a browser would be: the
// invitation, sign-in, TOTP, then the consent page, allowed with a
// recovery code (the TOTP code of the enrolment's 30-second step is spent).
func (p *personStory) playPerson(ctx context.Context, authorize string) error {
	jar, _ := cookiejar.New(nil)
	b := &http.Client{Jar: jar, Timeout: 30 * time.Second, CheckRedirect: func(r *http.Request, _ []*http.Request) error {
		if !strings.HasPrefix(r.URL.String(), p.c.base) {
			return http.ErrUseLastResponse // the agent's redirect URI: delivered below
		}
		return nil
	}}
	type answer struct {
		body, location string
		status         int
		at             *url.URL // the URL answered, after redirects on this site
	}
	send := func(req *http.Request) (*answer, error) {
		resp, err := b.Do(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return &answer{body: string(raw), location: resp.Header.Get("Location"), status: resp.StatusCode, at: resp.Request.URL}, err
	}
	get := func(u string) (*answer, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return nil, err
		}
		return send(req)
	}
	post := func(from *answer, u string, f url.Values) (*answer, error) {
		m := csrfRE.FindStringSubmatch(from.body)
		if m == nil {
			return nil, p.failf("no form on the page before %s", u)
		}
		f.Set("csrf_token", html.UnescapeString(m[1]))
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(f.Encode()))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		return send(req)
	}
	a, err := get(p.invite)
	if err != nil {
		return err
	}
	if a, err = post(a, p.invite, url.Values{"password": {personPassword}, "password_again": {personPassword}}); err != nil {
		return err
	}
	if a, err = post(a, a.at.String(), url.Values{"tenant": {a.at.Query().Get("tenant")}, "email": {p.email},
		"password": {personPassword}, "return": {"/me"}}); err != nil {
		return err
	}
	m := totpRE.FindStringSubmatch(a.body)
	if m == nil {
		return p.failf("signing in did not lead to two-step verification's setup (at %s)", a.at.Path)
	}
	code, err := totp.GenerateCodeCustom(m[1], time.Now(), totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		return err
	}
	if a, err = post(a, p.c.base+"/mfa/setup", url.Values{"code": {code}, "return": {"/me"}}); err != nil {
		return err
	}
	recovery := recoveryRE.FindAllStringSubmatch(a.body, -1)
	if len(recovery) == 0 {
		return p.failf("turning on TOTP showed no recovery codes")
	}
	p.ok("Pat chose a password, signed in and turned on TOTP (ten recovery codes shown once)")
	if a, err = get(authorize); err != nil {
		return err
	}
	if !strings.Contains(a.at.Path, "/consent/") {
		return p.failf("/oauth2/authorize led to %s, not the consent page", a.at.Path)
	}
	for _, li := range regexp.MustCompile(`<li>([^<]+)</li>`).FindAllStringSubmatch(a.body, -1) {
		p.say("  the consent page says: %s", html.UnescapeString(li[1]))
	}
	if a, err = post(a, a.at.String(), url.Values{"decision": {"approve"}, "code": {recovery[0][1]}}); err != nil {
		return err
	}
	if a.status != http.StatusSeeOther || !strings.HasPrefix(a.location, p.callback) {
		return p.failf("allowing answered HTTP %d, not a redirect to the agent", a.status)
	}
	p.ok("Pat allowed it with a one-time code; the browser goes back to the agent")
	_, err = get(a.location)
	return err
}

// spend: the agent spends within what Pat allowed; then its code, replayed,
// is refused and revokes the token.
func (p *personStory) spend(ctx context.Context) error {
	c, err := p.expectAllowed(ctx, "the shopping agent", p.token, newKey(), chargeRequest{Amount: 2000, Currency: currency,
		PaymentMethod: p.card.ID, Merchant: p.books.ID, Description: "two paperbacks for the reading group"})
	if err != nil {
		return err
	}
	p.ok("charge %s of %s at %s, on the mandate Pat granted (%s)", c.ID, usd(c.Amount), p.books.DisplayName, c.Mandate)
	st, tr, err := p.c.form(ctx, "/oauth2/token", p.agentID, p.secret, p.redeem)
	if err != nil {
		return err
	}
	if st != http.StatusBadRequest || tr.Error != "invalid_grant" {
		return p.failf("a second redemption of the code: HTTP %d %s", st, tr.Error)
	}
	p.ok("the same code again: invalid_grant (a code works once)")
	if _, err := p.expectRefused(ctx, "the shopping agent", p.token, chargeRequest{Amount: 1000, Currency: currency,
		PaymentMethod: p.card.ID, Merchant: p.books.ID, Description: "one more paperback"}, http.StatusForbidden, "token_revoked", ""); err != nil {
		return err
	}
	p.ok("and the token it bought is revoked: the next charge is a permission_error token_revoked")
	return nil
}

// formJSON posts a form with client_secret_basic and decodes any JSON answer.
func (c *client) formJSON(ctx context.Context, path, clientID, secret string, v url.Values) (int, map[string]any, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+path, strings.NewReader(v.Encode()))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(clientID), url.QueryEscape(secret))
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&out); err != nil {
		return resp.StatusCode, nil, fmt.Errorf("POST %s: decoding the answer: %w", path, err)
	}
	return resp.StatusCode, out, nil
}

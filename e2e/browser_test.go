package e2e

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/accounts"
	"github.com/perfectpay/perfectpay/app"
	"github.com/perfectpay/perfectpay/app/apptest"
	"github.com/perfectpay/perfectpay/authz"
	"github.com/perfectpay/perfectpay/internal/ids"
)

// screenshotDir is where the browser test leaves its screenshots (git
// ignores it; the README links them).
const screenshotDir = "../test-output/browser"

// browserClock is the people service's clock: each TOTP code is typed in
// a 30-second step of its own, without waiting for the wall clock.
type browserClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *browserClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

// code is the TOTP code of secret now; the clock then moves to the next
// step, since a step's code works once.
func (c *browserClock) code(t *testing.T, secret string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, err := totp.GenerateCodeCustom(secret, c.t, totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	require.NoError(t, err)
	c.t = c.t.Add(30 * time.Second)
	return s
}

// chromium finds the browser: a test without one fails under CI and is
// skipped otherwise.
func chromium(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("Chromium is missing: install Debian's chromium package (.ci/run does)")
	}
	t.Skip("Chromium is missing (install Debian's chromium package); CI fails instead of skipping")
	return ""
}

// bwForm posts a form with HTTP Basic client authentication.
func bwForm(t *testing.T, base, path string, basic [2]string, f url.Values) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, base+path, strings.NewReader(f.Encode()))
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

// TestBrowserPeopleJourney walks a person through the product in headless
// Chromium: an agent starts the authorization code grant (PAR + PKCE +
// RAR) → the payer signs in with password + TOTP → the consent page →
// allow → the agent exchanges the code → a charge succeeds → a charge
// above the threshold is challenged → the payer approves on the step-up
// page → the retried charge succeeds → a CIBA request is approved on the
// consent page → the payer revokes on their page → the next charge is
// refused. Screenshots of the consent, step-up, payer and console pages go
// to test-output/browser.
func TestBrowserPeopleJourney(t *testing.T) {
	exe := chromium(t)
	clock := &browserClock{t: time.Now().UTC()}
	n := apptest.New(t, "postgres", func(c *app.Config) { c.People.PasswordTime, c.People.PasswordMemoryKiB = 1, 8*1024 })
	n.App.People.SetClock(clock.now)
	n.App.Pages.SetClock(clock.now)
	require.NoError(t, os.MkdirAll(screenshotDir, 0o755))

	// The agent's redirect URI: a page that records what it was sent.
	backs := make(chan url.Values, 4)
	cb := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		backs <- r.URL.Query()
		_, _ = io.WriteString(w, `<!doctype html><title>agent</title><p id="back">back at the agent</p>`)
	}))
	t.Cleanup(cb.Close)
	callback := cb.URL + "/callback"

	// The tenant: a card, a merchant, an agent of each grant, a payer.
	b, key := n.Tenant(t)
	tenant := b.Tenant.ID
	r := n.Do(t, apptest.Req{Method: "POST", Path: "/v1/tokens", Key: apptest.Key(b, accounts.KindPublishable, accounts.ModeTest),
		Body: map[string]any{"card": map[string]any{"number": "4242424242424242", "exp_month": 12, "exp_year": 2030, "cvc": "123"}}})
	require.Equal(t, 200, r.Status, string(r.Body))
	card := r.JSON["id"].(string)
	_, mk := n.Tenant(t)
	r = n.Do(t, apptest.Req{Method: "POST", Path: "/v1/merchants", Key: mk, Body: map[string]any{
		"display_name": "Acme Books", "mcc": "5942", "country": "US", "domains": []string{"acmebooks.example"}}})
	require.Contains(t, []int{200, 201}, r.Status, string(r.Body))
	merchant := r.JSON["id"].(string)
	agent := func(name string, body map[string]any) (string, string) {
		body["name"], body["token_endpoint_auth_method"], body["scopes"] = name, "client_secret_basic", []string{"charges:write"}
		r := n.Do(t, apptest.Req{Method: "POST", Path: "/v1/agents", Key: key, Body: body})
		require.Equal(t, 201, r.Status, string(r.Body))
		return r.JSON["id"].(string), r.JSON["client_secret"].(string)
	}
	shopID, shopSecret := agent("Shopping Agent", map[string]any{"grant_types": []string{authz.GrantAuthorizationCode}, "redirect_uris": []string{callback}})
	errandID, errandSecret := agent("Errand Agent", map[string]any{"grant_types": []string{authz.GrantCIBA}})
	r = n.Do(t, apptest.Req{Method: "POST", Path: "/v1/customers", Key: key, Body: map[string]any{"email": "pat@example.com", "name": "Pat Payer"}})
	require.Equal(t, 201, r.Status, string(r.Body))
	payer := r.JSON["id"].(string)
	inv, err := url.Parse(r.JSON["invitation"].(map[string]any)["url"].(string))
	require.NoError(t, err)
	terms := fmt.Sprintf(`[{"type":"payment_mandate","currency":"USD","budget":20000,"max_amount_per_charge":5000,
		"approval_threshold":3000,"payment_methods":[%q],"allowed_merchants":[%q],"valid_until":"2026-12-31T23:59:00Z",
		"description":"books for the reading group"}]`, card, merchant)
	charge := func(tok string, amount int64, extra map[string]any, idem ...string) *apptest.Response {
		key := ids.New("idem")
		if len(idem) > 0 {
			key = idem[0]
		}
		body := map[string]any{"amount": amount, "currency": "USD", "payment_method": card, "merchant": merchant, "description": "paperbacks"}
		for k, v := range extra {
			body[k] = v
		}
		return n.Do(t, apptest.Req{Method: "POST", Path: "/v1/charges", Key: tok, Body: body,
			Header: map[string]string{"Idempotency-Key": key}})
	}

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(exe), chromedp.NoSandbox,
		chromedp.Flag("disable-gpu", true), chromedp.WindowSize(412, 915)) // a phone's width
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancel)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(cancel)
	ctx, cancel = context.WithTimeout(ctx, 4*time.Minute)
	t.Cleanup(cancel)
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate("about:blank")), "start Chromium")
	run := func(what string, acts ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		sctx, cancel := context.WithTimeout(ctx, 45*time.Second)
		defer cancel()
		if err := chromedp.Do(sctx, acts...); err != nil {
			loc, _ := chromedp.Run(ctx, chromedp.Location())
			body, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("body")))
			t.Fatalf("%s: %v (at %s: %.600s)", what, err, loc, body)
		}
	}
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		require.NoError(t, err, sel)
		return s
	}
	shot := func(name string) {
		t.Helper()
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		require.NoError(t, err, "screenshot "+name)
		require.NoError(t, os.WriteFile(filepath.Join(screenshotDir, name+".png"), png, 0o644))
	}
	var secret string

	// The payer accepts the invitation, signs in and turns on TOTP.
	const password = "violet-harbour-tangent-42"
	run("invitation", chromedp.Navigate(n.URL+inv.Path), chromedp.WaitVisible(chromedp.CSS("#password_again")),
		chromedp.SendKeys(chromedp.CSS("#password"), password), chromedp.SendKeys(chromedp.CSS("#password_again"), password),
		chromedp.Click(chromedp.CSS(`button[type=submit]`)), chromedp.WaitVisible(chromedp.CSS("#email")),
		chromedp.SendKeys(chromedp.CSS("#email"), "pat@example.com"), chromedp.SendKeys(chromedp.CSS("#password"), password),
		chromedp.Click(chromedp.CSS(`form[action="/login"] button[type=submit]`)), chromedp.WaitVisible(chromedp.CSS("code.secret")))
	secret = text("code.secret")
	run("totp setup", chromedp.SendKeys(chromedp.CSS("#code"), clock.code(t, secret)), chromedp.Click(chromedp.CSS(`form[action="/mfa/setup"] button`)),
		chromedp.WaitVisible(chromedp.CSS(`ul.codes`)))
	run("sign out", chromedp.Navigate(n.URL+"/me"), chromedp.WaitVisible(chromedp.CSS(`form[action="/logout"] button`)),
		chromedp.Click(chromedp.CSS(`form[action="/logout"] button`)), chromedp.WaitVisible(chromedp.CSS("#password")))

	// The agent pushes its request (PAR + PKCE + RAR) and sends the payer
	// to /oauth2/authorize; the payer signs in with password + TOTP.
	v := make([]byte, 32)
	_, _ = rand.Read(v)
	verifier := base64.RawURLEncoding.EncodeToString(v)
	sum := sha256.Sum256([]byte(verifier))
	st, body := bwForm(t, n.URL, authz.PathPAR, [2]string{shopID, shopSecret}, url.Values{
		"client_id": {shopID}, "response_type": {"code"}, "redirect_uri": {callback}, "state": {"journey-state-1"},
		"scope": {"charges:write"}, "code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])},
		"code_challenge_method": {"S256"}, "authorization_details": {terms}})
	require.Equal(t, 201, st, body)
	authorize := n.URL + authz.PathAuthorize + "?" + url.Values{"client_id": {shopID}, "request_uri": {body["request_uri"].(string)}}.Encode()
	run("sign in", chromedp.Navigate(authorize), chromedp.WaitVisible(chromedp.CSS("#tenant")),
		chromedp.SendKeys(chromedp.CSS("#tenant"), tenant), chromedp.SendKeys(chromedp.CSS("#email"), "pat@example.com"), chromedp.SendKeys(chromedp.CSS("#password"), password),
		chromedp.Click(chromedp.CSS(`form[action="/login"] button[type=submit]`)), chromedp.WaitVisible(chromedp.CSS(`form[action="/login/mfa"]`)),
		chromedp.SendKeys(chromedp.CSS("#code"), clock.code(t, secret)), chromedp.Click(chromedp.CSS(`form[action="/login/mfa"] button`)),
		chromedp.WaitVisible(chromedp.CSS(`ul.terms`)))
	terms1 := text(`ul.terms`)
	require.Contains(t, terms1, "Shopping Agent may spend up to 200.00 USD in total.")
	shot("consent")
	run("allow", chromedp.SendKeys(chromedp.CSS("#code"), clock.code(t, secret)), chromedp.Click(chromedp.CSS(`button[value=approve]`)), chromedp.WaitVisible(chromedp.CSS("#back")))
	back := <-backs
	require.Equal(t, "journey-state-1", back.Get("state"))
	require.Equal(t, n.App.Issuer.Options().Issuer, back.Get("iss"))

	// The agent exchanges the code and charges.
	st, body = bwForm(t, n.URL, authz.PathToken, [2]string{shopID, shopSecret}, url.Values{"grant_type": {"authorization_code"},
		"code": {back.Get("code")}, "redirect_uri": {callback}, "code_verifier": {verifier}})
	require.Equal(t, 200, st, body)
	tok := body["access_token"].(string)
	granted := body["authorization_details"].([]any)[0].(map[string]any)
	mandateID := granted["mandate_id"].(string)
	r = charge(tok, 2000, nil)
	require.Equal(t, 200, r.Status, string(r.Body))

	// Above the threshold: challenged, approved on the step-up page, retried.
	stepUp := ids.New("idem")
	r = charge(tok, 4000, nil, stepUp)
	require.Equal(t, 402, r.Status, string(r.Body))
	appr := r.JSON["approval"].(map[string]any)
	run("step-up", chromedp.Navigate(n.URL+"/approvals/"+appr["id"].(string)), chromedp.WaitVisible(chromedp.CSS(`button[value=approve]`)))
	shot("step-up")
	run("approve", chromedp.SendKeys(chromedp.CSS("#code"), clock.code(t, secret)), chromedp.Click(chromedp.CSS(`button[value=approve]`)),
		chromedp.WaitVisible(chromedp.CSS(`p.notice`)))
	r = charge(tok, 4000, map[string]any{"approval": appr["id"]}, stepUp)
	require.Equal(t, 200, r.Status, string(r.Body))

	// CIBA: the errand agent asks by the backchannel; the payer allows it.
	st, body = bwForm(t, n.URL, authz.PathBCAuthorize, [2]string{errandID, errandSecret}, url.Values{
		"login_hint": {payer}, "binding_message": {"K7 blue"}, "authorization_details": {terms}})
	require.Equal(t, 200, st, body)
	reqID := body["auth_req_id"].(string)
	run("ciba consent", chromedp.Navigate(n.URL+authz.PathConsent+"/"+reqID), chromedp.WaitVisible(chromedp.CSS(`button[value=approve]`)),
		chromedp.SendKeys(chromedp.CSS("#code"), clock.code(t, secret)), chromedp.Click(chromedp.CSS(`button[value=approve]`)), chromedp.WaitVisible(chromedp.CSS(`p.notice`)))
	require.Eventually(t, func() bool {
		st, body = bwForm(t, n.URL, authz.PathToken, [2]string{errandID, errandSecret},
			url.Values{"grant_type": {authz.GrantCIBA}, "auth_req_id": {reqID}})
		return st == 200
	}, time.Minute, authz.CIBAInterval+time.Second)
	r = charge(body["access_token"].(string), 1500, nil)
	require.Equal(t, 200, r.Status, string(r.Body))

	// The payer's page: revoke the first mandate; its next charge is refused.
	revoke := `form[action="/me/mandates/` + mandateID + `/revoke"] button`
	run("payer page", chromedp.Navigate(n.URL+"/me"), chromedp.WaitVisible(chromedp.CSS(revoke)))
	shot("payer")
	run("revoke", chromedp.Click(chromedp.CSS(revoke)), chromedp.WaitVisible(chromedp.CSS(`main`)))
	require.Eventually(t, func() bool {
		loc, err := chromedp.Run(ctx, chromedp.Location())
		return err == nil && strings.Contains(loc, "revoked=1")
	}, 30*time.Second, 100*time.Millisecond, "back on the payer's page after revoking")
	r = charge(tok, 1000, nil)
	require.Equal(t, 403, r.Status, string(r.Body))

	// The console, signed in as the tenant's owner.
	r = n.Do(t, apptest.Req{Method: "POST", Path: "/v1/team_invitations", Key: key,
		Body: map[string]any{"email": "olive@example.com", "name": "Olive Owner", "role": "owner"}})
	require.Equal(t, 201, r.Status, string(r.Body))
	inv, err = url.Parse(r.JSON["invitation"].(map[string]any)["url"].(string))
	require.NoError(t, err)
	var teamSecret string
	run("sign out payer", chromedp.Navigate(n.URL+"/me"), chromedp.WaitVisible(chromedp.CSS(`form[action="/logout"] button`)),
		chromedp.Click(chromedp.CSS(`form[action="/logout"] button`)), chromedp.WaitVisible(chromedp.CSS("#password")))
	run("team invitation", chromedp.Navigate(n.URL+inv.Path), chromedp.WaitVisible(chromedp.CSS("#password_again")),
		chromedp.SendKeys(chromedp.CSS("#password"), password), chromedp.SendKeys(chromedp.CSS("#password_again"), password),
		chromedp.Click(chromedp.CSS(`button[type=submit]`)), chromedp.WaitVisible(chromedp.CSS("#email")),
		chromedp.SendKeys(chromedp.CSS("#email"), "olive@example.com"), chromedp.SendKeys(chromedp.CSS("#password"), password),
		chromedp.Click(chromedp.CSS(`form[action="/login"] button[type=submit]`)), chromedp.WaitVisible(chromedp.CSS("code.secret")))
	teamSecret = text("code.secret")
	run("team totp", chromedp.SendKeys(chromedp.CSS("#code"), clock.code(t, teamSecret)), chromedp.Click(chromedp.CSS(`form[action="/mfa/setup"] button`)),
		chromedp.WaitVisible(chromedp.CSS(`ul.codes`)), chromedp.Navigate(n.URL+"/console"), chromedp.WaitVisible(chromedp.CSS(`main h1`)))
	shot("console")
	for _, name := range []string{"consent", "step-up", "payer", "console"} {
		fi, err := os.Stat(filepath.Join(screenshotDir, name+".png"))
		require.NoError(t, err)
		require.Positive(t, fi.Size())
	}
}

package e2e

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/accounts"
	"github.com/perfectpay/perfectpay/app"
	"github.com/perfectpay/perfectpay/app/apptest"
	"github.com/perfectpay/perfectpay/authz"
	"github.com/perfectpay/perfectpay/internal/ids"
)

// TestBrowserAuditorTimeline: an auditor signs in (password + TOTP) in
// headless Chromium, follows the console's link to a mandate and reads
// its delegation tree, its timeline and a refusal explained in plain
// words, then narrows the timeline to one agent with the filter form.
// The page at a phone's width goes to test-output/browser as
// auditor-timeline.png.
func TestBrowserAuditorTimeline(t *testing.T) {
	exe := chromium(t)
	clock := &browserClock{t: time.Now().UTC()}
	n := apptest.New(t, "postgres", func(c *app.Config) { c.People.PasswordTime, c.People.PasswordMemoryKiB = 1, 8*1024 })
	n.App.People.SetClock(clock.now)
	n.App.Pages.SetClock(clock.now)
	require.NoError(t, os.MkdirAll(screenshotDir, 0o755))

	// A mandate through the API: two decisions, one refused, and a child
	// mandate delegated to a second agent that charges once.
	b, key := n.Tenant(t)
	r := n.Do(t, apptest.Req{Method: "POST", Path: "/v1/tokens", Key: apptest.Key(b, accounts.KindPublishable, accounts.ModeTest),
		Body: map[string]any{"card": map[string]any{"number": "4242424242424242", "exp_month": 12, "exp_year": 2040, "cvc": "123"}}})
	require.Equal(t, 200, r.Status, string(r.Body))
	card := r.JSON["id"].(string)
	_, mk := n.Tenant(t)
	r = n.Do(t, apptest.Req{Method: "POST", Path: "/v1/merchants", Key: mk, Body: map[string]any{
		"display_name": "Acme Books", "mcc": "5942", "country": "US", "domains": []string{"acmebooks.example"}}})
	require.Contains(t, []int{200, 201}, r.Status, string(r.Body))
	merchant := r.JSON["id"].(string)
	agent := func(name string, grants ...string) (string, string) {
		r := n.Do(t, apptest.Req{Method: "POST", Path: "/v1/agents", Key: key, Body: map[string]any{"name": name,
			"token_endpoint_auth_method": "client_secret_basic", "scopes": []string{"charges:write"}, "grant_types": grants}})
		require.Equal(t, 201, r.Status, string(r.Body))
		return r.JSON["id"].(string), r.JSON["client_secret"].(string)
	}
	shopID, shopSecret := agent("Shopping Agent", authz.GrantClientCredentials)
	errandID, errandSecret := agent("Errand Agent", authz.GrantClientCredentials, authz.GrantTokenExchange)
	r = n.Do(t, apptest.Req{Method: "POST", Path: "/v1/customers", Key: key, Body: map[string]any{"email": "pat@example.com", "name": "Pat Payer"}})
	require.Equal(t, 201, r.Status, string(r.Body))
	payer := r.JSON["id"].(string)
	r = n.Do(t, apptest.Req{Method: "POST", Path: "/v1/mandates", Key: key, Body: map[string]any{
		"agent": shopID, "payer": payer, "currency": "USD", "budget": 20000, "max_amount_per_charge": 5000,
		"payment_methods": []string{card}, "allowed_merchants": []string{merchant}}})
	require.Equal(t, 201, r.Status, string(r.Body))
	mandateID := r.JSON["id"].(string)
	_, err := n.App.Mandates.Approve(context.Background(), b.Tenant.ID, mandateID) // the payer's consent
	require.NoError(t, err)
	st, body := bwForm(t, n.URL, authz.PathToken, [2]string{shopID, shopSecret}, url.Values{"grant_type": {"client_credentials"},
		"scope": {"charges:write"}, "authorization_details": {fmt.Sprintf(`[{"type":"payment_mandate","mandate_id":%q}]`, mandateID)}})
	require.Equal(t, 200, st, body)
	tok := body["access_token"].(string)
	charge := func(tok string, amount int64) int {
		return n.Do(t, apptest.Req{Method: "POST", Path: "/v1/charges", Key: tok, Header: map[string]string{"Idempotency-Key": ids.New("idem")},
			Body: map[string]any{"amount": amount, "currency": "USD", "payment_method": card, "merchant": merchant, "description": "paperbacks"}}).Status
	}
	require.Equal(t, 200, charge(tok, 2000))
	require.Equal(t, 403, charge(tok, 6000)) // over 50.00 per purchase
	st, body = bwForm(t, n.URL, authz.PathToken, [2]string{errandID, errandSecret}, url.Values{"grant_type": {authz.GrantTokenExchange},
		"subject_token": {tok}, "subject_token_type": {authz.TokenTypeAccessToken}, "scope": {"charges:write"},
		"authorization_details": {fmt.Sprintf(`[{"type":"payment_mandate","currency":"USD","budget":3000,"max_amount_per_charge":1500,"payment_methods":[%q],"allowed_merchants":[%q]}]`, card, merchant)}})
	require.Equal(t, 200, st, body)
	child := body["authorization_details"].([]any)[0].(map[string]any)["mandate_id"].(string)
	require.Equal(t, 200, charge(body["access_token"].(string), 1200))

	// The auditor's invitation.
	r = n.Do(t, apptest.Req{Method: "POST", Path: "/v1/team_invitations", Key: key,
		Body: map[string]any{"email": "ada@example.com", "name": "Ada Auditor", "role": "auditor"}})
	require.Equal(t, 201, r.Status, string(r.Body))
	inv, err := url.Parse(r.JSON["invitation"].(map[string]any)["url"].(string))
	require.NoError(t, err)

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(exe), chromedp.NoSandbox,
		chromedp.Flag("disable-gpu", true), chromedp.WindowSize(412, 915)) // a phone's width
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancel)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(cancel)
	ctx, cancel = context.WithTimeout(ctx, 2*time.Minute)
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

	const password = "violet-harbour-tangent-42"
	run("invitation", chromedp.Navigate(n.URL+inv.Path), chromedp.WaitVisible(chromedp.CSS("#password_again")),
		chromedp.SendKeys(chromedp.CSS("#password"), password), chromedp.SendKeys(chromedp.CSS("#password_again"), password),
		chromedp.Click(chromedp.CSS(`button[type=submit]`)), chromedp.WaitVisible(chromedp.CSS("#email")),
		chromedp.SendKeys(chromedp.CSS("#email"), "ada@example.com"), chromedp.SendKeys(chromedp.CSS("#password"), password),
		chromedp.Click(chromedp.CSS(`form[action="/login"] button[type=submit]`)), chromedp.WaitVisible(chromedp.CSS("code.secret")))
	secret := text("code.secret")
	link := `a[href="/console/mandates/` + mandateID + `"]`
	run("totp and console", chromedp.SendKeys(chromedp.CSS("#code"), clock.code(t, secret)), chromedp.Click(chromedp.CSS(`form[action="/mfa/setup"] button`)),
		chromedp.WaitVisible(chromedp.CSS(`ul.codes`)), chromedp.Navigate(n.URL+"/console"), chromedp.WaitVisible(chromedp.CSS(link)))
	run("mandate page", chromedp.Click(chromedp.CSS(link)), chromedp.WaitVisible(chromedp.CSS(`ul.tree`)))

	tree := text(`ul.tree`)
	assert.Contains(t, tree, "Shopping Agent")
	assert.Contains(t, tree, "Errand Agent")
	assert.Contains(t, tree, child)
	assert.Contains(t, tree, "168.00 USD left of 200.00 USD")
	timeline := text(`ol.timeline`)
	assert.Contains(t, timeline, "Refused because")
	assert.Contains(t, timeline, "50.00")
	assert.Contains(t, timeline, "Policy version")
	assert.Contains(t, timeline, "Input digest")
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(screenshotDir, "auditor-timeline.png"), png, 0o644))

	// The filter form narrows the timeline to the errand agent.
	run("filter", chromedp.SetValue(chromedp.CSS("#t-agent"), errandID), chromedp.Click(chromedp.CSS(`form[method="get"] button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`a[href="/console/mandates/`+mandateID+`"]`)))
	timeline = text(`ol.timeline`)
	assert.NotContains(t, timeline, "Refused because")
	assert.Contains(t, timeline, "Allowed")
	loc, err := chromedp.Run(ctx, chromedp.Location())
	require.NoError(t, err)
	assert.Contains(t, loc, "agent="+errandID)
}

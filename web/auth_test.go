package web_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/app/apptest"
)

func TestSignUpAndSignInWithTOTP(t *testing.T) {
	apptest.EachDriver(t, func(t *testing.T, driver string) {
		n, c := node(t, driver)
		bt, key := n.Tenant(t)
		b := newBrowser(t, n)
		p := signUp(t, n, c, b, key, bt.Tenant.ID, "pat@example.com")

		// Headers of every page.
		lp := b.get("/login")
		assert.Contains(t, lp.Header.Get("Content-Security-Policy"), "default-src 'none'")
		assert.Contains(t, lp.Header.Get("Content-Security-Policy"), "frame-ancestors 'none'")
		assert.Equal(t, "no-referrer", lp.Header.Get("Referrer-Policy"))
		assert.Equal(t, "DENY", lp.Header.Get("X-Frame-Options"))
		assert.NotContains(t, lp.Body, "http://")
		assert.NotContains(t, lp.Body, "https://")

		// Sign in again: a new session id at sign-in and at MFA, cookie flags.
		nb := newBrowser(t, n)
		got := nb.post("/login?tenant="+p.Tenant, "/login", url.Values{"tenant": {p.Tenant}, "email": {p.Email}, "password": {password}})
		require.Equal(t, http.StatusSeeOther, got.Status, got.Body)
		sc := got.Header.Get("Set-Cookie")
		assert.Contains(t, sc, "HttpOnly")
		assert.Contains(t, sc, "SameSite=Lax")
		first := nb.cookie("pp_session")
		require.NotEmpty(t, first)
		// Before the second factor, pages send the user to it.
		got = nb.get("/me")
		assert.Equal(t, http.StatusSeeOther, got.Status)
		assert.True(t, strings.HasPrefix(got.Location, "/login/mfa"), got.Location)
		got = nb.post("/login/mfa?return=/me", "/login/mfa", url.Values{"code": {code(t, p.Secret, c.Now())}, "return": {"/me"}})
		require.Equal(t, http.StatusSeeOther, got.Status, got.Body)
		assert.Equal(t, "/me", got.Location)
		second := nb.cookie("pp_session")
		assert.NotEqual(t, first, second)

		// The id from before MFA no longer works.
		old := newBrowser(t, n)
		u, _ := url.Parse(n.URL)
		old.c.Jar.SetCookies(u, []*http.Cookie{{Name: "pp_session", Value: first, Path: "/"}})
		got = old.get("/me")
		assert.Equal(t, http.StatusSeeOther, got.Status)
		assert.True(t, strings.HasPrefix(got.Location, "/login?"), got.Location)

		// A TOTP code is accepted once; recovery codes once each.
		c.Add(30 * time.Second)
		b2 := newBrowser(t, n)
		got = b2.post("/login?tenant="+p.Tenant, "/login", url.Values{"tenant": {p.Tenant}, "email": {p.Email}, "password": {password}})
		require.Equal(t, http.StatusSeeOther, got.Status)
		got = b2.post("/login/mfa", "/login/mfa", url.Values{"code": {p.Recovery[0]}})
		require.Equal(t, http.StatusSeeOther, got.Status, got.Body)
		b3 := newBrowser(t, n)
		got = b3.post("/login?tenant="+p.Tenant, "/login", url.Values{"tenant": {p.Tenant}, "email": {p.Email}, "password": {password}})
		require.Equal(t, http.StatusSeeOther, got.Status)
		got = b3.post("/login/mfa", "/login/mfa", url.Values{"code": {p.Recovery[0]}})
		assert.Equal(t, http.StatusUnauthorized, got.Status)
		assert.Contains(t, got.Body, "wrong or was used already")
	})
}

func TestFormsRefusedWithoutCSRFToken(t *testing.T) {
	apptest.EachDriver(t, func(t *testing.T, driver string) {
		n, c := node(t, driver)
		bt, key := n.Tenant(t)
		b := newBrowser(t, n)
		p := signUp(t, n, c, b, key, bt.Tenant.ID, "pat@example.com")
		form := url.Values{"tenant": {p.Tenant}, "email": {p.Email}, "password": {password}}
		nb := newBrowser(t, n)
		nb.get("/login") // has the pre-sign-in cookie, but sends no token
		got := nb.do(http.MethodPost, "/login", form)
		assert.Equal(t, http.StatusForbidden, got.Status)
		form.Set("csrf_token", "forged")
		got = nb.do(http.MethodPost, "/login", form)
		assert.Equal(t, http.StatusForbidden, got.Status)
		// A token of another browser is refused too.
		form.Set("csrf_token", csrf(t, b.get("/login").Body))
		got = nb.do(http.MethodPost, "/login", form)
		assert.Equal(t, http.StatusForbidden, got.Status)
		// Signed in: sign-out without the token is refused and changes nothing.
		got = b.do(http.MethodPost, "/logout/everywhere", url.Values{})
		assert.Equal(t, http.StatusForbidden, got.Status)
		assert.Equal(t, http.StatusOK, b.get("/me").Status)
		// From another origin, even with the token.
		req := url.Values{"csrf_token": {csrf(t, b.get("/me").Body)}}
		r, err := http.NewRequest(http.MethodPost, n.URL+"/logout", strings.NewReader(req.Encode()))
		require.NoError(t, err)
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.Header.Set("Origin", "https://evil.example")
		resp, err := b.c.Do(r)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusForbidden, resp.StatusCode)
	})
}

func TestLockoutAndTimeouts(t *testing.T) {
	apptest.EachDriver(t, func(t *testing.T, driver string) {
		n, c := node(t, driver)
		bt, key := n.Tenant(t)
		b := newBrowser(t, n)
		p := signUp(t, n, c, b, key, bt.Tenant.ID, "pat@example.com")

		// Idle: 15 minutes without a request ends the session.
		assert.Equal(t, http.StatusOK, b.get("/me").Status)
		c.Add(14 * time.Minute)
		assert.Equal(t, http.StatusOK, b.get("/me").Status)
		c.Add(15 * time.Minute)
		got := b.get("/me")
		assert.Equal(t, http.StatusSeeOther, got.Status)
		assert.True(t, strings.HasPrefix(got.Location, "/login?"), got.Location)

		// Absolute: 12 hours after sign-in, however busy.
		start := c.Now()
		b = signIn(t, n, c, p)
		for c.Now().Add(14*time.Minute).Sub(start) < 12*time.Hour {
			c.Add(14 * time.Minute)
			require.Equal(t, http.StatusOK, b.get("/me").Status)
		}
		c.Add(14 * time.Minute)
		assert.Equal(t, http.StatusSeeOther, b.get("/me").Status)

		// Ten wrong passwords lock the account for 30 minutes.
		x := newBrowser(t, n)
		for i := range 10 {
			got = x.post("/login", "/login", url.Values{"tenant": {p.Tenant}, "email": {p.Email}, "password": {"not-the-password-" + string(rune('a'+i))}})
			require.Contains(t, []int{http.StatusUnauthorized, http.StatusTooManyRequests}, got.Status)
		}
		assert.Equal(t, http.StatusTooManyRequests, got.Status)
		got = x.post("/login", "/login", url.Values{"tenant": {p.Tenant}, "email": {p.Email}, "password": {password}})
		assert.Equal(t, http.StatusTooManyRequests, got.Status)
		assert.Contains(t, got.Body, "locked")
		c.Add(30 * time.Minute)
		signIn(t, n, c, p)
	})
}

func TestSignOutEverywhere(t *testing.T) {
	apptest.EachDriver(t, func(t *testing.T, driver string) {
		n, c := node(t, driver)
		bt, key := n.Tenant(t)
		b := newBrowser(t, n)
		p := signUp(t, n, c, b, key, bt.Tenant.ID, "pat@example.com")
		other := signIn(t, n, c, p)
		require.Equal(t, http.StatusOK, other.get("/me").Status)
		got := b.post("/me", "/logout/everywhere", url.Values{})
		require.Equal(t, http.StatusSeeOther, got.Status, got.Body)
		assert.Equal(t, http.StatusSeeOther, other.get("/me").Status)
		assert.Equal(t, http.StatusSeeOther, b.get("/me").Status)
	})
}

func TestPayerOfOneTenantCannotSignInToAnother(t *testing.T) {
	apptest.EachDriver(t, func(t *testing.T, driver string) {
		n, c := node(t, driver)
		ta, key := n.Tenant(t)
		tb, _ := n.Tenant(t)
		b := newBrowser(t, n)
		p := signUp(t, n, c, b, key, ta.Tenant.ID, "pat@example.com")
		x := newBrowser(t, n)
		got := x.post("/login", "/login", url.Values{"tenant": {tb.Tenant.ID}, "email": {p.Email}, "password": {password}})
		assert.Equal(t, http.StatusUnauthorized, got.Status)
		// Nor read another tenant's customer through the API.
		_, keyB := n.Tenant(t)
		r := n.Do(t, apptest.Req{Method: "GET", Path: "/v1/customers/" + p.ID, Key: keyB})
		assert.Equal(t, http.StatusNotFound, r.Status)
		r = n.Do(t, apptest.Req{Method: "GET", Path: "/v1/customers/" + p.ID, Key: key})
		assert.Equal(t, http.StatusOK, r.Status)
		assert.Equal(t, true, r.JSON["mfa_enrolled"])
	})
}

func TestSuspiciousLoginFromANewBrowser(t *testing.T) {
	apptest.EachDriver(t, func(t *testing.T, driver string) {
		n, c := node(t, driver)
		bt, key := n.Tenant(t)
		p := signUp(t, n, c, newBrowser(t, n), key, bt.Tenant.ID, "pat@example.com")
		events := func() int {
			r := n.Do(t, apptest.Req{Method: "GET", Path: "/v1/events?type=user.suspicious_login", Key: key})
			require.Equal(t, http.StatusOK, r.Status, string(r.Body))
			return len(r.JSON["data"].([]any))
		}
		signIn(t, n, c, p) // the same browser as at sign-up: nothing new
		assert.Equal(t, 0, events())
		b := newBrowser(t, n)
		b.ua = "another browser"
		got := b.post("/login", "/login", url.Values{"tenant": {p.Tenant}, "email": {p.Email}, "password": {password}})
		require.Equal(t, http.StatusSeeOther, got.Status, got.Body)
		assert.Equal(t, 1, events())
		r := n.Do(t, apptest.Req{Method: "GET", Path: "/v1/events?type=user.suspicious_login", Key: key})
		obj := r.JSON["data"].([]any)[0].(map[string]any)["data"].(map[string]any)["object"].(map[string]any)
		assert.Equal(t, p.ID, obj["user"])
		assert.Equal(t, true, obj["new_user_agent"])
		assert.Equal(t, false, obj["new_ip"])
	})
}

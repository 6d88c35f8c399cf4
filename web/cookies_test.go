package web_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/app"
	"github.com/perfectpay/perfectpay/app/apptest"
)

// Outside dev mode, cookies are Secure and __Host- prefixed even on
// loopback; dev mode relaxes that only for plain-http loopback requests.
func TestCookiesSecureOutsideDevMode(t *testing.T) {
	n := apptest.New(t, "memory", cheap, func(c *app.Config) { c.DevMode = false })
	resp, err := http.Get(n.URL + "/login")
	require.NoError(t, err)
	resp.Body.Close()
	sc := resp.Header.Get("Set-Cookie")
	assert.True(t, strings.HasPrefix(sc, "__Host-pp_csrf="), sc)
	assert.Contains(t, sc, "Secure")
	assert.Contains(t, sc, "HttpOnly")
	assert.Contains(t, sc, "SameSite=Lax")
	assert.NotEmpty(t, resp.Header.Get("Strict-Transport-Security"))

	dev := apptest.New(t, "memory", cheap)
	resp, err = http.Get(dev.URL + "/login")
	require.NoError(t, err)
	resp.Body.Close()
	sc = resp.Header.Get("Set-Cookie")
	assert.True(t, strings.HasPrefix(sc, "pp_csrf="), sc)
	assert.NotContains(t, sc, "Secure")
	// A non-loopback Host in dev mode keeps Secure.
	req, err := http.NewRequest(http.MethodGet, dev.URL+"/login", nil)
	require.NoError(t, err)
	req.Host = "pay.example"
	resp, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.True(t, strings.HasPrefix(resp.Header.Get("Set-Cookie"), "__Host-pp_csrf="))
}

// One source IP is refused after ip_failures_per_hour failed attempts,
// whichever accounts it tries, until the hour is over.
func TestThrottlePerIP(t *testing.T) {
	n, c := node(t, "memory", func(c *app.Config) { c.People.IPFailuresPerHour = 3 })
	bt, key := n.Tenant(t)
	p := signUp(t, n, c, newBrowser(t, n), key, bt.Tenant.ID, "pat@example.com")
	x := newBrowser(t, n)
	for i := range 3 {
		got := x.post("/login", "/login", url.Values{"tenant": {p.Tenant}, "email": {"nobody" + string(rune('a'+i)) + "@example.com"}, "password": {password}})
		require.Equal(t, http.StatusUnauthorized, got.Status)
	}
	got := x.post("/login", "/login", url.Values{"tenant": {p.Tenant}, "email": {p.Email}, "password": {password}})
	assert.Equal(t, http.StatusTooManyRequests, got.Status)
	c.Add(61 * 60e9)
	got = x.post("/login", "/login", url.Values{"tenant": {p.Tenant}, "email": {p.Email}, "password": {password}})
	assert.Equal(t, http.StatusSeeOther, got.Status, got.Body)
}

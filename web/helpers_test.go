package web_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/app"
	"github.com/perfectpay/perfectpay/app/apptest"
)

// clock is a fake clock tests move by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// cheap makes password hashing as cheap as the configuration allows.
func cheap(c *app.Config) {
	c.People.PasswordTime, c.People.PasswordMemoryKiB = 1, 8*1024
}

// node starts a node on driver with a fake clock for people.
func node(t *testing.T, driver string, opts ...func(*app.Config)) (*apptest.Node, *clock) {
	n := apptest.New(t, driver, append([]func(*app.Config){cheap}, opts...)...)
	c := &clock{t: time.Now().UTC()}
	n.App.People.SetClock(c.Now)
	n.App.Pages.SetClock(c.Now)
	return n, c
}

// browser is a cookie-keeping client that does not follow redirects.
type browser struct {
	t    *testing.T
	base string
	c    *http.Client
	ua   string // the User-Agent sent ("web-test" when empty)
}

func newBrowser(t *testing.T, n *apptest.Node) *browser {
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	return &browser{t: t, base: n.URL, c: &http.Client{Jar: jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

type page struct {
	Status   int
	Header   http.Header
	Body     string
	Location string
}

func (b *browser) do(method, path string, form url.Values) *page {
	b.t.Helper()
	if !strings.HasPrefix(path, "http") {
		path = b.base + path
	}
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(context.Background(), method, path, body)
	require.NoError(b.t, err)
	ua := b.ua
	if ua == "" {
		ua = "web-test"
	}
	req.Header.Set("User-Agent", ua)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := b.c.Do(req)
	require.NoError(b.t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(b.t, err)
	return &page{Status: resp.StatusCode, Header: resp.Header, Body: string(raw), Location: resp.Header.Get("Location")}
}

func (b *browser) get(path string) *page { return b.do(http.MethodGet, path, nil) }

// post sends form with the CSRF token of the page at `from`.
func (b *browser) post(from, path string, form url.Values) *page {
	b.t.Helper()
	p := b.get(from)
	form.Set("csrf_token", csrf(b.t, p.Body))
	return b.do(http.MethodPost, path, form)
}

func (b *browser) cookie(name string) string {
	u, _ := url.Parse(b.base)
	for _, c := range b.c.Jar.Cookies(u) {
		if c.Name == name {
			return c.Value
		}
	}
	return ""
}

var csrfRE = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)

func csrf(t *testing.T, body string) string {
	t.Helper()
	m := csrfRE.FindStringSubmatch(body)
	require.NotNil(t, m, "no CSRF token in page: %s", body)
	return m[1]
}

var secretRE = regexp.MustCompile(`<code class="secret">([A-Z2-7]+)</code>`)

func code(t *testing.T, secret string, at time.Time) string {
	c, err := totp.GenerateCodeCustom(secret, at, totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	require.NoError(t, err)
	return c
}

const password = "violet-harbour-tangent-42"

// person is a signed-up user with their TOTP secret.
type person struct {
	ID, Email, Tenant, Secret string
	Recovery                  []string
}

// signUp creates a customer through the API and walks the invitation and
// the TOTP enrolment in b, leaving b signed in with MFA.
func signUp(t *testing.T, n *apptest.Node, c *clock, b *browser, key, tenant, email string) *person {
	t.Helper()
	r := n.Do(t, apptest.Req{Method: "POST", Path: "/v1/customers", Key: key, Body: map[string]any{"email": email, "name": "Pat Payer"}})
	require.Equal(t, http.StatusCreated, r.Status, string(r.Body))
	return enrol(t, c, b, r, tenant, email)
}

// signUpTeam invites a team member with role and walks their sign-up in b.
func signUpTeam(t *testing.T, n *apptest.Node, c *clock, b *browser, key, tenant, email, role string) *person {
	t.Helper()
	r := n.Do(t, apptest.Req{Method: "POST", Path: "/v1/team_invitations", Key: key, Body: map[string]any{"email": email, "name": "Dana Dev", "role": role}})
	require.Equal(t, http.StatusCreated, r.Status, string(r.Body))
	r.JSON["id"] = r.JSON["user"].(map[string]any)["id"]
	return enrol(t, c, b, r, tenant, email)
}

// enrol follows the invitation of an API answer: password, sign-in, TOTP.
func enrol(t *testing.T, c *clock, b *browser, r *apptest.Response, tenant, email string) *person {
	t.Helper()
	iu, err := url.Parse(r.JSON["invitation"].(map[string]any)["url"].(string))
	require.NoError(t, err)
	inv := iu.Path // the link names the configured public URL; the test server is elsewhere
	p := &person{ID: r.JSON["id"].(string), Email: email, Tenant: tenant}
	got := b.post(inv, inv, url.Values{"password": {password}, "password_again": {password}})
	require.Equal(t, http.StatusSeeOther, got.Status, got.Body)
	got = b.post("/login?tenant="+tenant, "/login", url.Values{"tenant": {tenant}, "email": {email}, "password": {password}})
	require.Equal(t, http.StatusSeeOther, got.Status, got.Body)
	require.True(t, strings.HasPrefix(got.Location, "/mfa/setup"), got.Location)
	setup := b.get(got.Location)
	require.Equal(t, http.StatusOK, setup.Status, setup.Body)
	m := secretRE.FindStringSubmatch(setup.Body)
	require.NotNil(t, m)
	p.Secret = m[1]
	done := b.do(http.MethodPost, "/mfa/setup", url.Values{"csrf_token": {csrf(t, setup.Body)}, "code": {code(t, p.Secret, c.Now())}})
	require.Equal(t, http.StatusOK, done.Status, done.Body)
	for _, m := range regexp.MustCompile(`<code>([a-z0-9]{5}-[a-z0-9]{5})</code>`).FindAllStringSubmatch(done.Body, -1) {
		p.Recovery = append(p.Recovery, m[1])
	}
	require.Len(t, p.Recovery, 10)
	c.Add(30 * time.Second) // the enrolment code's step is spent
	return p
}

// signIn signs p in with password and TOTP in a new browser.
func signIn(t *testing.T, n *apptest.Node, c *clock, p *person) *browser {
	t.Helper()
	b := newBrowser(t, n)
	got := b.post("/login?tenant="+p.Tenant, "/login", url.Values{"tenant": {p.Tenant}, "email": {p.Email}, "password": {password}})
	require.Equal(t, http.StatusSeeOther, got.Status, got.Body)
	require.True(t, strings.HasPrefix(got.Location, "/login/mfa"), got.Location)
	got = b.post(got.Location, "/login/mfa", url.Values{"code": {code(t, p.Secret, c.Now())}, "return": {"/me"}})
	require.Equal(t, http.StatusSeeOther, got.Status, got.Body)
	c.Add(30 * time.Second)
	return b
}

func jsonDecode(resp *http.Response, v any) error { return json.NewDecoder(resp.Body).Decode(v) }

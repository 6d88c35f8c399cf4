// Package web serves the pages people use: sign-in with a second factor,
// invitations, the payer's page, the step-up approval page and the team
// console. Pages are rendered on the server with html/template, load
// nothing from other hosts and are sent under a strict Content-Security-
// Policy. Sessions are server-side (accounts.People); the cookie holds only
// the session's random id. Every form carries a CSRF token bound to the
// session (or, before sign-in, to a random cookie), and a POST without the
// right one is refused.
package web

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"path"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/perfectpay/perfectpay/accounts"
	"github.com/perfectpay/perfectpay/audit"
	"github.com/perfectpay/perfectpay/authz"
	"github.com/perfectpay/perfectpay/charging"
	"github.com/perfectpay/perfectpay/compliance"
	"github.com/perfectpay/perfectpay/internal/ids"
	"github.com/perfectpay/perfectpay/mandates"
	"github.com/perfectpay/perfectpay/merchants"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Config tunes the pages.
type Config struct {
	// PublicURL is the origin people's browsers use (passkeys are bound
	// to its host).
	PublicURL string
	// DevMode relaxes the Secure cookie attribute for plain-http loopback
	// requests (a developer's browser on http://127.0.0.1).
	DevMode bool
	// CSRFKey keys the CSRF tokens (32 bytes; every node shares it).
	CSRFKey []byte
	// IPFailures is how many failed passwords or codes one source IP may
	// send per IPWindow before it is refused for the rest of the window
	// (counted per node).
	IPFailures int
	IPWindow   time.Duration
	// ApprovalMFAMaxAge: an approval is given with a code typed on the
	// approval page itself, so this is informational for callers of
	// FreshMFA; default 5 minutes.
	ApprovalMFAMaxAge time.Duration
}

// Deps are the services the pages read and act through.
type Deps struct {
	People    *accounts.People
	Mandates  *mandates.Service
	Pipeline  *charging.Service
	Merchants *merchants.Service
	Issuer    *authz.Issuer
	Timelines *compliance.Timelines
	Log       *slog.Logger
}

// Pages serves every page. Other page files of this package (consent)
// use its helpers: RequireUser, CheckCSRF, Render, CheckCode.
type Pages struct {
	Deps
	cfg      Config
	pages    map[string]*template.Template
	throttle *throttle
	now      func() time.Time
	webauthn *webauthn.WebAuthn
	// timelinePage is the entries per page of a mandate's timeline (0:
	// timelinePageSize; tests make it small).
	timelinePage int
}

// New parses the templates.
func New(cfg Config, d Deps) (*Pages, error) {
	if len(cfg.CSRFKey) < 32 {
		return nil, errors.New("web: the CSRF key must be at least 32 bytes")
	}
	if cfg.IPFailures <= 0 {
		cfg.IPFailures = 100
	}
	if cfg.IPWindow <= 0 {
		cfg.IPWindow = time.Hour
	}
	if cfg.ApprovalMFAMaxAge <= 0 {
		cfg.ApprovalMFAMaxAge = 5 * time.Minute
	}
	p := &Pages{Deps: d, cfg: cfg, pages: map[string]*template.Template{}, now: time.Now}
	if p.Log == nil {
		p.Log = slog.New(slog.DiscardHandler)
	}
	wa, err := newWebAuthn(cfg.PublicURL)
	if err != nil {
		return nil, err
	}
	p.webauthn = wa
	p.throttle = newThrottle(cfg.IPFailures, cfg.IPWindow, func() time.Time { return p.now() })
	base, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html")
	if err != nil {
		return nil, err
	}
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	for _, n := range names {
		name := strings.TrimSuffix(path.Base(n), ".html")
		if name == "layout" {
			continue
		}
		t, err := template.Must(base.Clone()).ParseFS(templateFS, n)
		if err != nil {
			return nil, fmt.Errorf("web: template %s: %w", name, err)
		}
		p.pages[name] = t
	}
	return p, nil
}

// SetClock replaces the clock of the IP throttle (tests).
func (p *Pages) SetClock(now func() time.Time) { p.now = now }

// handle registers a page route: security headers on every answer.
func (p *Pages) handle(r router, method, pattern string, h http.HandlerFunc) {
	r.Raw(method, pattern, p.secure(h))
}

// router is the part of server.API the pages use.
type router interface {
	Raw(method, path string, h http.Handler)
}

// Handle adds a page route served by h with the pages' security headers
// (for page files of this package written elsewhere: consent).
func (p *Pages) Handle(r router, method, pattern string, h http.HandlerFunc) {
	p.handle(r, method, pattern, h)
}

// csp allows this origin's stylesheet, its one script (passkeys) and
// data: images (the TOTP QR code) and nothing else: no inline script, no
// frames, forms and requests only to this origin.
const csp = "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self'; img-src 'self' data:; form-action 'self'; " +
	"frame-ancestors 'none'; base-uri 'none'"

func (p *Pages) secure(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", csp)
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Cache-Control", "no-store")
		hd.Set("Cross-Origin-Opener-Policy", "same-origin")
		if !p.insecureOK(r) {
			hd.Set("Strict-Transport-Security", "max-age=31536000")
		}
		if r.Method == http.MethodPost && !p.sameOrigin(r) {
			p.fail(w, r, http.StatusForbidden, "This form was sent from another site and was refused.")
			return
		}
		h(w, r)
	}
}

// sameOrigin refuses a POST whose Origin header names another origin
// (browsers send it on POSTs; its absence is left to the CSRF token).
func (p *Pages) sameOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" || o == "null" { // Referrer-Policy: no-referrer makes browsers send "null"
		return true
	}
	u, err := url.Parse(o)
	return err == nil && strings.EqualFold(u.Host, r.Host)
}

// insecureOK: a plain-http request to a loopback host in dev mode, where
// the Secure cookie attribute is relaxed.
func (p *Pages) insecureOK(r *http.Request) bool {
	if !p.cfg.DevMode || r.TLS != nil {
		return false
	}
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Cookie names: __Host- prefixed (Secure, Path=/, no Domain) except on
// dev-mode loopback.
func (p *Pages) cookieName(r *http.Request, name string) string {
	if p.insecureOK(r) {
		return "pp_" + name
	}
	return "__Host-pp_" + name
}

func (p *Pages) setCookie(w http.ResponseWriter, r *http.Request, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{Name: p.cookieName(r, name), Value: value, Path: "/", MaxAge: maxAge,
		HttpOnly: true, Secure: !p.insecureOK(r), SameSite: http.SameSiteLaxMode})
}

func (p *Pages) cookie(r *http.Request, name string) string {
	c, err := r.Cookie(p.cookieName(r, name))
	if err != nil {
		return ""
	}
	return c.Value
}

// clientIP is the peer address (a proxy in front overwrites RemoteAddr).
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func loginInfo(r *http.Request) accounts.LoginInfo {
	return accounts.LoginInfo{IP: clientIP(r), UserAgent: r.UserAgent()}
}

// ctxKey holds the resolved session of a request.
type ctxKey struct{}

type current struct {
	id   string
	sess *accounts.Session
	user *accounts.User
}

// resolve returns the request's live session (nil when none).
func (p *Pages) resolve(r *http.Request) *current {
	if c, ok := r.Context().Value(ctxKey{}).(*current); ok {
		return c
	}
	id := p.cookie(r, "session")
	if id == "" {
		return nil
	}
	s, u, err := p.People.Resume(r.Context(), id)
	if err != nil {
		if !errors.Is(err, accounts.ErrNoSession) {
			p.Log.ErrorContext(r.Context(), "session lookup failed", "err", err)
		}
		return nil
	}
	return &current{id: id, sess: s, user: u}
}

// remember stores c in r's context for later helpers of the same request.
func remember(r *http.Request, c *current) *http.Request {
	return r.WithContext(context.WithValue(r.Context(), ctxKey{}, c))
}

// Session returns the request's live session and user, MFA given or not
// (nil, nil when signed out).
func (p *Pages) Session(r *http.Request) (*accounts.Session, *accounts.User) {
	c := p.resolve(r)
	if c == nil {
		return nil, nil
	}
	return c.sess, c.user
}

// RequireUser returns the signed-in user whose session has its second
// factor. Otherwise it answers (a redirect to sign-in, or to the second
// factor, with the current URL to return to) and returns false. A
// `tenant` query parameter of the current URL is handed to the sign-in
// page, which then need not ask for the account.
func (p *Pages) RequireUser(w http.ResponseWriter, r *http.Request) (*accounts.User, bool) {
	s, u, ok := p.RequireSession(w, r)
	_ = s
	return u, ok
}

// RequireSession is RequireUser returning the session too.
func (p *Pages) RequireSession(w http.ResponseWriter, r *http.Request) (*accounts.Session, *accounts.User, bool) {
	ret := r.URL.RequestURI()
	if r.Method != http.MethodGet {
		ret = r.URL.Path
	}
	c := p.resolve(r)
	q := url.Values{"return": {ret}}
	switch {
	case c == nil:
		if t := r.URL.Query().Get("tenant"); t != "" {
			q.Set("tenant", t)
		}
		http.Redirect(w, r, "/login?"+q.Encode(), http.StatusSeeOther)
		return nil, nil, false
	case !c.user.MFAEnrolled():
		http.Redirect(w, r, "/mfa/setup?"+q.Encode(), http.StatusSeeOther)
		return nil, nil, false
	case c.sess.MFAAt == nil:
		http.Redirect(w, r, "/login/mfa?"+q.Encode(), http.StatusSeeOther)
		return nil, nil, false
	}
	return c.sess, c.user, true
}

// FreshMFA reports whether the session's second factor was given within maxAge.
func (p *Pages) FreshMFA(s *accounts.Session, maxAge time.Duration) bool {
	return p.People.FreshMFA(s, maxAge)
}

// CheckCode checks a second-factor code the user typed to confirm an act
// (an approval, a consent): nil when it is right. Wrong codes count
// towards the user's lockout and the IP throttle.
func (p *Pages) CheckCode(r *http.Request, u *accounts.User, code string) error {
	_, err := p.CheckFactor(r, u, code)
	return err
}

// CheckFactor is CheckCode that also says which factor the code was
// (accounts.FactorTOTP or accounts.FactorRecovery), for the audit entry
// of the act it confirms (audit.WithFactor).
func (p *Pages) CheckFactor(r *http.Request, u *accounts.User, code string) (string, error) {
	ip := clientIP(r)
	if !p.throttle.allow(ip) {
		return "", errThrottled
	}
	factor, err := p.People.CheckMFA(UserContext(r, u), u, code)
	if errors.Is(err, accounts.ErrBadCode) || errors.Is(err, accounts.ErrLocked) {
		p.throttle.fail(ip)
	}
	return factor, err
}

// ConfirmedContext is UserContext carrying the factor that confirmed the
// act (empty: none was asked, as for a refusal).
func ConfirmedContext(r *http.Request, u *accounts.User, factor string) context.Context {
	ctx := UserContext(r, u)
	if factor != "" {
		ctx = audit.WithFactor(ctx, factor)
	}
	return ctx
}

var errThrottled = errors.New("web: too many failed attempts from this address")

// UserContext is r's context with u as the audit actor.
func UserContext(r *http.Request, u *accounts.User) context.Context {
	return audit.WithActor(r.Context(), audit.Actor{TenantID: u.TenantID, Type: audit.ActorUser, ID: u.ID,
		IP: clientIP(r), RequestID: r.Header.Get("Request-Id")})
}

// CSRFToken is the token the forms of this response carry. Before
// sign-in it is bound to a random cookie it sets when missing.
func (p *Pages) CSRFToken(w http.ResponseWriter, r *http.Request) string {
	if c := p.resolve(r); c != nil {
		return p.csrfFor(c.id)
	}
	pre := p.cookie(r, "csrf")
	if len(pre) != 32 {
		pre = ids.Random(32)
		p.setCookie(w, r, "csrf", pre, 0)
		// Later reads in this request see it.
		r.AddCookie(&http.Cookie{Name: p.cookieName(r, "csrf"), Value: pre})
	}
	return p.csrfFor("pre|" + pre)
}

func (p *Pages) csrfFor(binding string) string {
	m := hmac.New(sha256.New, p.cfg.CSRFKey)
	m.Write([]byte("csrf|" + binding))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// CheckCSRF checks the csrf_token field of a POSTed form against the
// session (or the pre-sign-in cookie); when it is wrong or missing it
// answers 403 and returns false.
func (p *Pages) CheckCSRF(w http.ResponseWriter, r *http.Request) bool {
	ok := p.csrfOK(r, r.PostFormValue("csrf_token"))
	if !ok {
		p.fail(w, r, http.StatusForbidden, "This form has expired or did not come from this site. Go back, reload the page and try again.")
	}
	return ok
}

// csrfOK reports whether got is the request's CSRF token.
func (p *Pages) csrfOK(r *http.Request, got string) bool {
	var want []string
	if c := p.resolve(r); c != nil {
		want = append(want, p.csrfFor(c.id))
	}
	if pre := p.cookie(r, "csrf"); len(pre) == 32 {
		want = append(want, p.csrfFor("pre|"+pre))
	}
	ok := false
	for _, w := range want {
		if got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(w)) == 1 {
			ok = true
		}
	}
	return ok
}

// View is what every page template receives.
type View struct {
	Title string
	User  *accounts.User
	CSRF  string
	// Error and Notice are shown above the page's content.
	Error  string
	Notice string
	Data   any
}

// Render writes page `name` (templates/<name>.html inside the layout)
// with status. data is the page's own (View.Data).
func (p *Pages) Render(w http.ResponseWriter, r *http.Request, status int, name, title string, data any) {
	p.render(w, r, status, name, &View{Title: title, Data: data})
}

// RenderError is Render with an error message shown above the content.
func (p *Pages) RenderError(w http.ResponseWriter, r *http.Request, status int, name, title, msg string, data any) {
	p.render(w, r, status, name, &View{Title: title, Error: msg, Data: data})
}

func (p *Pages) render(w http.ResponseWriter, r *http.Request, status int, name string, v *View) {
	t, ok := p.pages[name]
	if !ok {
		p.Log.ErrorContext(r.Context(), "no such page template", "template", name)
		http.Error(w, "Internal error", http.StatusInternalServerError)
		return
	}
	if v.User == nil {
		if c := p.resolve(r); c != nil && c.sess.MFAAt != nil {
			v.User = c.user
		}
	}
	v.CSRF = p.CSRFToken(w, r)
	var buf strings.Builder
	if err := t.ExecuteTemplate(&buf, "layout", v); err != nil {
		p.Log.ErrorContext(r.Context(), "page rendering failed", "template", name, "err", err)
		http.Error(w, "Internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(buf.String()))
}

// fail renders the message page.
func (p *Pages) fail(w http.ResponseWriter, r *http.Request, status int, msg string) {
	p.render(w, r, status, "message", &View{Title: http.StatusText(status), Error: msg})
}

// Fail renders a page saying msg with status (no details of internals).
func (p *Pages) Fail(w http.ResponseWriter, r *http.Request, status int, msg string) {
	p.fail(w, r, status, msg)
}

// internal answers an unexpected error: logged, never shown.
func (p *Pages) internal(w http.ResponseWriter, r *http.Request, err error) {
	p.Log.ErrorContext(r.Context(), "page failed", "err", err)
	p.fail(w, r, http.StatusInternalServerError, "Something went wrong on our side. Try again in a moment.")
}

// safeReturn keeps a return URL only when it is a path of this site.
func safeReturn(s, fallback string) string {
	if s == "" || !strings.HasPrefix(s, "/") || strings.HasPrefix(s, "//") || strings.HasPrefix(s, "/\\") ||
		strings.ContainsAny(s, "\r\n\\") || len(s) > 2000 {
		return fallback
	}
	return s
}

// throttle counts failures per source IP in fixed windows (per node).
type throttle struct {
	mu     sync.Mutex
	max    int
	window time.Duration
	now    func() time.Time
	start  time.Time
	counts map[string]int
}

func newThrottle(max int, window time.Duration, now func() time.Time) *throttle {
	return &throttle{max: max, window: window, now: now, counts: map[string]int{}}
}

func (t *throttle) roll() {
	if n := t.now(); n.Sub(t.start) >= t.window {
		t.start, t.counts = n, map[string]int{}
	}
}

func (t *throttle) allow(ip string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.roll()
	return t.counts[ip] < t.max
}

func (t *throttle) fail(ip string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.roll()
	if len(t.counts) >= 100_000 { // bounded: a flood of addresses restarts the window
		t.counts = map[string]int{}
	}
	t.counts[ip]++
}

// static serves the stylesheet.
func (p *Pages) static(w http.ResponseWriter, r *http.Request) {
	b, err := staticFS.ReadFile("static/app.css")
	if err != nil {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "text/css; charset=utf-8")
	w.Header().Set("Cache-Control", "public, max-age=3600")
	_, _ = w.Write(b)
}

func utf8Valid(s string) bool { return utf8.ValidString(s) && !strings.ContainsRune(s, 0) }

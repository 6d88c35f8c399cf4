package web

import (
	"errors"
	"net/http"
	"net/url"

	"github.com/gorilla/mux"

	"github.com/perfectpay/perfectpay/accounts"
	"github.com/perfectpay/perfectpay/internal/apierr"
	"github.com/perfectpay/perfectpay/server"
)

// Mount adds the page routes.
func (p *Pages) Mount(api *server.API) {
	api.Raw(http.MethodGet, "/static/app.css", http.HandlerFunc(p.static))
	p.handle(api, http.MethodGet, "/login", p.loginPage)
	p.handle(api, http.MethodPost, "/login", p.login)
	p.handle(api, http.MethodGet, "/login/mfa", p.mfaPage)
	p.handle(api, http.MethodPost, "/login/mfa", p.mfa)
	p.handle(api, http.MethodGet, "/mfa/setup", p.setupPage)
	p.handle(api, http.MethodPost, "/mfa/setup", p.setup)
	p.handle(api, http.MethodPost, "/logout", p.logout)
	p.handle(api, http.MethodPost, "/logout/everywhere", p.logoutEverywhere)
	p.handle(api, http.MethodGet, "/invitations/{token}", p.invitationPage)
	p.handle(api, http.MethodPost, "/invitations/{token}", p.acceptInvitation)
	p.mountApprovals(api)
	p.mountPayer(api)
	p.mountConsole(api)
	p.mountAudit(api)
	p.mountPasskeys(api)
	p.mountConsent(api)
}

// home is where a user lands after sign-in when no return URL was given.
func home(u *accounts.User) string {
	if u != nil && u.IsTeam() {
		return "/console"
	}
	return "/me"
}

type loginData struct {
	Tenant, Email, Return string
	AskTenant             bool
}

func (p *Pages) loginPage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	d := loginData{Tenant: q.Get("tenant"), Return: safeReturn(q.Get("return"), ""), AskTenant: q.Get("tenant") == ""}
	p.Render(w, r, http.StatusOK, "login", "Sign in", d)
}

func (p *Pages) login(w http.ResponseWriter, r *http.Request) {
	if !p.CheckCSRF(w, r) {
		return
	}
	d := loginData{Tenant: r.PostFormValue("tenant"), Email: r.PostFormValue("email"),
		Return: safeReturn(r.PostFormValue("return"), ""), AskTenant: r.PostFormValue("ask_tenant") != ""}
	ip := clientIP(r)
	if !p.throttle.allow(ip) {
		p.RenderError(w, r, http.StatusTooManyRequests, "login", "Sign in", "Too many failed attempts from your network. Try again later.", d)
		return
	}
	u, err := p.People.Login(r.Context(), d.Tenant, d.Email, r.PostFormValue("password"), loginInfo(r))
	switch {
	case errors.Is(err, accounts.ErrBadLogin):
		p.throttle.fail(ip)
		p.RenderError(w, r, http.StatusUnauthorized, "login", "Sign in", "The account, email or password is wrong.", d)
		return
	case errors.Is(err, accounts.ErrLocked):
		p.throttle.fail(ip)
		p.RenderError(w, r, http.StatusTooManyRequests, "login", "Sign in", "Too many failed attempts: this account is locked for a while. Try again later.", d)
		return
	case err != nil:
		p.internal(w, r, err)
		return
	}
	// A new session id at sign-in: whatever id the browser had is dropped.
	if old := p.cookie(r, "session"); old != "" {
		_ = p.People.EndSession(r.Context(), old)
	}
	ns, err := p.People.StartSession(UserContext(r, u), u, false, loginInfo(r))
	if err != nil {
		p.internal(w, r, err)
		return
	}
	p.setCookie(w, r, "session", ns.ID, 0)
	q := url.Values{"return": {d.Return}}
	if u.MFAEnrolled() {
		http.Redirect(w, r, "/login/mfa?"+q.Encode(), http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, "/mfa/setup?"+q.Encode(), http.StatusSeeOther)
}

type mfaData struct{ Return string }

// signedIn returns the session before its second factor (redirecting to
// sign-in when there is none).
func (p *Pages) signedIn(w http.ResponseWriter, r *http.Request) *current {
	c := p.resolve(r)
	if c == nil {
		http.Redirect(w, r, "/login?"+url.Values{"return": {safeReturn(r.URL.Query().Get("return"), "")}}.Encode(), http.StatusSeeOther)
	}
	return c
}

func (p *Pages) mfaPage(w http.ResponseWriter, r *http.Request) {
	c := p.signedIn(w, r)
	if c == nil {
		return
	}
	ret := safeReturn(r.URL.Query().Get("return"), home(c.user))
	if !c.user.MFAEnrolled() {
		http.Redirect(w, r, "/mfa/setup?"+url.Values{"return": {ret}}.Encode(), http.StatusSeeOther)
		return
	}
	p.Render(w, r, http.StatusOK, "mfa", "Two-step verification", mfaData{Return: ret})
}

func (p *Pages) mfa(w http.ResponseWriter, r *http.Request) {
	c := p.signedIn(w, r)
	if c == nil || !p.CheckCSRF(w, r) {
		return
	}
	ret := safeReturn(r.PostFormValue("return"), home(c.user))
	if err := p.CheckCode(r, c.user, r.PostFormValue("code")); err != nil {
		p.codeRefused(w, r, err, "mfa", "Two-step verification", mfaData{Return: ret})
		return
	}
	// A new session id once the second factor is given.
	ns, err := p.People.RotateSession(UserContext(r, c.user), c.id, true)
	if err != nil {
		p.internal(w, r, err)
		return
	}
	p.setCookie(w, r, "session", ns.ID, 0)
	http.Redirect(w, r, ret, http.StatusSeeOther)
}

// codeRefused renders page again with why a code was refused.
func (p *Pages) codeRefused(w http.ResponseWriter, r *http.Request, err error, page, title string, data any) {
	switch {
	case errors.Is(err, accounts.ErrBadCode):
		p.RenderError(w, r, http.StatusUnauthorized, page, title, "That code is wrong or was used already.", data)
	case errors.Is(err, accounts.ErrLocked), errors.Is(err, errThrottled):
		p.RenderError(w, r, http.StatusTooManyRequests, page, title, "Too many failed attempts. Try again later.", data)
	default:
		p.internal(w, r, err)
	}
}

type setupData struct {
	Return string
	TOTP   *accounts.TOTPEnrolment
	Codes  []string
}

func (p *Pages) setupPage(w http.ResponseWriter, r *http.Request) {
	c := p.signedIn(w, r)
	if c == nil {
		return
	}
	ret := safeReturn(r.URL.Query().Get("return"), home(c.user))
	if c.user.MFAEnrolled() {
		// Re-enrolling replaces the factor: only with a fresh second factor.
		if !p.FreshMFA(c.sess, p.cfg.ApprovalMFAMaxAge) {
			http.Redirect(w, r, "/login/mfa?"+url.Values{"return": {"/mfa/setup"}}.Encode(), http.StatusSeeOther)
			return
		}
	}
	e, err := p.People.BeginTOTP(UserContext(r, c.user), c.user)
	if err != nil {
		p.internal(w, r, err)
		return
	}
	p.Render(w, r, http.StatusOK, "setup", "Set up two-step verification", setupData{Return: ret, TOTP: e})
}

func (p *Pages) setup(w http.ResponseWriter, r *http.Request) {
	c := p.signedIn(w, r)
	if c == nil || !p.CheckCSRF(w, r) {
		return
	}
	ret := safeReturn(r.PostFormValue("return"), home(c.user))
	if c.user.MFAEnrolled() && !p.FreshMFA(c.sess, p.cfg.ApprovalMFAMaxAge) {
		p.fail(w, r, http.StatusForbidden, "Confirm your current second factor first.")
		return
	}
	codes, err := p.People.ConfirmTOTP(UserContext(r, c.user), c.user, r.PostFormValue("code"))
	if err != nil {
		// A new secret for the next try: the page shows a new QR code.
		e, berr := p.People.BeginTOTP(UserContext(r, c.user), c.user)
		if berr != nil {
			p.internal(w, r, berr)
			return
		}
		p.codeRefused(w, r, err, "setup", "Set up two-step verification", setupData{Return: ret, TOTP: e})
		return
	}
	ns, err := p.People.RotateSession(UserContext(r, c.user), c.id, true)
	if err != nil {
		p.internal(w, r, err)
		return
	}
	p.setCookie(w, r, "session", ns.ID, 0)
	r = remember(r, &current{id: ns.ID, sess: ns.Session, user: c.user})
	p.Render(w, r, http.StatusOK, "setup", "Your recovery codes", setupData{Return: ret, Codes: codes})
}

func (p *Pages) logout(w http.ResponseWriter, r *http.Request) {
	if !p.CheckCSRF(w, r) {
		return
	}
	if id := p.cookie(r, "session"); id != "" {
		if err := p.People.EndSession(r.Context(), id); err != nil {
			p.internal(w, r, err)
			return
		}
	}
	p.setCookie(w, r, "session", "", -1)
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

func (p *Pages) logoutEverywhere(w http.ResponseWriter, r *http.Request) {
	u, ok := p.RequireUser(w, r)
	if !ok || !p.CheckCSRF(w, r) {
		return
	}
	if _, err := p.People.EndAllSessions(UserContext(r, u), u); err != nil {
		p.internal(w, r, err)
		return
	}
	p.setCookie(w, r, "session", "", -1)
	http.Redirect(w, r, "/login?"+url.Values{"tenant": {u.TenantID}}.Encode(), http.StatusSeeOther)
}

type invitationData struct {
	Email, Name, Tenant string
	Team                bool
}

func (p *Pages) invitationPage(w http.ResponseWriter, r *http.Request) {
	_, u, err := p.People.Invitation(r.Context(), mux.Vars(r)["token"])
	var bad *apierr.Invalid
	if errors.As(err, &bad) {
		p.fail(w, r, http.StatusNotFound, bad.Message)
		return
	}
	if err != nil {
		p.internal(w, r, err)
		return
	}
	p.Render(w, r, http.StatusOK, "invitation", "Choose your password", invitationData{Email: u.Email, Name: u.Name, Tenant: u.TenantID, Team: u.IsTeam()})
}

func (p *Pages) acceptInvitation(w http.ResponseWriter, r *http.Request) {
	if !p.CheckCSRF(w, r) {
		return
	}
	token := mux.Vars(r)["token"]
	_, u, err := p.People.Invitation(r.Context(), token)
	var bad *apierr.Invalid
	if errors.As(err, &bad) {
		p.fail(w, r, http.StatusNotFound, bad.Message)
		return
	}
	if err != nil {
		p.internal(w, r, err)
		return
	}
	d := invitationData{Email: u.Email, Name: u.Name, Tenant: u.TenantID, Team: u.IsTeam()}
	pw := r.PostFormValue("password")
	if pw != r.PostFormValue("password_again") {
		p.RenderError(w, r, http.StatusBadRequest, "invitation", "Choose your password", "The two passwords differ.", d)
		return
	}
	u, err = p.People.AcceptInvitation(UserContext(r, u), token, pw)
	if errors.As(err, &bad) {
		p.RenderError(w, r, http.StatusBadRequest, "invitation", "Choose your password", bad.Message, d)
		return
	}
	if err != nil {
		p.internal(w, r, err)
		return
	}
	http.Redirect(w, r, "/login?"+url.Values{"tenant": {u.TenantID}, "return": {home(u)}}.Encode(), http.StatusSeeOther)
}

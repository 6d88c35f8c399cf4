package web

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/perfectpay/perfectpay/accounts"
	"github.com/perfectpay/perfectpay/internal/logging"
	"github.com/perfectpay/perfectpay/internal/seal"
	"github.com/perfectpay/perfectpay/server"
)

// Passkeys (WebAuthn, go-webauthn): a second factor after the password,
// or a sign-in on their own (a discoverable credential with user
// verification, which is possession plus the device's PIN or biometric).
// A ceremony's state travels sealed (AES-GCM, internal/seal) in a
// short-lived cookie, so any node can finish what another began.

// passkeyUser adapts a user and their passkeys to webauthn.User. The
// user handle is the user's id.
type passkeyUser struct {
	u    *accounts.User
	keys []accounts.Passkey
}

func (p passkeyUser) WebAuthnID() []byte          { return []byte(p.u.ID) }
func (p passkeyUser) WebAuthnName() string        { return p.u.Email }
func (p passkeyUser) WebAuthnDisplayName() string { return p.u.Email }
func (p passkeyUser) WebAuthnCredentials() []webauthn.Credential {
	out := make([]webauthn.Credential, 0, len(p.keys))
	for _, k := range p.keys {
		c := webauthn.Credential{ID: k.ID, PublicKey: k.PublicKey, AttestationType: k.AttestationType,
			Flags:         webauthn.CredentialFlags{BackupEligible: k.BackupEligible, BackupState: k.BackupState},
			Authenticator: webauthn.Authenticator{AAGUID: k.AAGUID, SignCount: k.SignCount}}
		for _, t := range k.Transports {
			c.Transport = append(c.Transport, protocol.AuthenticatorTransport(t))
		}
		out = append(out, c)
	}
	return out
}

// ceremony is what the sealed cookie carries between options and finish.
type ceremony struct {
	Purpose  string               `json:"purpose"` // register | mfa | signin
	TenantID string               `json:"tenant"`
	UserID   string               `json:"user,omitempty"`
	Return   string               `json:"return,omitempty"`
	Session  webauthn.SessionData `json:"session"`
}

const ceremonyTTL = 5 * time.Minute

func newWebAuthn(publicURL string) (*webauthn.WebAuthn, error) {
	u, err := url.Parse(publicURL)
	if err != nil || u.Host == "" {
		return nil, errors.New("web: passkeys need an absolute public URL")
	}
	host := u.Hostname()
	if ip := net.ParseIP(host); ip != nil {
		if !ip.IsLoopback() {
			return nil, nil // WebAuthn is bound to a domain: none, no passkeys
		}
		host = "localhost" // a developer's loopback server, opened as localhost
	}
	origin := u.Scheme + "://" + host
	if port := u.Port(); port != "" {
		origin += ":" + port
	}
	return webauthn.New(&webauthn.Config{RPID: host, RPDisplayName: "PerfectPay", RPOrigins: []string{origin},
		Timeouts: webauthn.TimeoutsConfig{
			Login:        webauthn.TimeoutConfig{Enforce: true, Timeout: ceremonyTTL},
			Registration: webauthn.TimeoutConfig{Enforce: true, Timeout: ceremonyTTL},
		}})
}

func (p *Pages) ceremonyKey() []byte {
	m := hmac.New(sha256.New, p.cfg.CSRFKey)
	m.Write([]byte("webauthn ceremony cookie"))
	return m.Sum(nil)
}

func (p *Pages) putCeremony(w http.ResponseWriter, r *http.Request, c *ceremony) error {
	raw, err := json.Marshal(c)
	if err != nil {
		return err
	}
	sealed, err := seal.Seal(p.ceremonyKey(), raw, []byte("webauthn|"+c.Purpose))
	if err != nil {
		return err
	}
	http.SetCookie(w, &http.Cookie{Name: p.cookieName(r, "webauthn"), Value: base64.RawURLEncoding.EncodeToString(sealed),
		Path: "/", MaxAge: int(ceremonyTTL / time.Second), HttpOnly: true, Secure: !p.insecureOK(r), SameSite: http.SameSiteStrictMode})
	return nil
}

// takeCeremony opens the ceremony cookie of purpose and clears it (a
// ceremony is finished once).
func (p *Pages) takeCeremony(w http.ResponseWriter, r *http.Request, purpose string) (*ceremony, bool) {
	v := p.cookie(r, "webauthn")
	http.SetCookie(w, &http.Cookie{Name: p.cookieName(r, "webauthn"), Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, Secure: !p.insecureOK(r), SameSite: http.SameSiteStrictMode})
	sealed, err := base64.RawURLEncoding.DecodeString(v)
	if err != nil || v == "" {
		return nil, false
	}
	raw, err := seal.Open(p.ceremonyKey(), sealed, []byte("webauthn|"+purpose))
	if err != nil {
		return nil, false
	}
	var c ceremony
	if json.Unmarshal(raw, &c) != nil || c.Purpose != purpose {
		return nil, false
	}
	return &c, true
}

func (p *Pages) mountPasskeys(api *server.API) {
	api.Raw(http.MethodGet, "/static/webauthn.js", http.HandlerFunc(p.staticJS))
	p.handle(api, http.MethodPost, "/passkeys/register/options", p.passkeyRegisterOptions)
	p.handle(api, http.MethodPost, "/passkeys/register", p.passkeyRegister)
	p.handle(api, http.MethodPost, "/login/passkey/options", p.passkeyMFAOptions)
	p.handle(api, http.MethodPost, "/login/passkey", p.passkeyMFA)
	p.handle(api, http.MethodPost, "/passkey/options", p.passkeySignInOptions)
	p.handle(api, http.MethodPost, "/passkey", p.passkeySignIn)
}

func jsonAnswer(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func jsonRefusal(w http.ResponseWriter, status int, msg string) {
	jsonAnswer(w, status, map[string]string{"error": msg})
}

// checkCSRFHeader checks the X-CSRF-Token header of a script's request
// (and that passkeys are on: the public URL names a domain).
func (p *Pages) checkCSRFHeader(w http.ResponseWriter, r *http.Request) bool {
	if p.webauthn == nil {
		jsonRefusal(w, http.StatusNotFound, "Passkeys need the server's public URL to name a domain.")
		return false
	}
	if !p.csrfOK(r, r.Header.Get("X-CSRF-Token")) {
		jsonRefusal(w, http.StatusForbidden, "This page has expired. Reload it and try again.")
		return false
	}
	return true
}

func (p *Pages) passkeysOf(r *http.Request, u *accounts.User) (passkeyUser, error) {
	keys, err := p.People.Passkeys(r.Context(), u)
	return passkeyUser{u: u, keys: keys}, err
}

func (p *Pages) passkeyRegisterOptions(w http.ResponseWriter, r *http.Request) {
	if !p.checkCSRFHeader(w, r) {
		return
	}
	c := p.resolve(r)
	if c == nil || c.sess.MFAAt == nil {
		jsonRefusal(w, http.StatusUnauthorized, "Sign in with your second factor first.")
		return
	}
	pu, err := p.passkeysOf(r, c.user)
	if err != nil {
		p.jsonInternal(w, r, err)
		return
	}
	exclude := make([]protocol.CredentialDescriptor, 0, len(pu.keys))
	for _, k := range pu.keys {
		exclude = append(exclude, protocol.CredentialDescriptor{Type: protocol.PublicKeyCredentialType, CredentialID: k.ID})
	}
	opts, sd, err := p.webauthn.BeginRegistration(pu, webauthn.WithExclusions(exclude),
		webauthn.WithResidentKeyRequirement(protocol.ResidentKeyRequirementPreferred),
		webauthn.WithAuthenticatorSelection(protocol.AuthenticatorSelection{UserVerification: protocol.VerificationPreferred,
			ResidentKey: protocol.ResidentKeyRequirementPreferred}))
	if err != nil {
		p.jsonInternal(w, r, err)
		return
	}
	if err := p.putCeremony(w, r, &ceremony{Purpose: "register", TenantID: c.user.TenantID, UserID: c.user.ID, Session: *sd}); err != nil {
		p.jsonInternal(w, r, err)
		return
	}
	jsonAnswer(w, http.StatusOK, opts)
}

func (p *Pages) passkeyRegister(w http.ResponseWriter, r *http.Request) {
	if !p.checkCSRFHeader(w, r) {
		return
	}
	c := p.resolve(r)
	cer, ok := p.takeCeremony(w, r, "register")
	if c == nil || c.sess.MFAAt == nil || !ok || cer.UserID != c.user.ID || cer.TenantID != c.user.TenantID {
		jsonRefusal(w, http.StatusBadRequest, "Start adding the passkey again.")
		return
	}
	pu, err := p.passkeysOf(r, c.user)
	if err != nil {
		p.jsonInternal(w, r, err)
		return
	}
	cred, err := p.webauthn.FinishRegistration(pu, cer.Session, r)
	if err != nil {
		jsonRefusal(w, http.StatusBadRequest, "The passkey could not be verified.")
		return
	}
	k := &accounts.Passkey{ID: cred.ID, PublicKey: cred.PublicKey, AttestationType: cred.AttestationType,
		AAGUID: cred.Authenticator.AAGUID, SignCount: cred.Authenticator.SignCount,
		BackupEligible: cred.Flags.BackupEligible, BackupState: cred.Flags.BackupState,
		Name: truncateName(r.URL.Query().Get("name"))}
	for _, t := range cred.Transport {
		k.Transports = append(k.Transports, string(t))
	}
	err = p.People.AddPasskey(UserContext(r, c.user), c.user, k)
	if errors.Is(err, accounts.ErrTooManyPasskeys) {
		jsonRefusal(w, http.StatusConflict, "You have the most passkeys allowed already.")
		return
	}
	if err != nil {
		p.jsonInternal(w, r, err)
		return
	}
	jsonAnswer(w, http.StatusOK, map[string]string{"status": "added"})
}

func truncateName(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > 60 {
		s = s[:60]
	}
	if !utf8Valid(s) || logging.RedactPAN(s) != s {
		return ""
	}
	return s
}

// passkeyMFAOptions asks the signed-in user's passkeys for an assertion
// (the second factor after the password).
func (p *Pages) passkeyMFAOptions(w http.ResponseWriter, r *http.Request) {
	if !p.checkCSRFHeader(w, r) {
		return
	}
	c := p.resolve(r)
	if c == nil {
		jsonRefusal(w, http.StatusUnauthorized, "Sign in with your password first.")
		return
	}
	pu, err := p.passkeysOf(r, c.user)
	if err != nil {
		p.jsonInternal(w, r, err)
		return
	}
	if len(pu.keys) == 0 {
		jsonRefusal(w, http.StatusBadRequest, "You have no passkey yet.")
		return
	}
	opts, sd, err := p.webauthn.BeginLogin(pu)
	if err != nil {
		p.jsonInternal(w, r, err)
		return
	}
	ret := safeReturn(r.URL.Query().Get("return"), home(c.user))
	if err := p.putCeremony(w, r, &ceremony{Purpose: "mfa", TenantID: c.user.TenantID, UserID: c.user.ID, Return: ret, Session: *sd}); err != nil {
		p.jsonInternal(w, r, err)
		return
	}
	jsonAnswer(w, http.StatusOK, opts)
}

func (p *Pages) passkeyMFA(w http.ResponseWriter, r *http.Request) {
	if !p.checkCSRFHeader(w, r) {
		return
	}
	c := p.resolve(r)
	cer, ok := p.takeCeremony(w, r, "mfa")
	if c == nil || !ok || cer.UserID != c.user.ID || cer.TenantID != c.user.TenantID {
		jsonRefusal(w, http.StatusBadRequest, "Start again.")
		return
	}
	ip := clientIP(r)
	if !p.throttle.allow(ip) {
		jsonRefusal(w, http.StatusTooManyRequests, "Too many failed attempts. Try again later.")
		return
	}
	if c.user.LockedUntil != nil && time.Now().Before(*c.user.LockedUntil) {
		jsonRefusal(w, http.StatusTooManyRequests, "Too many failed attempts. Try again later.")
		return
	}
	pu, err := p.passkeysOf(r, c.user)
	if err != nil {
		p.jsonInternal(w, r, err)
		return
	}
	cred, err := p.webauthn.FinishLogin(pu, cer.Session, r)
	if err != nil || cred.Authenticator.CloneWarning {
		p.throttle.fail(ip)
		_ = p.People.PasskeyFailed(UserContext(r, c.user), c.user)
		jsonRefusal(w, http.StatusUnauthorized, "The passkey was not accepted.")
		return
	}
	if err := p.People.PasskeyUsed(UserContext(r, c.user), c.user, cred.ID, cred.Authenticator.SignCount); err != nil {
		p.jsonInternal(w, r, err)
		return
	}
	ns, err := p.People.RotateSession(UserContext(r, c.user), c.id, true)
	if err != nil {
		p.jsonInternal(w, r, err)
		return
	}
	p.setCookie(w, r, "session", ns.ID, 0)
	jsonAnswer(w, http.StatusOK, map[string]string{"redirect": cer.Return})
}

// passkeySignInOptions starts a sign-in with a passkey alone, for the
// account named by ?tenant=.
func (p *Pages) passkeySignInOptions(w http.ResponseWriter, r *http.Request) {
	if !p.checkCSRFHeader(w, r) {
		return
	}
	q := r.URL.Query()
	tenant := q.Get("tenant")
	if tenant == "" || len(tenant) > 64 {
		jsonRefusal(w, http.StatusBadRequest, "Give your account ID.")
		return
	}
	opts, sd, err := p.webauthn.BeginDiscoverableLogin(webauthn.WithUserVerification(protocol.VerificationRequired))
	if err != nil {
		p.jsonInternal(w, r, err)
		return
	}
	if err := p.putCeremony(w, r, &ceremony{Purpose: "signin", TenantID: tenant, Return: safeReturn(q.Get("return"), ""), Session: *sd}); err != nil {
		p.jsonInternal(w, r, err)
		return
	}
	jsonAnswer(w, http.StatusOK, opts)
}

func (p *Pages) passkeySignIn(w http.ResponseWriter, r *http.Request) {
	if !p.checkCSRFHeader(w, r) {
		return
	}
	cer, ok := p.takeCeremony(w, r, "signin")
	if !ok {
		jsonRefusal(w, http.StatusBadRequest, "Start again.")
		return
	}
	ip := clientIP(r)
	if !p.throttle.allow(ip) {
		jsonRefusal(w, http.StatusTooManyRequests, "Too many failed attempts. Try again later.")
		return
	}
	var found *accounts.User
	handler := func(_, userHandle []byte) (webauthn.User, error) {
		u, err := p.People.UserByID(r.Context(), cer.TenantID, string(userHandle))
		if err != nil {
			return nil, err
		}
		if u.Status != accounts.UserActive || (u.LockedUntil != nil && time.Now().Before(*u.LockedUntil)) {
			return nil, accounts.ErrBadLogin
		}
		pu, err := p.passkeysOf(r, u)
		if err != nil {
			return nil, err
		}
		found = u
		return pu, nil
	}
	// The session asked for user verification (VerificationRequired), so
	// the library refuses an assertion without the UV flag.
	_, cred, err := p.webauthn.FinishPasskeyLogin(handler, cer.Session, r)
	if err != nil || found == nil || cred.Authenticator.CloneWarning {
		p.throttle.fail(ip)
		if found != nil {
			_ = p.People.PasskeyFailed(UserContext(r, found), found)
		}
		jsonRefusal(w, http.StatusUnauthorized, "The passkey was not accepted.")
		return
	}
	if err := p.People.PasskeyUsed(UserContext(r, found), found, cred.ID, cred.Authenticator.SignCount); err != nil {
		p.jsonInternal(w, r, err)
		return
	}
	if old := p.cookie(r, "session"); old != "" {
		_ = p.People.EndSession(r.Context(), old)
	}
	ns, err := p.People.StartSession(UserContext(r, found), found, true, loginInfo(r))
	if err != nil {
		p.jsonInternal(w, r, err)
		return
	}
	p.setCookie(w, r, "session", ns.ID, 0)
	jsonAnswer(w, http.StatusOK, map[string]string{"redirect": safeReturn(cer.Return, home(found))})
}

func (p *Pages) jsonInternal(w http.ResponseWriter, r *http.Request, err error) {
	p.Log.ErrorContext(r.Context(), "passkey step failed", "err", err)
	jsonRefusal(w, http.StatusInternalServerError, "Something went wrong on our side. Try again in a moment.")
}

func (p *Pages) staticJS(w http.ResponseWriter, r *http.Request) {
	b, err := staticFS.ReadFile("static/webauthn.js")
	if err != nil {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
	w.Header().Set("Cache-Control", "public, max-age=3600")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(b)
}

package authz

// The authorization code grant, for a person in the loop: an agent pushes
// its authorization request (RFC 9126, required), the payer is sent to
// /oauth2/authorize with the request_uri, signs in and decides on the
// consent page, and the agent redeems the code with its PKCE verifier
// (S256 only). fosite parses and checks the requests (client, redirect
// URI, scopes, PKCE, state) and issues and redeems codes; the issuer keeps
// the request between /oauth2/authorize and the consent as an AuthRequest,
// so that the consent page (on another request, after sign-in) can finish
// it. Codes live 60 s, are single-use, and a second redemption revokes the
// tokens the first one issued.

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"
	"github.com/ory/fosite/handler/par"
	"github.com/ory/fosite/handler/pkce"

	"github.com/perfectpay/perfectpay/audit"
	"github.com/perfectpay/perfectpay/internal/apierr"
	"github.com/perfectpay/perfectpay/internal/ids"
	"github.com/perfectpay/perfectpay/store"
)

// Grant types of a person in the loop.
const (
	GrantAuthorizationCode = "authorization_code"
	GrantCIBA              = "urn:openid:params:grant-type:ciba"
)

// Endpoint paths of the authorization code grant and CIBA.
const (
	PathPAR         = "/oauth2/par"
	PathBCAuthorize = "/oauth2/bc-authorize"
	// PathConsent + "/" + AuthRequest.ID is the page where the payer
	// decides (served by the web package).
	PathConsent = "/consent"
)

// Token session kinds of the authorization code grant.
const (
	KindCode = "authorize_code"
	KindPKCE = "pkce"
	KindPAR  = "par"
)

// Lifetimes of the authorization code grant.
const (
	// CodeTTL is how long an authorization code may be redeemed.
	CodeTTL = 60 * time.Second
	// PARTTL is how long a pushed request_uri may be used (once).
	PARTTL = 90 * time.Second
	// AuthorizeTTL is how long the payer has to sign in and decide.
	AuthorizeTTL = 10 * time.Minute
	// parPrefix starts every request_uri (RFC 9126 §2.2).
	parPrefix = "urn:ietf:params:oauth:request_uri:"
)

// Kinds and statuses of an AuthRequest.
const (
	AuthRequestAuthorize = "authorize"
	AuthRequestCIBA      = "ciba"

	AuthPending  = "pending"
	AuthApproved = "approved"
	AuthDenied   = "denied"
	AuthConsumed = "consumed"
)

// AuthRequest is a request waiting for a payer's decision: an
// authorization code request between /oauth2/authorize and the consent
// page, or a CIBA request (its id is the auth_req_id). Status goes from
// pending to approved or denied; an approved CIBA request becomes consumed
// when its token is issued.
type AuthRequest struct {
	ID       string
	Kind     string
	TenantID string
	ClientID string
	// Payer is, for CIBA, the payer named by login_hint; for an
	// authorization code request, the payer who decided.
	Payer  string
	Status string
	// Details are the requested authorization_details (a JSON array).
	Details json.RawMessage
	// Granted is what the payer granted (a JSON array), once approved.
	Granted        json.RawMessage
	BindingMessage string
	// Data is the request as the issuer keeps it (the fosite request of
	// an authorization code request; the scopes and audience of CIBA).
	Data json.RawMessage
	// PollInterval (seconds) and LastPolledAt pace CIBA polling.
	PollInterval int
	LastPolledAt *time.Time
	CreatedAt    time.Time
	UpdatedAt    time.Time
	ExpiresAt    time.Time
}

// AuthRequestRepo stores AuthRequests.
type AuthRequestRepo interface {
	CreateAuthRequest(ctx context.Context, r *AuthRequest) error
	// GetAuthRequest returns a request by id (store.ErrNotFound); with
	// forUpdate, it stays locked until the transaction ends.
	GetAuthRequest(ctx context.Context, id string, forUpdate bool) (*AuthRequest, error)
	// UpdateAuthRequest writes r's status, payer, granted details and
	// LastPolledAt when the stored status is still from; otherwise it fails
	// with store.ErrConflict.
	UpdateAuthRequest(ctx context.Context, r *AuthRequest, from string) error
	// ListAuthRequests lists a payer's requests of tenantID in status
	// (all when ""), newest first, at most limit.
	ListAuthRequests(ctx context.Context, tenantID, payer, status string, limit int) ([]AuthRequest, error)
	// PruneAuthRequests deletes requests that expired before before.
	PruneAuthRequests(ctx context.Context, before time.Time) (int, error)
}

// --- the authorize code strategy ---

// codeStrategy makes opaque authorization codes; the store keeps only their
// keyed hash.
type codeStrategy struct{ i *Issuer }

var _ oauth2.AuthorizeCodeStrategy = codeStrategy{}

const codePrefix = "ppc_"

func (s codeStrategy) AuthorizeCodeSignature(_ context.Context, token string) string {
	return keyedHash(s.i.opt.Pepper, "authorize-code", token)
}

func (s codeStrategy) GenerateAuthorizeCode(ctx context.Context, _ fosite.Requester) (string, string, error) {
	tok := codePrefix + randomToken(32)
	return tok, s.AuthorizeCodeSignature(ctx, tok), nil
}

func (s codeStrategy) ValidateAuthorizeCode(_ context.Context, r fosite.Requester, token string) error {
	if !strings.HasPrefix(token, codePrefix) {
		return fosite.ErrInvalidTokenFormat
	}
	if exp := r.GetSession().GetExpiresAt(fosite.AuthorizeCode); exp.IsZero() || !s.i.now().Before(exp) {
		return fosite.ErrTokenExpired.WithHint("The authorization code has expired.")
	}
	return nil
}

func keyedHash(pepper []byte, label, value string) string {
	m := hmac.New(sha256.New, pepper)
	m.Write([]byte(label + "\x00"))
	m.Write([]byte(value))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// --- storage of codes, PKCE challenges and pushed requests ---

var (
	_ oauth2.AuthorizeCodeStorage = fositeStore{}
	_ pkce.PKCERequestStorage     = fositeStore{}
	_ fosite.PARStorage           = fositeStore{}
)

// storedAuthorize is an authorization request as kept in a code, PKCE or
// PAR session and in an AuthRequest.
type storedAuthorize struct {
	storedRequest
	RedirectURI   string     `json:"redirect_uri"`
	ResponseTypes []string   `json:"response_types"`
	State         string     `json:"state"`
	Form          url.Values `json:"form"`
}

// keptParams are the authorization request parameters kept with it; client
// credentials and anything else are dropped.
var keptParams = []string{"response_type", "client_id", "redirect_uri", "scope", "state", "code_challenge",
	"code_challenge_method", "authorization_details", "resource", "response_mode"}

func (s fositeStore) encodeAuthorize(r fosite.Requester) (json.RawMessage, error) {
	var sj json.RawMessage = []byte("null")
	if sess, ok := r.GetSession().(*session); ok && sess != nil {
		var err error
		if sj, err = json.Marshal(sess); err != nil {
			return nil, err
		}
	}
	form := url.Values{}
	for _, k := range keptParams {
		if v, ok := r.GetRequestForm()[k]; ok {
			form[k] = slices.Clone(v)
		}
	}
	st := storedAuthorize{storedRequest: storedRequest{
		ID: r.GetID(), RequestedAt: r.GetRequestedAt(), ClientID: r.GetClient().GetID(),
		RequestedScope: r.GetRequestedScopes(), GrantedScope: r.GetGrantedScopes(),
		RequestedAudience: r.GetRequestedAudience(), GrantedAudience: r.GetGrantedAudience(), Session: sj,
	}, Form: form}
	if ar, ok := r.(fosite.AuthorizeRequester); ok {
		if u := ar.GetRedirectURI(); u != nil {
			st.RedirectURI = u.String()
		}
		st.ResponseTypes, st.State = ar.GetResponseTypes(), ar.GetState()
	}
	return json.Marshal(st)
}

// decodeAuthorize rebuilds a stored authorization request, its session
// decoded into into (when a *session).
func (s fositeStore) decodeAuthorize(ctx context.Context, data json.RawMessage, into fosite.Session) (*fosite.AuthorizeRequest, error) {
	var st storedAuthorize
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, err
	}
	client, err := s.GetClient(ctx, st.ClientID)
	if err != nil {
		return nil, err
	}
	ar := fosite.NewAuthorizeRequest()
	ar.ID, ar.RequestedAt, ar.Client = st.ID, st.RequestedAt, client
	ar.RequestedScope, ar.GrantedScope = st.RequestedScope, st.GrantedScope
	ar.RequestedAudience, ar.GrantedAudience = st.RequestedAudience, st.GrantedAudience
	ar.Form = st.Form
	if ar.Form == nil {
		ar.Form = url.Values{}
	}
	ar.State, ar.ResponseTypes = st.State, st.ResponseTypes
	ar.ResponseMode, ar.DefaultResponseMode = fosite.ResponseModeQuery, fosite.ResponseModeQuery
	if st.RedirectURI != "" {
		if ar.RedirectURI, err = url.Parse(st.RedirectURI); err != nil {
			return nil, err
		}
	}
	if string(st.Session) != "null" && len(st.Session) > 0 {
		sess, ok := into.(*session)
		if !ok || sess == nil {
			sess = &session{}
		}
		if err := json.Unmarshal(st.Session, sess); err != nil {
			return nil, err
		}
		ar.Session = sess
	}
	return ar, nil
}

// createAuthorizeSession stores a code, PKCE or PAR session that lives
// until exp.
func (s fositeStore) createAuthorizeSession(ctx context.Context, kind, sig string, r fosite.Requester, exp time.Time) error {
	data, err := s.encodeAuthorize(r)
	if err != nil {
		return err
	}
	tenant := ""
	if c, ok := r.GetClient().(*agentClient); ok {
		tenant = c.agent.TenantID
	}
	now := s.i.stamp()
	ts := &TokenSession{Kind: kind, Signature: sig, RequestID: r.GetID(), ClientID: r.GetClient().GetID(), TenantID: tenant,
		Active: true, Data: data, CreatedAt: now, ExpiresAt: exp.UTC().Truncate(time.Microsecond)}
	return s.i.db.InTx(ctx, func(tx Tx) error { return tx.CreateTokenSession(ctx, ts) })
}

func (s fositeStore) readSession(ctx context.Context, kind, sig string) (*TokenSession, error) {
	var ts *TokenSession
	err := s.i.db.Autocommit(ctx, func(tx Tx) error {
		var err error
		ts, err = tx.GetTokenSession(ctx, kind, sig)
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		return nil, fosite.ErrNotFound
	}
	return ts, err
}

// CreateAuthorizeCodeSession stores a code. Its session says when it
// expires (CodeTTL on the issuer's clock); the row stays as long as a
// refresh token could, so that a late second redemption is still known
// as a reuse and revokes what the first one issued.
func (s fositeStore) CreateAuthorizeCodeSession(ctx context.Context, sig string, r fosite.Requester) error {
	if sess, ok := r.GetSession().(*session); ok {
		sess.SetExpiresAt(fosite.AuthorizeCode, s.i.now().Add(CodeTTL))
	}
	return s.createAuthorizeSession(ctx, KindCode, sig, r, s.i.now().Add(s.i.opt.RefreshTokenTTL))
}

// GetAuthorizeCodeSession returns a code's request; a spent code returns
// it with fosite.ErrInvalidatedAuthorizeCode.
func (s fositeStore) GetAuthorizeCodeSession(ctx context.Context, sig string, into fosite.Session) (fosite.Requester, error) {
	ts, err := s.readSession(ctx, KindCode, sig)
	if err != nil {
		return nil, err
	}
	ar, err := s.decodeAuthorize(ctx, ts.Data, into)
	if err != nil {
		return nil, err
	}
	if !ts.Active {
		return ar, fosite.ErrInvalidatedAuthorizeCode
	}
	return ar, nil
}

// InvalidateAuthorizeCodeSession spends a code: at Commit, with the
// tokens it issues, under its family's lock (see fositeStore.spend).
func (s fositeStore) InvalidateAuthorizeCodeSession(ctx context.Context, sig string) error {
	ts, err := s.readSession(ctx, KindCode, sig)
	if err != nil {
		return err
	}
	if rot := rotationFrom(ctx); rot != nil {
		rot.kind, rot.requestID, rot.sig, rot.writes = KindCode, ts.RequestID, sig, nil
		return nil
	}
	return s.spend(ctx, KindCode, ts.RequestID, sig, nil)
}

func (s fositeStore) CreatePKCERequestSession(ctx context.Context, sig string, r fosite.Requester) error {
	return s.createAuthorizeSession(ctx, KindPKCE, sig, r, s.i.now().Add(CodeTTL))
}

func (s fositeStore) GetPKCERequestSession(ctx context.Context, sig string, into fosite.Session) (fosite.Requester, error) {
	ts, err := s.readSession(ctx, KindPKCE, sig)
	if err != nil {
		return nil, err
	}
	return s.decodeAuthorize(ctx, ts.Data, into)
}

// DeletePKCERequestSession keeps the challenge: fosite deletes it before
// the code is spent, so a second request racing the first would fail on
// the missing challenge and never be seen as a reuse, leaving the first
// request's tokens alive. The code is single-use at spend; the challenge
// row goes with PruneExpired once CodeTTL has passed.
func (s fositeStore) DeletePKCERequestSession(context.Context, string) error { return nil }

func (s fositeStore) CreatePARSession(ctx context.Context, requestURI string, r fosite.AuthorizeRequester) error {
	return s.createAuthorizeSession(ctx, KindPAR, keyedHash(s.i.opt.Pepper, "request-uri", requestURI), r, s.i.now().Add(PARTTL))
}

// GetPARSession uses a request_uri up: the first call wins, a second one
// or a call after PARTTL finds nothing.
func (s fositeStore) GetPARSession(ctx context.Context, requestURI string) (fosite.AuthorizeRequester, error) {
	sig := keyedHash(s.i.opt.Pepper, "request-uri", requestURI)
	var ts *TokenSession
	err := s.i.db.InTx(ctx, func(tx Tx) error {
		var err error
		if ts, err = tx.GetTokenSession(ctx, KindPAR, sig); err != nil {
			return err
		}
		return tx.DeactivateTokenSession(ctx, KindPAR, sig)
	})
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, errors.New("unknown request_uri")
	case errors.Is(err, store.ErrConflict):
		return nil, errors.New("the request_uri was already used")
	case err != nil:
		return nil, err
	case !s.i.now().Before(ts.ExpiresAt):
		return nil, errors.New("the request_uri has expired")
	}
	return s.decodeAuthorize(ctx, ts.Data, nil)
}

// DeletePARSession does nothing: GetPARSession used the request_uri up.
func (s fositeStore) DeletePARSession(context.Context, string) error { return nil }

// --- the authorization code grant at the token endpoint ---

// codeHandler is fosite's authorization code handler plus DPoP binding and
// the check that what the code grants still stands; a code redeemed twice
// revokes what it issued (fositeStore.spend).
type codeHandler struct {
	i     *Issuer
	inner *oauth2.AuthorizeExplicitGrantHandler
}

func (h *codeHandler) CanSkipClientAuth(context.Context, fosite.AccessRequester) bool { return false }

func (h *codeHandler) CanHandleTokenEndpointRequest(ctx context.Context, ar fosite.AccessRequester) bool {
	return h.inner.CanHandleTokenEndpointRequest(ctx, ar)
}

func (h *codeHandler) HandleTokenEndpointRequest(ctx context.Context, ar fosite.AccessRequester) error {
	if !h.CanHandleTokenEndpointRequest(ctx, ar) {
		return fosite.ErrUnknownRequest
	}
	if err := h.inner.HandleTokenEndpointRequest(ctx, ar); err != nil {
		if errors.Is(err, fosite.ErrTokenExpired) {
			return fosite.ErrInvalidGrant.WithHint("The authorization code has expired.")
		}
		return err
	}
	sess := ar.GetSession().(*session)
	sess.JKT = jktFrom(ctx)
	c := ar.GetClient().(*agentClient)
	states, err := h.i.details.states(ctx, c.agent.TenantID, sess.AuthorizationDetails)
	if err != nil {
		return err
	}
	for _, st := range states {
		if !st.Active {
			return fosite.ErrInvalidGrant.WithHint("What the payer granted was revoked or has ended.")
		}
	}
	return nil
}

func (h *codeHandler) PopulateTokenEndpointResponse(ctx context.Context, ar fosite.AccessRequester, resp fosite.AccessResponder) error {
	if !h.CanHandleTokenEndpointRequest(ctx, ar) {
		return fosite.ErrUnknownRequest
	}
	if err := h.inner.PopulateTokenEndpointResponse(ctx, ar, resp); err != nil {
		if errors.Is(err, fosite.ErrInvalidatedAuthorizeCode) {
			// Another request spent the code between this one's checks and
			// its issuing: a reuse as much as a later one (fosite would
			// answer server_error and leave the first request's tokens).
			err = h.revokeSpent(ctx, ar)
		}
		if errors.Is(err, fosite.ErrInactiveToken) {
			return fosite.ErrInvalidGrant.WithHint("The authorization code was already used; the tokens issued for it are revoked.")
		}
		return err
	}
	return h.i.finishResponse(ctx, ar, resp, false)
}

// revokeSpent revokes the grant family of the code ar presents.
func (h *codeHandler) revokeSpent(ctx context.Context, ar fosite.AccessRequester) error {
	sig := codeStrategy{i: h.i}.AuthorizeCodeSignature(ctx, ar.GetRequestForm().Get("code"))
	ts, err := fositeStore{i: h.i}.readSession(ctx, KindCode, sig)
	if err != nil {
		return err
	}
	if err := h.i.revokeFamily(ctx, ts.RequestID); err != nil {
		return err
	}
	return fosite.ErrInactiveToken
}

// --- the authorization endpoint ---

// AuthorizeError is a refusal at /oauth2/authorize or /oauth2/par. When
// Redirect is set, the refusal goes back to the client there (the
// redirect URI was checked); otherwise it is shown to the person.
type AuthorizeError struct {
	Code        string
	Description string
	Redirect    string
}

func (e *AuthorizeError) Error() string { return e.Code + ": " + e.Description }

func (i *Issuer) authorizeError(ar fosite.AuthorizeRequester, err error) error {
	var rfc *fosite.RFC6749Error
	if !errors.As(err, &rfc) {
		return err
	}
	ae := &AuthorizeError{Code: rfc.ErrorField, Description: rfc.GetDescription()}
	if ar != nil && ar.IsRedirectURIValid() && ar.GetRedirectURI() != nil {
		ae.Redirect = i.redirectWith(ar.GetRedirectURI(), url.Values{"error": {ae.Code},
			"error_description": {ae.Description}, "state": {ar.GetState()}})
	}
	return ae
}

// redirectWith adds params and iss (RFC 9207) to the redirect URI's query.
func (i *Issuer) redirectWith(u *url.URL, params url.Values) string {
	c := *u
	q := c.Query()
	for k, v := range params {
		if len(v) > 0 && v[0] != "" {
			q[k] = v
		}
	}
	q.Set("iss", i.opt.Issuer)
	c.RawQuery = q.Encode()
	return c.String()
}

// PushedAuthorize serves POST /oauth2/par (RFC 9126): the agent
// authenticates and pushes its authorization request; it gets a
// request_uri valid once, for PARTTL. check, when set, validates the
// request's authorization_details (e.g. the mandate terms) first.
func (i *Issuer) PushedAuthorize(w http.ResponseWriter, r *http.Request, check func(ctx context.Context, a *Agent, details string) error) {
	ctx := r.Context()
	ar, err := i.fosite.NewPushedAuthorizeRequest(ctx, r)
	if err == nil {
		err = i.checkAuthorizeRequest(ctx, ar)
	}
	if err == nil && check != nil {
		err = check(ctx, ar.GetClient().(*agentClient).agent, ar.GetRequestForm().Get("authorization_details"))
		if desc, ok := detailRefusal(err); ok {
			err = errInvalidDetails(desc)
		}
		var inv *apierr.Invalid
		if errors.As(err, &inv) {
			err = errInvalidDetails(inv.Error())
		}
	}
	if err != nil {
		i.writePARError(ctx, w, ar, err)
		return
	}
	resp, err := i.fosite.NewPushedAuthorizeResponse(ctx, ar, &session{})
	if err != nil {
		i.writePARError(ctx, w, ar, err)
		return
	}
	c := ar.GetClient().(*agentClient)
	err = i.db.InTx(ctx, func(tx Tx) error {
		return audit.Record(audit.WithActor(ctx, agentActor(ctx, c.agent.TenantID, c.agent.ID)), tx, "authorize.pushed", c.agent.ID,
			map[string]any{"redirect_uri": ar.GetRedirectURI().String(), "scope": strings.Join(ar.GetRequestedScopes(), " ")})
	})
	if err != nil {
		i.writePARError(ctx, w, ar, err)
		return
	}
	i.fosite.WritePushedAuthorizeResponse(ctx, w, ar, resp)
}

func (i *Issuer) writePARError(ctx context.Context, w http.ResponseWriter, ar fosite.AuthorizeRequester, err error) {
	var rfc *fosite.RFC6749Error
	if !errors.As(err, &rfc) || rfc.CodeField >= 500 {
		i.log.ErrorContext(ctx, "pushed authorization request failed", "err", err)
	}
	if ar == nil {
		ar = fosite.NewAuthorizeRequest()
	}
	i.fosite.WritePushedAuthorizeError(ctx, w, ar, err)
}

// checkAuthorizeRequest is what the issuer asks of an authorization
// request beyond fosite's checks: the authorization_code grant, response
// type code in query mode, a redirect URI given and registered exactly
// (not only up to a loopback port), PKCE with S256, resource indicators
// the agent may name, and authorization_details of known types.
func (i *Issuer) checkAuthorizeRequest(ctx context.Context, ar fosite.AuthorizeRequester) error {
	c, ok := ar.GetClient().(*agentClient)
	if !ok {
		return fosite.ErrInvalidClient
	}
	form := ar.GetRequestForm()
	switch {
	case !c.GetGrantTypes().Has(GrantAuthorizationCode):
		return fosite.ErrUnauthorizedClient.WithHint("The agent is not registered for the authorization_code grant.")
	case !ar.GetResponseTypes().ExactOne("code"):
		return fosite.ErrUnsupportedResponseType.WithHint("Only response_type=code is supported.")
	case form.Get("response_mode") != "" && form.Get("response_mode") != "query":
		return fosite.ErrUnsupportedResponseMode.WithHint("Only response_mode=query is supported.")
	case form.Get("redirect_uri") == "" || !slices.Contains(c.agent.RedirectURIs, form.Get("redirect_uri")):
		return fosite.ErrInvalidRequest.WithHint("redirect_uri is required and must be one the agent registered, exactly.")
	case form.Get("code_challenge_method") != "S256":
		return fosite.ErrInvalidRequest.WithHint("PKCE is required with code_challenge_method=S256; plain is refused.")
	case len(form.Get("code_challenge")) != 43 || strings.Trim(form.Get("code_challenge"), base64URLChars) != "":
		return fosite.ErrInvalidRequest.WithHint("code_challenge must be the base64url SHA-256 of the code verifier (43 characters).")
	}
	if _, err := i.requestedTargets(asAccess(ar), c.agent); err != nil {
		return err
	}
	raw := form.Get("authorization_details")
	if raw == "" {
		return errInvalidDetails("authorization_details is required: what the payer is asked to grant.")
	}
	elems, err := i.details.parseDetails(raw)
	if err == nil {
		err = i.details.checkSingle(elems)
	}
	if desc, ok := detailRefusal(err); ok {
		return errInvalidDetails(desc)
	}
	return err
}

const base64URLChars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

// StartAuthorize serves GET /oauth2/authorize: it takes up the pushed
// request named by request_uri and keeps it as an AuthRequest for the
// consent page. Refusals are *AuthorizeError.
func (i *Issuer) StartAuthorize(ctx context.Context, r *http.Request) (*AuthRequest, error) {
	ar, err := i.fosite.NewAuthorizeRequest(ctx, r)
	if err != nil {
		return nil, i.authorizeError(ar, err)
	}
	c := ar.GetClient().(*agentClient)
	if err := i.checkAuthorizeRequest(ctx, ar); err != nil {
		return nil, i.authorizeError(ar, err)
	}
	if err := i.clientUsable(ctx, c.agent); err != nil {
		return nil, i.authorizeError(ar, err)
	}
	data, err := (fositeStore{i}).encodeAuthorize(ar)
	if err != nil {
		return nil, err
	}
	now := i.stamp()
	req := &AuthRequest{
		ID: ids.New("azr"), Kind: AuthRequestAuthorize, TenantID: c.agent.TenantID, ClientID: c.agent.ID, Status: AuthPending,
		Details: json.RawMessage(ar.GetRequestForm().Get("authorization_details")), Data: data,
		CreatedAt: now, UpdatedAt: now, ExpiresAt: now.Add(AuthorizeTTL),
	}
	err = i.db.InTx(ctx, func(tx Tx) error {
		if err := tx.CreateAuthRequest(ctx, req); err != nil {
			return err
		}
		return audit.RecordFor(audit.WithActor(ctx, agentActor(ctx, req.TenantID, req.ClientID)), tx, req.TenantID,
			"authorize.started", req.ID, map[string]any{"client_id": req.ClientID})
	})
	if err != nil {
		return nil, err
	}
	return req, nil
}

// clientUsable refuses an agent that is suspended or revoked.
func (i *Issuer) clientUsable(ctx context.Context, a *Agent) error {
	if a.Status != AgentActive {
		return fosite.ErrInvalidClient.WithHint("The agent is " + a.Status + ".")
	}
	what, err := i.revoked.check(ctx, "", a.ID, a.TenantID)
	if err != nil {
		return err
	}
	if what != "" {
		return fosite.ErrInvalidClient.WithHint("The agent's credentials were revoked (" + what + ").")
	}
	return nil
}

// GetAuthRequest returns a request of tenantID (store.ErrNotFound for
// another tenant's).
func (i *Issuer) GetAuthRequest(ctx context.Context, tenantID, id string) (*AuthRequest, error) {
	var r *AuthRequest
	err := i.db.Autocommit(ctx, func(tx Tx) error {
		var err error
		r, err = tx.GetAuthRequest(ctx, id, false)
		return err
	})
	if err != nil {
		return nil, err
	}
	if r.TenantID != tenantID {
		return nil, store.ErrNotFound
	}
	return r, nil
}

// ListAuthRequests lists a payer's pending requests (CIBA and consent).
func (i *Issuer) ListAuthRequests(ctx context.Context, tenantID, payer string, limit int) ([]AuthRequest, error) {
	var out []AuthRequest
	err := i.db.Autocommit(ctx, func(tx Tx) error {
		var err error
		out, err = tx.ListAuthRequests(ctx, tenantID, payer, AuthPending, limit)
		return err
	})
	return out, err
}

// Decide records a payer's decision on a pending request of the payer's
// tenant: approved (granted are the authorization_details granted, e.g.
// bound to the mandate the approval created) or denied. A request decides
// once: a second decision, a decision after it expired, or by a payer of
// another tenant or (CIBA) other than the one named, is refused.
func (i *Issuer) Decide(ctx context.Context, tenantID, payer, id string, approve bool, granted json.RawMessage) (*AuthRequest, error) {
	var out *AuthRequest
	err := i.db.InTx(ctx, func(tx Tx) error {
		r, err := tx.GetAuthRequest(ctx, id, true)
		if errors.Is(err, store.ErrNotFound) || (err == nil && r.TenantID != tenantID) {
			return &apierr.NotFound{Kind: "auth_request", ID: id}
		}
		if err != nil {
			return err
		}
		switch {
		case r.Status != AuthPending:
			return &apierr.Conflict{Param: "id", Code: "auth_request_" + apierr.Code(r.Status), Message: "This request was already decided."}
		case !i.now().Before(r.ExpiresAt):
			return &apierr.Conflict{Param: "id", Code: "auth_request_expired", Message: "This request has expired."}
		case r.Kind == AuthRequestCIBA && r.Payer != payer:
			return &apierr.NotFound{Kind: "auth_request", ID: id}
		}
		r.Payer, r.Status, r.UpdatedAt = payer, AuthDenied, i.stamp()
		if approve {
			r.Status, r.Granted = AuthApproved, granted
		}
		if err := tx.UpdateAuthRequest(ctx, r, AuthPending); err != nil {
			return err
		}
		out = r
		return audit.RecordFor(ctx, tx, tenantID, "authorize."+r.Status, r.ID,
			map[string]any{"kind": r.Kind, "client_id": r.ClientID, "payer": payer})
	})
	return out, err
}

// CodeRedirect issues the authorization code of an approved authorization
// request and returns where to send the payer's browser: the agent's
// redirect URI with code, state and iss (RFC 9207). A denied request's
// redirect carries error=access_denied instead.
func (i *Issuer) CodeRedirect(ctx context.Context, req *AuthRequest) (string, error) {
	if req.Kind != AuthRequestAuthorize {
		return "", errors.New("authz: not an authorization code request")
	}
	fs := fositeStore{i}
	ar, err := fs.decodeAuthorize(ctx, req.Data, nil)
	if err != nil {
		return "", err
	}
	if req.Status == AuthDenied {
		return i.redirectWith(ar.GetRedirectURI(), url.Values{"error": {"access_denied"},
			"error_description": {"The payer declined."}, "state": {ar.GetState()}}), nil
	}
	if req.Status != AuthApproved {
		return "", errors.New("authz: the request is not approved")
	}
	c := ar.GetClient().(*agentClient)
	if err := i.clientUsable(ctx, c.agent); err != nil {
		return i.redirectWith(ar.GetRedirectURI(), url.Values{"error": {"access_denied"}, //nolint:nilerr // told to the agent at its redirect URI
			"error_description": {"The agent can no longer be authorized."}, "state": {ar.GetState()}}), nil
	}
	scopes := ar.GetRequestedScopes()
	if len(scopes) == 0 {
		scopes = slices.DeleteFunc(slices.Clone(c.agent.Scopes), func(s string) bool { return s == ScopeOfflineAccess })
	}
	for _, s := range scopes {
		ar.GrantScope(s)
	}
	aud, err := i.requestedTargets(asAccess(ar), c.agent)
	if err != nil {
		return "", err
	}
	for _, a := range aud {
		ar.GrantAudience(a)
	}
	sess := &session{Subject: c.agent.ID, TenantID: c.agent.TenantID, ClientID: c.agent.ID, GrantType: GrantAuthorizationCode,
		AuthorizationDetails: req.Granted}
	resp, err := i.fosite.NewAuthorizeResponse(ctx, ar, sess)
	if err != nil {
		var rfc *fosite.RFC6749Error
		if errors.As(err, &rfc) && rfc.CodeField < 500 {
			return i.redirectWith(ar.GetRedirectURI(), url.Values{"error": {rfc.ErrorField},
				"error_description": {rfc.GetDescription()}, "state": {ar.GetState()}}), nil
		}
		return "", err
	}
	return i.redirectWith(ar.GetRedirectURI(), resp.GetParameters()), nil
}

// composeAuthorize adds the authorization code grant to fosite's
// configuration: PAR required, PKCE S256 required, codes of CodeTTL.
func (i *Issuer) composeAuthorize(cfg *fosite.Config, fs fositeStore) {
	cfg.AuthorizeCodeLifespan = CodeTTL
	cfg.EnforcePKCE = true
	cfg.EnablePKCEPlainChallengeMethod = false
	cfg.IsPushedAuthorizeEnforced = true
	cfg.PushedAuthorizeRequestURIPrefix = parPrefix
	cfg.PushedAuthorizeContextLifespan = PARTTL
	cfg.OmitRedirectScopeParam = false
	codes := codeStrategy{i}
	explicit := &oauth2.AuthorizeExplicitGrantHandler{
		AccessTokenStrategy: accessStrategy{i}, RefreshTokenStrategy: refreshStrategy{i}, AuthorizeCodeStrategy: codes,
		CoreStorage: fs, TokenRevocationStorage: fs, Config: cfg,
	}
	pk := &pkce.Handler{AuthorizeCodeStrategy: codes, Storage: fs, Config: cfg}
	cfg.AuthorizeEndpointHandlers = fosite.AuthorizeEndpointHandlers{explicit, pk}
	cfg.TokenEndpointHandlers = append(cfg.TokenEndpointHandlers, &codeHandler{i: i, inner: explicit}, pk, // reuse is detected before PKCE
		&cibaHandler{i: i})
	cfg.PushedAuthorizeEndpointHandlers = fosite.PushedAuthorizeEndpointHandlers{&par.PushedAuthorizeHandler{Storage: fs, Config: cfg}}
}

// checkPeopleInput checks what an agent registers for the grants with a
// person in the loop: redirect URIs for authorization_code (1 to 10,
// absolute, https or http on a loopback host, no fragment, matched
// exactly), and for CIBA a delivery mode (poll by default; ping needs an
// https client notification endpoint).
func checkPeopleInput(in *AgentInput) error {
	code := slices.Contains(in.GrantTypes, GrantAuthorizationCode)
	if code && len(in.RedirectURIs) == 0 {
		return inputErr("redirect_uris", "the authorization_code grant needs at least one redirect URI")
	}
	if !code && len(in.RedirectURIs) > 0 {
		return inputErr("redirect_uris", "redirect_uris are only for the authorization_code grant")
	}
	if len(in.RedirectURIs) > 10 {
		return inputErr("redirect_uris", "at most 10 redirect URIs")
	}
	for _, raw := range in.RedirectURIs {
		u, err := url.Parse(raw)
		if err != nil || !u.IsAbs() || u.Host == "" || u.Fragment != "" || strings.Contains(raw, "#") || len(raw) > 2000 {
			return inputErr("redirect_uris", "redirect URI %q must be an absolute URI without a fragment", raw)
		}
		if u.Scheme != "https" && !(u.Scheme == "http" && fosite.IsLocalhost(u)) {
			return inputErr("redirect_uris", "redirect URI %q must use https (http only on a loopback host)", raw)
		}
	}
	ciba := slices.Contains(in.GrantTypes, GrantCIBA)
	switch {
	case !ciba && (in.BackchannelMode != "" || in.BackchannelEndpoint != ""):
		return inputErr("backchannel_token_delivery_mode", "backchannel settings are only for the CIBA grant")
	case !ciba:
		return nil
	case in.BackchannelMode == "":
		in.BackchannelMode = BackchannelPoll
	}
	switch in.BackchannelMode {
	case BackchannelPoll:
		if in.BackchannelEndpoint != "" {
			return inputErr("backchannel_client_notification_endpoint", "poll mode has no client notification endpoint")
		}
	case BackchannelPing:
		u, err := url.Parse(in.BackchannelEndpoint)
		if err != nil || u.Scheme != "https" || u.Host == "" || u.Fragment != "" {
			return inputErr("backchannel_client_notification_endpoint", "ping mode needs an https client notification endpoint")
		}
	default:
		return inputErr("backchannel_token_delivery_mode", "backchannel_token_delivery_mode must be poll or ping")
	}
	return nil
}

// asAccess shows an authorization request's audience and form to checks
// written for token requests.
func asAccess(ar fosite.Requester) fosite.AccessRequester {
	return &fosite.AccessRequest{Request: fosite.Request{RequestedAudience: ar.GetRequestedAudience(), Form: ar.GetRequestForm()}}
}

// peopleMetadata adds the authorization code grant and CIBA to the
// RFC 8414 metadata.
func (i *Issuer) peopleMetadata(m map[string]any) {
	iss := i.opt.Issuer
	m["authorization_endpoint"] = iss + PathAuthorize
	m["pushed_authorization_request_endpoint"] = iss + PathPAR
	m["require_pushed_authorization_requests"] = true
	m["response_types_supported"] = []string{"code"}
	m["response_modes_supported"] = []string{"query"}
	m["authorization_response_iss_parameter_supported"] = true
	m["backchannel_authentication_endpoint"] = iss + PathBCAuthorize
	m["backchannel_token_delivery_modes_supported"] = []string{BackchannelPoll, BackchannelPing}
	m["backchannel_user_code_parameter_supported"] = false
}

// RedirectURI is where an authorization code request sends the payer's
// browser back ("" for CIBA).
func (r *AuthRequest) RedirectURI() string {
	if r.Kind != AuthRequestAuthorize {
		return ""
	}
	var st struct {
		RedirectURI string `json:"redirect_uri"`
	}
	_ = json.Unmarshal(r.Data, &st)
	return st.RedirectURI
}

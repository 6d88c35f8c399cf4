package authz

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"

	"github.com/perfectpay/perfectpay/audit"
	"github.com/perfectpay/perfectpay/store"
)

// Options configure the issuer.
type Options struct {
	// Issuer is our issuer identifier (an absolute URL, no trailing slash).
	Issuer string
	// Audience is the audience of our own API's tokens (default Issuer).
	Audience string
	// PublicURL is the externally visible base URL, for DPoP htu (default
	// Issuer).
	PublicURL string
	// Resources are the other protected resources (RFC 8707 resource
	// indicators, e.g. the MCP endpoint) tokens may be minted for, besides
	// Audience. A token names in aud exactly the resources asked for.
	Resources []string

	AccessTokenTTL  time.Duration // default 5 min, at most 15 min
	RefreshTokenTTL time.Duration // default 30 days
	// SigningAlg is ES256 (default) or EdDSA.
	SigningAlg string
	// SigningKEK (32 bytes) seals signing keys in the store.
	SigningKEK []byte
	// RotationInterval rotates the signing key when it is this old (0: never
	// automatically).
	RotationInterval time.Duration
	// MaxDelegationDepth bounds the act chain of exchanged tokens (default 3).
	MaxDelegationDepth int
	// AssertionMaxLifetime bounds exp - iat of client assertions (default 5 min).
	AssertionMaxLifetime time.Duration
	// DPoPWindow is how old a DPoP proof's iat may be (default 60 s).
	DPoPWindow time.Duration
	// DPoPNonce requires server nonces in DPoP proofs.
	DPoPNonce bool
	// Pepper keys client secret hashes, refresh token hashes and DPoP
	// nonces; every node must share it.
	Pepper []byte
	// Details is the authorization_details registry (default DetailTypes).
	Details *DetailTypeRegistry
	// PingClient delivers CIBA pings to agents' notification endpoints
	// (default: an egress client reaching public addresses only).
	PingClient *http.Client
	// CIMDClient fetches Client ID Metadata Documents (default: an egress
	// client reaching public addresses only).
	CIMDClient *http.Client

	Log *slog.Logger
	Now func() time.Time
}

// MaxAccessTokenTTL is the longest access token lifetime accepted.
const MaxAccessTokenTTL = 15 * time.Minute

// Endpoint paths.
const (
	PathToken      = "/oauth2/token"
	PathIntrospect = "/oauth2/introspect"
	PathRevoke     = "/oauth2/revoke"
	PathAuthorize  = "/oauth2/authorize"
	PathRegister   = "/oauth2/register"
	PathJWKS       = "/.well-known/jwks.json"
	PathMetadata   = "/.well-known/oauth-authorization-server"
)

// Issuer is the OAuth2 authorization server: agents, the token endpoint
// on fosite, JWT access tokens, token exchange, DPoP, introspection,
// revocation and the signing keys.
type Issuer struct {
	opt          Options
	db           store.Runner[Tx]
	log          *slog.Logger
	now          func() time.Time
	publicBase   string
	fosite       *fosite.Fosite
	fositeConfig *fosite.Config
	helper       *oauth2.HandleHelper
	keys         *keyRing
	revoked      *revocationCache
	agents       *agentCache
	cimd         cimdCache // Client ID Metadata Documents by URL
	issued       *issuance // group commit of issued tokens' records
	details      *DetailTypeRegistry
	// assertionAudiences are the aud values a client assertion may name.
	assertionAudiences []string
}

func (o *Options) withDefaults() {
	o.Issuer = strings.TrimRight(o.Issuer, "/")
	if o.Audience == "" {
		o.Audience = o.Issuer
	}
	if o.PublicURL == "" {
		o.PublicURL = o.Issuer
	}
	o.PublicURL = strings.TrimRight(o.PublicURL, "/")
	if o.AccessTokenTTL == 0 {
		o.AccessTokenTTL = 5 * time.Minute
	}
	if o.RefreshTokenTTL == 0 {
		o.RefreshTokenTTL = 30 * 24 * time.Hour
	}
	if o.SigningAlg == "" {
		o.SigningAlg = AlgES256
	}
	if o.MaxDelegationDepth == 0 {
		o.MaxDelegationDepth = 3
	}
	if o.AssertionMaxLifetime == 0 {
		o.AssertionMaxLifetime = 5 * time.Minute
	}
	if o.DPoPWindow == 0 {
		o.DPoPWindow = 60 * time.Second
	}
	if o.Details == nil {
		o.Details = DetailTypes
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// New builds the issuer on db. It loads the signing keys, creating the
// first one when the store has none this node can use.
func New(ctx context.Context, db store.Runner[Tx], opt Options) (*Issuer, error) {
	opt.withDefaults()
	switch {
	case opt.Issuer == "":
		return nil, errors.New("authz: Issuer is required")
	case opt.AccessTokenTTL < 0 || opt.AccessTokenTTL > MaxAccessTokenTTL:
		return nil, fmt.Errorf("authz: access token TTL must be at most %s", MaxAccessTokenTTL)
	case opt.SigningAlg != AlgES256 && opt.SigningAlg != AlgEdDSA:
		return nil, fmt.Errorf("authz: signing algorithm must be ES256 or EdDSA (got %q)", opt.SigningAlg)
	case len(opt.SigningKEK) != 32:
		return nil, errors.New("authz: the signing KEK must be 32 bytes")
	case len(opt.Pepper) < 32:
		return nil, errors.New("authz: the pepper must be at least 32 bytes")
	}
	i := &Issuer{opt: opt, db: db, log: opt.Log, now: opt.Now, publicBase: opt.PublicURL, details: opt.Details}
	i.assertionAudiences = []string{opt.Issuer, opt.Issuer + PathToken}
	if opt.PublicURL != opt.Issuer {
		i.assertionAudiences = append(i.assertionAudiences, opt.PublicURL+PathToken)
	}
	i.keys = &keyRing{db: db, kek: opt.SigningKEK, alg: opt.SigningAlg, rotation: opt.RotationInterval,
		grace: MaxAccessTokenTTL + 2*clockSkew, log: opt.Log, now: opt.Now}
	i.revoked = &revocationCache{db: db, now: opt.Now, ok: map[[3]string]time.Time{}}
	i.agents = &agentCache{db: db, now: opt.Now, m: map[string]agentEntry{}, byURL: i.urlAgent}
	i.issued = newIssuance(db)

	cfg := &fosite.Config{
		AccessTokenLifespan:  opt.AccessTokenTTL,
		RefreshTokenLifespan: opt.RefreshTokenTTL,
		AccessTokenIssuer:    opt.Issuer,
		TokenURL:             opt.Issuer + PathToken,
		ScopeStrategy:        fosite.ExactScopeStrategy,
		AudienceMatchingStrategy: func(allowed, requested []string) error {
			for _, a := range requested {
				if a != opt.Audience && !slices.Contains(allowed, a) {
					return fosite.ErrInvalidRequest.WithHintf("The agent may not request audience %q.", a)
				}
			}
			return nil
		},
		ClientSecretsHasher: secretHasher{pepper: opt.Pepper},
		RefreshTokenScopes:  []string{ScopeOfflineAccess},
	}
	cfg.ClientAuthenticationStrategy = i.authenticateClient
	i.fositeConfig = cfg
	fs := fositeStore{i}
	i.helper = &oauth2.HandleHelper{AccessTokenStrategy: accessStrategy{i}, AccessTokenStorage: fs, Config: cfg}
	cfg.TokenEndpointHandlers = fosite.TokenEndpointHandlers{
		&clientCredentialsHandler{i: i, inner: &oauth2.ClientCredentialsGrantHandler{HandleHelper: i.helper, Config: cfg}},
		&refreshHandler{i: i, inner: &oauth2.RefreshTokenGrantHandler{
			AccessTokenStrategy: accessStrategy{i}, RefreshTokenStrategy: refreshStrategy{i},
			TokenRevocationStorage: fs, Config: cfg,
		}},
		&exchangeHandler{i: i},
	}
	i.composeAuthorize(cfg, fs)
	i.fosite = &fosite.Fosite{Store: fs, Config: cfg}

	if _, err := i.keys.ensure(ctx, false); err != nil {
		return nil, fmt.Errorf("authz: signing keys: %w", err)
	}
	return i, nil
}

// Options returns the effective options.
func (i *Issuer) Options() Options { return i.opt }

// RotateSigningKey adds a new signing key and retires the current one,
// which keeps verifying until every token it signed has expired. It
// returns the new key id.
func (i *Issuer) RotateSigningKey(ctx context.Context) (string, error) {
	return i.keys.ensure(ctx, true)
}

// PruneSigningKeys deletes retired signing keys whose tokens have all
// expired, from the store and the JWKS, auditing each (Run does it after
// each rotation check). It returns how many went.
func (i *Issuer) PruneSigningKeys(ctx context.Context) (int, error) {
	return i.keys.prune(ctx)
}

// JWKS is the published key set (current and still-verifying keys).
func (i *Issuer) JWKS(ctx context.Context) []byte { return i.keys.jwksJSON(ctx) }

// CurrentKeyID names the key tokens are signed with now.
func (i *Issuer) CurrentKeyID() string {
	if s := i.keys.signer(context.Background()); s != nil {
		return s.kid
	}
	return ""
}

// Run does the issuer's background work until ctx ends: it listens for
// cache invalidations (when l is not nil), rotates the signing key when it
// is due, prunes retired keys whose tokens have all expired, reloads keys
// now and then, and prunes expired rows.
func (i *Issuer) Run(ctx context.Context, l Listener) {
	if l != nil {
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := l.ListenAuthz(ctx, i.onNotify); err != nil && ctx.Err() == nil {
				i.log.Error("authz: listener stopped", "err", err)
			}
		}()
		defer wg.Wait()
	}
	tick := time.Minute
	if i.opt.RotationInterval > 0 && i.opt.RotationInterval/4 < tick {
		tick = max(i.opt.RotationInterval/4, 50*time.Millisecond)
	}
	t := time.NewTicker(tick)
	defer t.Stop()
	// Rows that expired while no node ran go at the first tick.
	lastPrune := time.Time{}
	i.pruneKeys(ctx) // keys that expired while no node ran
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if kid, err := i.keys.ensure(ctx, false); err != nil && ctx.Err() == nil {
			i.log.Error("authz: signing key rotation failed", "err", err)
		} else if kid != "" {
			i.log.Info("authz: signing key rotated", "kid", kid)
		}
		i.pruneKeys(ctx)
		if time.Since(lastPrune) >= pruneEvery-tick/2 { // ticks drift by the work between them
			lastPrune = time.Now()
			if _, err := i.PruneExpired(ctx); err != nil && ctx.Err() == nil {
				i.log.Error("authz: prune failed", "err", err)
			}
		}
	}
}

// pruneEvery is how often Run evicts expired token sessions, one-time
// identifiers and token revocations. Both stores find them through an
// index on their expiry, so a prune costs what expired since the last one.
const pruneEvery = time.Minute

// PruneExpired deletes the token sessions, one-time identifiers, token
// revocations and consent or CIBA requests that expired over a minute ago
// (by the issuer's clock), and returns how many rows went. Run calls it
// every minute.
func (i *Issuer) PruneExpired(ctx context.Context) (int, error) {
	n := 0
	err := i.db.InTx(ctx, func(tx Tx) error {
		var err error
		if n, err = tx.PruneAuthz(ctx, i.now().Add(-time.Minute)); err != nil {
			return err
		}
		// And the consent and CIBA requests that were never answered in time.
		m, err := tx.PruneAuthRequests(ctx, i.now().Add(-time.Minute))
		n += m
		return err
	})
	return n, err
}

// pruneKeys is the rotation job's pruning of expired retired keys.
func (i *Issuer) pruneKeys(ctx context.Context) {
	if n, err := i.keys.prune(ctx); err != nil && ctx.Err() == nil {
		i.log.Error("authz: signing key pruning failed", "err", err)
	} else if n > 0 {
		i.log.Info("authz: retired signing keys pruned", "keys", n)
	}
}

// revokeFamily revokes every token of a refresh grant family: its refresh
// tokens stop working and its live access tokens are recorded as revoked.
func (i *Issuer) revokeFamily(ctx context.Context, requestID string) error {
	now := i.now().UTC().Truncate(time.Microsecond)
	err := i.db.InTx(ctx, func(tx Tx) error {
		// After a refresh grant's spend and new sessions, or before them
		// (see fositeStore.spend): never between.
		if err := tx.LockTokenFamily(ctx, familyLockKey(requestID)); err != nil {
			return err
		}
		live, err := tx.DeactivateTokenFamily(ctx, requestID, now)
		if err != nil {
			return err
		}
		for _, s := range live {
			exp := s.ExpiresAt
			if err := tx.Revoke(ctx, &Revocation{Kind: RevokedToken, ID: s.Signature, TenantID: s.TenantID,
				Reason: "refresh_token_reuse", RevokedAt: now, ExpiresAt: &exp}); err != nil {
				return err
			}
		}
		if err := audit.Record(ctx, tx, "token.family_revoked", requestID, map[string]any{"access_tokens": len(live)}); err != nil {
			return err
		}
		return tx.NotifyAuthz(ctx, "revocation")
	})
	if err == nil {
		// This node at once, as the other revocations do: the
		// notification reaches its listener only later.
		i.revoked.drop()
	}
	return err
}

// TokenEndpoint serves POST /oauth2/token through fosite. A DPoP proof,
// when sent, is verified first and binds the issued token to its key.
func (i *Issuer) TokenEndpoint(w http.ResponseWriter, r *http.Request) {
	ctx := withRequestURLs(r.Context(), i.RequestURLs(r))
	if i.opt.DPoPNonce {
		w.Header().Set("DPoP-Nonce", i.DPoPNonce())
	}
	if proofs := r.Header.Values("DPoP"); len(proofs) > 0 {
		if len(proofs) > 1 {
			i.writeTokenError(ctx, w, nil, &TokenError{Code: "invalid_dpop_proof", Description: "Send one DPoP proof."})
			return
		}
		p, err := i.VerifyDPoP(ctx, proofs[0], http.MethodPost, requestURLsFrom(ctx), "")
		if err != nil {
			i.writeTokenError(ctx, w, nil, err)
			return
		}
		ctx = withJKT(ctx, p.JKT)
	}
	ar, err := i.fosite.NewAccessRequest(ctx, r, &session{})
	if err != nil {
		i.writeTokenError(ctx, w, ar, err)
		return
	}
	resp, err := i.fosite.NewAccessResponse(ctx, ar)
	if err != nil {
		i.writeTokenError(ctx, w, ar, err)
		return
	}
	i.fosite.WriteAccessResponse(ctx, w, ar, resp)
}

// tokenRetryAfter is the Retry-After, in seconds, of a token request
// refused while the store is unavailable.
const tokenRetryAfter = "2"

// writeTokenError writes an RFC 6749 §5.2 error.
func (i *Issuer) writeTokenError(ctx context.Context, w http.ResponseWriter, ar fosite.AccessRequester, err error) {
	var te *TokenError
	if errors.As(err, &te) {
		err = &fosite.RFC6749Error{ErrorField: te.Code, DescriptionField: te.Description, CodeField: http.StatusBadRequest}
	} else if desc, ok := detailRefusal(err); ok {
		err = errInvalidDetails(desc)
	} else if errors.Is(err, store.ErrUnavailable) {
		// The store is away for a moment (an outage, a failover): a 503 the
		// client may retry, as the API answers store_unavailable, not a 500.
		i.log.WarnContext(ctx, "token endpoint: store unavailable", "err", err)
		w.Header().Set("Retry-After", tokenRetryAfter)
		err = &fosite.RFC6749Error{ErrorField: "temporarily_unavailable",
			DescriptionField: "The authorization server is temporarily unavailable. Retry shortly.", CodeField: http.StatusServiceUnavailable}
	}
	var rfc *fosite.RFC6749Error
	if !errors.As(err, &rfc) || (rfc.CodeField >= 500 && rfc.CodeField != http.StatusServiceUnavailable) {
		i.log.ErrorContext(ctx, "token endpoint failed", "err", err)
	}
	if ar == nil {
		ar = fosite.NewAccessRequest(&session{})
	}
	i.fosite.WriteAccessError(ctx, w, ar, err)
}

func errInvalidDetails(desc string) *fosite.RFC6749Error {
	return &fosite.RFC6749Error{ErrorField: "invalid_authorization_details", DescriptionField: desc, CodeField: http.StatusBadRequest}
}

// Scopes an agent may hold. offline_access asks for a refresh token.
const ScopeOfflineAccess = "offline_access"

// AgentScopes are the scopes agents may be registered with.
var AgentScopes = []string{"charges:read", "charges:write", "mandates:read", ScopeOfflineAccess}

// DefaultAgentScopes is what an agent registered without scopes gets.
var DefaultAgentScopes = []string{"charges:read", "charges:write", "mandates:read"}

// clientCredentialsHandler is fosite's client_credentials handler plus
// what fosite leaves to the server: granting scopes and audience,
// authorization_details, DPoP binding, and an optional refresh token.
type clientCredentialsHandler struct {
	i     *Issuer
	inner *oauth2.ClientCredentialsGrantHandler
}

func (h *clientCredentialsHandler) CanSkipClientAuth(context.Context, fosite.AccessRequester) bool {
	return false
}

func (h *clientCredentialsHandler) CanHandleTokenEndpointRequest(ctx context.Context, ar fosite.AccessRequester) bool {
	return h.inner.CanHandleTokenEndpointRequest(ctx, ar)
}

func (h *clientCredentialsHandler) HandleTokenEndpointRequest(ctx context.Context, ar fosite.AccessRequester) error {
	if !h.CanHandleTokenEndpointRequest(ctx, ar) {
		return fosite.ErrUnknownRequest
	}
	c := ar.GetClient().(*agentClient)
	if !c.GetGrantTypes().Has(GrantClientCredentials) {
		return fosite.ErrUnauthorizedClient.WithHint("The agent may not use the client_credentials grant.")
	}
	if err := h.inner.HandleTokenEndpointRequest(ctx, ar); err != nil {
		return err
	}
	scopes := ar.GetRequestedScopes()
	if len(scopes) == 0 {
		scopes = slices.DeleteFunc(slices.Clone(c.agent.Scopes), func(s string) bool { return s == ScopeOfflineAccess })
	}
	for _, s := range scopes {
		ar.GrantScope(s)
	}
	if ar.GetGrantedScopes().Has(ScopeOfflineAccess) && !c.GetGrantTypes().Has(GrantRefreshToken) {
		return fosite.ErrInvalidScope.WithHint("offline_access needs the refresh_token grant type.")
	}
	aud, err := h.i.requestedTargets(ar, c.agent)
	if err != nil {
		return err
	}
	for _, a := range aud {
		ar.GrantAudience(a)
	}
	err = h.i.fillSession(ctx, ar, c, c.agent.ID, nil, GrantClientCredentials, nil, func(dc DetailContext, raw string) (json.RawMessage, error) {
		return h.i.details.validate(ctx, dc, raw)
	})
	if err != nil {
		return err
	}
	// A grant made by token exchange keeps the act chain of its delegation,
	// so every delegator's revocation reaches this token too.
	sess := ar.GetSession().(*session)
	states, err := h.i.details.states(ctx, c.agent.TenantID, sess.AuthorizationDetails)
	if err != nil {
		return err
	}
	sub, act, err := delegation(c.agent.ID, states)
	if desc, ok := detailRefusal(err); ok {
		return errInvalidDetails(desc)
	}
	if err != nil || act == nil {
		return err
	}
	sess.Subject, sess.Act = sub, act
	// And the lineage of the exchange that made it: revoking the token it
	// was delegated from stops this one too.
	err = h.i.db.Autocommit(ctx, func(tx Tx) error {
		for _, st := range states {
			if st.Key == "" || len(st.Delegators) == 0 {
				continue
			}
			d, err := tx.GetDelegation(ctx, c.agent.TenantID, st.Key)
			if errors.Is(err, store.ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			for _, jti := range d.DelegatedFrom {
				if !slices.Contains(sess.DelegatedFrom, jti) {
					sess.DelegatedFrom = append(sess.DelegatedFrom, jti)
				}
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	// A grant whose delegator or lineage was revoked gets no new token.
	what, id, err := h.i.chainRevoked(ctx, &AccessToken{Subject: sub, ClientID: c.agent.ID, TenantID: c.agent.TenantID,
		Act: act, DelegatedFrom: sess.DelegatedFrom})
	if err != nil {
		return err
	}
	if what != "" {
		return fosite.ErrInvalidGrant.WithHintf("The grant was delegated through %s %s, which was revoked or suspended.", what, id)
	}
	return nil
}

// fillSession sets what the access token will say beyond scope and aud.
func (i *Issuer) fillSession(ctx context.Context, ar fosite.AccessRequester, c *agentClient, subject string, act *Actor,
	grant string, subj *AccessToken, details func(DetailContext, string) (json.RawMessage, error)) error {
	sess := ar.GetSession().(*session)
	sess.Subject, sess.TenantID, sess.ClientID, sess.GrantType, sess.Act = subject, c.agent.TenantID, c.agent.ID, grant, act
	sess.JKT = jktFrom(ctx)
	if subj != nil {
		sess.DelegatedFrom = append(slices.Clone(subj.DelegatedFrom), subj.JTI)
	}
	form := ar.GetRequestForm()
	if raw := form.Get("may_act"); raw != "" {
		var m Actor
		if err := json.Unmarshal([]byte(raw), &m); err != nil || m.Sub == "" || m.Act != nil {
			return fosite.ErrInvalidRequest.WithHint(`may_act must be a JSON object {"sub": "<agent id>"}.`)
		}
		sess.MayAct = &m
	}
	dc := DetailContext{Agent: c.agent, TenantID: c.agent.TenantID, GrantType: grant, Subject: subj}
	granted, err := details(dc, form.Get("authorization_details"))
	if err != nil {
		if desc, ok := detailRefusal(err); ok {
			return errInvalidDetails(desc)
		}
		return err
	}
	sess.AuthorizationDetails = granted
	exp := i.now().Add(i.opt.AccessTokenTTL)
	if dc.Subject != nil && dc.Subject.ExpiresAt().Before(exp) {
		exp = dc.Subject.ExpiresAt() // an exchanged token never outlives its subject token
	}
	sess.SetExpiresAt(fosite.AccessToken, exp)
	return nil
}

func (h *clientCredentialsHandler) PopulateTokenEndpointResponse(ctx context.Context, ar fosite.AccessRequester, resp fosite.AccessResponder) error {
	if !h.CanHandleTokenEndpointRequest(ctx, ar) {
		return fosite.ErrUnknownRequest
	}
	if err := h.inner.PopulateTokenEndpointResponse(ctx, ar, resp); err != nil {
		return err
	}
	return h.i.finishResponse(ctx, ar, resp, ar.GetGrantedScopes().Has(ScopeOfflineAccess))
}

// finishResponse adds the token type, authorization_details and, when
// asked, a refresh token to a response fosite populated.
func (i *Issuer) finishResponse(ctx context.Context, ar fosite.AccessRequester, resp fosite.AccessResponder, refresh bool) error {
	sess := ar.GetSession().(*session)
	if sess.JKT != "" {
		resp.SetTokenType("DPoP")
	} else {
		resp.SetTokenType("Bearer")
	}
	if len(sess.AuthorizationDetails) > 0 {
		resp.SetExtra("authorization_details", sess.AuthorizationDetails)
	}
	if !refresh {
		return nil
	}
	sess.SetExpiresAt(fosite.RefreshToken, i.now().Add(i.opt.RefreshTokenTTL))
	rs := refreshStrategy{i}
	tok, sig, err := rs.GenerateRefreshToken(ctx, ar)
	if err != nil {
		return err
	}
	accessSig := accessStrategy{i}.AccessTokenSignature(ctx, resp.GetAccessToken())
	if err := (fositeStore{i}).CreateRefreshTokenSession(ctx, sig, accessSig, ar.Sanitize(nil)); err != nil {
		return err
	}
	resp.SetExtra("refresh_token", tok)
	return nil
}

// refreshHandler is fosite's refresh_token handler (rotation, reuse
// detection revoking the family) plus DPoP: a token family bound to a key
// stays bound to it.
type refreshHandler struct {
	i     *Issuer
	inner *oauth2.RefreshTokenGrantHandler
}

func (h *refreshHandler) CanSkipClientAuth(context.Context, fosite.AccessRequester) bool {
	return false
}

func (h *refreshHandler) CanHandleTokenEndpointRequest(ctx context.Context, ar fosite.AccessRequester) bool {
	return h.inner.CanHandleTokenEndpointRequest(ctx, ar)
}

func (h *refreshHandler) HandleTokenEndpointRequest(ctx context.Context, ar fosite.AccessRequester) error {
	if err := h.inner.HandleTokenEndpointRequest(ctx, ar); err != nil {
		return err
	}
	sess := ar.GetSession().(*session)
	presented := jktFrom(ctx)
	switch {
	case sess.JKT != "" && presented != sess.JKT:
		return fosite.ErrInvalidGrant.WithHint("This refresh token is bound to a DPoP key: send a proof signed with it.")
	case sess.JKT == "":
		sess.JKT = presented
	}
	sess.GrantType = GrantRefreshToken
	// The family's authority must still stand: its delegators, the tokens
	// it was delegated from, and the grant behind its authorization_details.
	c := ar.GetClient().(*agentClient)
	what, id, err := h.i.chainRevoked(ctx, &AccessToken{Subject: sess.Subject, ClientID: c.agent.ID, TenantID: c.agent.TenantID,
		Act: sess.Act, DelegatedFrom: sess.DelegatedFrom})
	if err != nil {
		return err
	}
	if what != "" {
		return fosite.ErrInvalidGrant.WithHintf("The grant was delegated through %s %s, which was revoked or suspended.", what, id)
	}
	states, err := h.i.details.states(ctx, c.agent.TenantID, sess.AuthorizationDetails)
	if err != nil {
		return err
	}
	for _, st := range states {
		if !st.Active {
			return fosite.ErrInvalidGrant.WithHint("What this refresh token grants was revoked or has ended.")
		}
	}
	return nil
}

func (h *refreshHandler) PopulateTokenEndpointResponse(ctx context.Context, ar fosite.AccessRequester, resp fosite.AccessResponder) error {
	if !h.CanHandleTokenEndpointRequest(ctx, ar) {
		return fosite.ErrUnknownRequest
	}
	if err := h.inner.PopulateTokenEndpointResponse(ctx, ar, resp); err != nil {
		return err
	}
	return h.i.finishResponse(ctx, ar, resp, false)
}

package server

import (
	"context"
	"errors"
	"mime"
	"net/http"
	"strings"

	"github.com/perfectpay/perfectpay/accounts"
	"github.com/perfectpay/perfectpay/audit"
	"github.com/perfectpay/perfectpay/authz"
)

// OAuthHandlers serve the authorization server: the token endpoint (on
// fosite), introspection, revocation, the JWKS and the RFC 8414 metadata.
// OAuth endpoints answer in RFC 6749's error shape, not the API's.
type OAuthHandlers struct {
	Issuer *authz.Issuer
	s      *Server
}

// Mount adds the OAuth routes.
func (h *OAuthHandlers) Mount(api *API) {
	h.s = api.Server()
	api.Raw(http.MethodPost, authz.PathToken, http.HandlerFunc(h.token))
	api.Raw(http.MethodPost, authz.PathIntrospect, http.HandlerFunc(h.introspect))
	api.Raw(http.MethodPost, authz.PathRevoke, http.HandlerFunc(h.revoke))
	api.Handle(http.MethodGet, authz.PathJWKS, Access{Public: true}, h.jwks)
	api.Handle(http.MethodGet, authz.PathMetadata, Access{Public: true}, h.metadata)
	h.mountAuthorize(api)
}

// withRequestActor puts the request's IP and id in the audit actor, for
// entries the issuer writes before it knows who is calling.
func withRequestActor(r *http.Request) *http.Request {
	st := state(r)
	return r.WithContext(audit.WithActor(r.Context(), audit.Actor{Type: audit.ActorSystem, IP: st.ip, RequestID: st.id}))
}

func (h *OAuthHandlers) token(w http.ResponseWriter, r *http.Request) {
	h.Issuer.TokenEndpoint(w, withRequestActor(r))
}

func (h *OAuthHandlers) jwks(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Content-Type", "application/jwk-set+json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	_, err := w.Write(h.Issuer.JWKS(r.Context()))
	return err
}

func (h *OAuthHandlers) metadata(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Cache-Control", "public, max-age=3600")
	writeJSON(w, http.StatusOK, h.Issuer.Metadata())
	return nil
}

// oauthCaller authenticates an introspection or revocation call: a tenant
// API key (Bearer or Basic, needing scope) or an agent's client
// authentication. It writes the error itself and returns nil on failure.
func (h *OAuthHandlers) oauthCaller(w http.ResponseWriter, r *http.Request, scope string) (*http.Request, *authz.Caller) {
	if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct != "application/x-www-form-urlencoded" {
		h.Issuer.WriteOAuthError(w, r, authz.ErrInvalidRequest("The body must be application/x-www-form-urlencoded."))
		return nil, nil
	}
	if err := r.ParseForm(); err != nil {
		h.Issuer.WriteOAuthError(w, r, authz.ErrInvalidRequest("The form body could not be parsed."))
		return nil, nil
	}
	if scheme, cred := bearer(r); (scheme == "bearer" || scheme == "basic") && accounts.LooksLikeKey(cred) {
		ap, err := h.s.Accounts.Authenticate(r.Context(), cred)
		if errors.Is(err, accounts.ErrInvalidKey) || errors.Is(err, accounts.ErrRevokedKey) {
			w.Header().Set("WWW-Authenticate", `Basic realm="perfectpay"`)
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_client", "error_description": "Invalid or revoked API key."})
			return nil, nil
		}
		if err != nil {
			h.s.writeError(w, r, err)
			return nil, nil
		}
		p := &Principal{TenantID: ap.Tenant.ID, CredentialID: ap.Key.ID, ActorType: audit.ActorAPIKey, Key: ap, Scopes: ap.HasScope}
		r = setPrincipal(r, p)
		if !ap.HasScope(scope) {
			writeJSON(w, http.StatusForbidden, map[string]string{"error": "insufficient_scope", "error_description": "The API key needs scope " + scope + "."})
			return nil, nil
		}
		return r, &authz.Caller{TenantID: ap.Tenant.ID}
	}
	a, err := h.Issuer.AuthenticateAgent(r, r.PostForm)
	if err != nil {
		h.Issuer.WriteOAuthError(w, r, err)
		return nil, nil
	}
	r = setPrincipal(r, &Principal{TenantID: a.TenantID, CredentialID: a.ID, ActorType: audit.ActorAgent})
	return r, &authz.Caller{TenantID: a.TenantID, AgentID: a.ID}
}

func (h *OAuthHandlers) introspect(w http.ResponseWriter, r *http.Request) {
	r, caller := h.oauthCaller(w, withRequestActor(r), "agents:read")
	if caller == nil {
		return
	}
	tok := r.PostForm.Get("token")
	if tok == "" {
		h.Issuer.WriteOAuthError(w, r, authz.ErrInvalidRequest("token is required."))
		return
	}
	out, err := h.Issuer.Introspect(r.Context(), *caller, tok, r.PostForm.Get("token_type_hint"))
	if err != nil {
		h.s.writeError(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, out)
}

func (h *OAuthHandlers) revoke(w http.ResponseWriter, r *http.Request) {
	r, caller := h.oauthCaller(w, withRequestActor(r), "agents:write")
	if caller == nil {
		return
	}
	tok := r.PostForm.Get("token")
	if tok == "" {
		h.Issuer.WriteOAuthError(w, r, authz.ErrInvalidRequest("token is required."))
		return
	}
	if err := h.Issuer.RevokeToken(r.Context(), *caller, tok, r.PostForm.Get("token_type_hint")); err != nil {
		h.s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusOK)
}

// agentAuthenticator verifies agents' access tokens for routes that accept
// them (Access{Agent: true}).
type agentAuthenticator struct {
	iss *authz.Issuer
	// resource, when set, is the protected resource (other than the API)
	// the token must name in aud.
	resource string
}

// NewAgentAuthenticator returns the AgentAuthenticator backed by the
// issuer: it verifies the JWT access token (and, for DPoP-bound tokens or
// the DPoP scheme, the DPoP proof) and returns a principal whose Agent is
// the token's verified claims (*authz.AccessToken).
func NewAgentAuthenticator(iss *authz.Issuer) AgentAuthenticator { return agentAuthenticator{iss: iss} }

func (a agentAuthenticator) AuthenticateAgent(r *http.Request, scheme, token string) (*Principal, error) {
	verify := a.iss.VerifyRequest
	if a.resource != "" {
		verify = func(ctx context.Context, r *http.Request, scheme, token string) (*authz.AccessToken, error) {
			return a.iss.VerifyRequestFor(ctx, r, scheme, token, a.resource)
		}
	}
	at, err := verify(r.Context(), r, scheme, token)
	var te *authz.TokenError
	if errors.As(err, &te) {
		if te.Revoked != "" {
			// Revocation is a refusal of a known credential: a permission
			// error naming what was revoked, as on the charge transaction.
			code := te.Revoked + "_revoked"
			if te.Suspended {
				code = te.Revoked + "_suspended"
			}
			return nil, Errorf(http.StatusForbidden, TypePermission, code, "", "%s", te.Description)
		}
		e := Errorf(http.StatusUnauthorized, TypeAuthentication, te.Code, "", "%s", te.Description)
		// RFC 6750 §3 and RFC 9449 §7.1: say which scheme and why; when a
		// nonce is missing (RFC 9449 §9), hand out the current one.
		challenge := "Bearer"
		if scheme == "dpop" || r.Header.Get("DPoP") != "" {
			challenge = `DPoP algs="` + strings.Join(authz.DPoPAlgs(), " ") + `"`
		}
		e.Header = http.Header{"Www-Authenticate": {challenge + `, error="` + te.Code + `"`}}
		if te.Code == "use_dpop_nonce" {
			e.Header.Set("DPoP-Nonce", a.iss.DPoPNonce())
		}
		return nil, e
	}
	if err != nil {
		return nil, err
	}
	return &Principal{
		TenantID: at.TenantID, CredentialID: at.ClientID, ActorType: audit.ActorAgent,
		Scopes: at.HasScope, Agent: at,
	}, nil
}

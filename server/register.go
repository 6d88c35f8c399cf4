package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"mime"
	"net/http"
	"strings"

	"github.com/perfectpay/perfectpay/accounts"
	"github.com/perfectpay/perfectpay/audit"
	"github.com/perfectpay/perfectpay/authz"
	"github.com/perfectpay/perfectpay/internal/apierr"
)

// ScopeRegister is the scope of a tenant's initial access token for
// dynamic client registration: a restricted key holding it may register
// agents of its tenant at /oauth2/register and do nothing else.
const ScopeRegister = "agents:register"

// RegistrationHandlers serve RFC 7591 dynamic client registration, for
// agents (MCP clients among them) that register themselves. Registration
// is open only to the bearer of an initial access token the tenant issued
// (a restricted key with agents:register, or a secret key): the agent is
// registered in that tenant, exactly as POST /v1/agents would, audited.
// Errors take RFC 7591 §3.2.2's shape.
type RegistrationHandlers struct {
	Issuer *authz.Issuer
	s      *Server
}

// Mount adds the registration endpoint.
func (h *RegistrationHandlers) Mount(api *API) {
	h.s = api.Server()
	api.Raw(http.MethodPost, authz.PathRegister, http.HandlerFunc(h.register))
}

// registration is the client metadata we take (RFC 7591 §2).
type registration struct {
	ClientName              string          `json:"client_name"`
	TokenEndpointAuthMethod string          `json:"token_endpoint_auth_method"`
	GrantTypes              []string        `json:"grant_types"`
	ResponseTypes           []string        `json:"response_types"`
	Scope                   string          `json:"scope"`
	RedirectURIs            []string        `json:"redirect_uris"`
	JWKS                    json.RawMessage `json:"jwks"`
	JWKSURI                 string          `json:"jwks_uri"`
}

func (h *RegistrationHandlers) fail(w http.ResponseWriter, status int, code, desc string) {
	w.Header().Set("Cache-Control", "no-store")
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
	}
	writeJSON(w, status, map[string]string{"error": code, "error_description": desc})
}

func (h *RegistrationHandlers) register(w http.ResponseWriter, r *http.Request) {
	scheme, cred := bearer(r)
	if scheme != "bearer" || !accounts.LooksLikeKey(cred) {
		h.fail(w, http.StatusUnauthorized, "invalid_token", "Registration needs the initial access token your tenant issued (Authorization: Bearer rk_…).")
		return
	}
	ap, err := h.s.Accounts.Authenticate(r.Context(), cred)
	switch {
	case errors.Is(err, accounts.ErrInvalidKey), errors.Is(err, accounts.ErrRevokedKey):
		h.fail(w, http.StatusUnauthorized, "invalid_token", "The initial access token is not valid.")
		return
	case err != nil:
		h.s.writeError(w, r, err)
		return
	}
	p := &Principal{TenantID: ap.Tenant.ID, CredentialID: ap.Key.ID, ActorType: audit.ActorAPIKey, Key: ap, Scopes: ap.HasScope}
	r = setPrincipal(r, p)
	if !ap.HasScope(ScopeRegister) {
		h.fail(w, http.StatusForbidden, "insufficient_scope", "The token may not register clients (it lacks "+ScopeRegister+").")
		return
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		h.fail(w, http.StatusBadRequest, "invalid_client_metadata", "Send the client metadata as application/json.")
		return
	}
	b, err := readBody(r)
	if err != nil {
		h.fail(w, http.StatusBadRequest, "invalid_client_metadata", "The body could not be read.")
		return
	}
	if param, ok := panString(b); ok {
		h.fail(w, http.StatusBadRequest, "invalid_client_metadata", orBody(param)+" holds what looks like a card number.")
		return
	}
	var m registration
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&m); err != nil {
		h.fail(w, http.StatusBadRequest, "invalid_client_metadata", "The client metadata is not a JSON object of the expected shape.")
		return
	}
	if m.JWKSURI != "" {
		h.fail(w, http.StatusBadRequest, "invalid_client_metadata", "jwks_uri is not supported: send the public keys as jwks.")
		return
	}
	for _, rt := range m.ResponseTypes {
		if rt != "code" {
			h.fail(w, http.StatusBadRequest, "invalid_client_metadata", "response_types may only hold code.")
			return
		}
	}
	if string(m.JWKS) == "null" {
		m.JWKS = nil
	}
	in := authz.AgentInput{Name: m.ClientName, AuthMethod: m.TokenEndpointAuthMethod, JWKS: m.JWKS,
		GrantTypes: m.GrantTypes, Scopes: strings.Fields(m.Scope), RedirectURIs: m.RedirectURIs}
	if in.AuthMethod == "" {
		// RFC 7591 §2's default, as far as we support it.
		in.AuthMethod = authz.AuthClientSecretBasic
		if len(in.JWKS) > 0 {
			in.AuthMethod = authz.AuthPrivateKeyJWT
		}
	}
	a, secret, err := h.Issuer.CreateAgent(r.Context(), p.TenantID, in)
	var inv *apierr.Invalid
	switch {
	case errors.As(err, &inv):
		code := "invalid_client_metadata"
		if inv.Param == "redirect_uris" {
			code = "invalid_redirect_uri"
		}
		h.fail(w, http.StatusBadRequest, code, inv.Error())
		return
	case err != nil:
		h.s.writeError(w, r, err)
		return
	}
	out := map[string]any{
		"client_id": a.ID, "client_id_issued_at": a.CreatedAt.Unix(), "client_name": a.Name,
		"token_endpoint_auth_method": a.AuthMethod, "grant_types": a.GrantTypes, "scope": strings.Join(a.Scopes, " "),
	}
	if len(a.RedirectURIs) > 0 {
		out["redirect_uris"] = a.RedirectURIs
	}
	if len(a.JWKS) > 0 {
		out["jwks"] = a.JWKS
	}
	if secret != "" {
		out["client_secret"] = secret
		out["client_secret_expires_at"] = 0
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusCreated, out)
}

package server

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/perfectpay/perfectpay/authz"
	"github.com/perfectpay/perfectpay/store"
)

// AgentHandlers serve /v1/agents: a tenant's agents, the OAuth2 clients
// that get access tokens at /oauth2/token.
type AgentHandlers struct {
	Issuer *authz.Issuer
}

// Mount adds the agent routes (tenant API keys only).
func (h *AgentHandlers) Mount(api *API) {
	api.Handle(http.MethodPost, "/v1/agents", Access{Scope: "agents:write"}, h.create)
	api.Handle(http.MethodGet, "/v1/agents", Access{Scope: "agents:read"}, h.list)
	api.Handle(http.MethodGet, "/v1/agents/{id}", Access{Scope: "agents:read"}, h.get)
	api.Handle(http.MethodPost, "/v1/agents/{id}/keys", Access{Scope: "agents:write"}, h.replaceKeys)
	api.Handle(http.MethodPost, "/v1/agents/{id}/suspend", Access{Scope: "agents:write"}, h.action(h.Issuer.SuspendAgent))
	api.Handle(http.MethodPost, "/v1/agents/{id}/resume", Access{Scope: "agents:write"}, h.action(h.Issuer.ResumeAgent))
	api.Handle(http.MethodPost, "/v1/agents/{id}/revoke", Access{Scope: "agents:write"}, h.action(h.Issuer.RevokeAgent))
}

// agentView is the API representation of an agent; client_secret appears
// only in the response that generated it.
type agentView struct {
	ID           string          `json:"id"`
	Object       string          `json:"object"`
	ClientID     string          `json:"client_id"`
	Name         string          `json:"name"`
	Status       string          `json:"status"`
	AuthMethod   string          `json:"token_endpoint_auth_method"`
	JWKS         json.RawMessage `json:"jwks,omitempty"`
	GrantTypes   []string        `json:"grant_types"`
	Scopes       []string        `json:"scopes"`
	Audiences    []string        `json:"audiences"`
	RedirectURIs []string        `json:"redirect_uris"`
	// CIBA delivery (RFC names), present for agents of the CIBA grant.
	BackchannelMode     string     `json:"backchannel_token_delivery_mode,omitempty"`
	BackchannelEndpoint string     `json:"backchannel_client_notification_endpoint,omitempty"`
	Created             time.Time  `json:"created"`
	Updated             time.Time  `json:"updated"`
	SuspendedAt         *time.Time `json:"suspended_at"`
	RevokedAt           *time.Time `json:"revoked_at"`
	ClientSecret        string     `json:"client_secret,omitempty"`
}

func viewAgent(a *authz.Agent, secret string) agentView {
	return agentView{
		ID: a.ID, Object: "agent", ClientID: a.ID, Name: a.Name, Status: a.Status, AuthMethod: a.AuthMethod,
		JWKS: a.JWKS, GrantTypes: a.GrantTypes, Scopes: a.Scopes, Audiences: a.Audiences, Created: a.CreatedAt,
		Updated: a.UpdatedAt, SuspendedAt: a.SuspendedAt, RevokedAt: a.RevokedAt, ClientSecret: secret,
		RedirectURIs: a.RedirectURIs, BackchannelMode: a.BackchannelMode, BackchannelEndpoint: a.BackchannelEndpoint,
	}
}

type createAgentRequest struct {
	Name       string          `json:"name"`
	AuthMethod string          `json:"token_endpoint_auth_method"`
	JWKS       json.RawMessage `json:"jwks"`
	GrantTypes []string        `json:"grant_types"`
	Scopes     []string        `json:"scopes"`
	Audiences  []string        `json:"audiences"`
	// RedirectURIs (authorization_code) and the CIBA delivery settings.
	RedirectURIs        []string `json:"redirect_uris"`
	BackchannelMode     string   `json:"backchannel_token_delivery_mode"`
	BackchannelEndpoint string   `json:"backchannel_client_notification_endpoint"`
}

// agentError maps the issuer's refusals to API errors.
func agentError(err error, id string) error {
	switch {
	case errors.Is(err, authz.ErrAgentRevoked):
		return Errorf(http.StatusConflict, TypeInvalidRequest, "agent_revoked", "id", "The agent %s is revoked.", id)
	case errors.Is(err, store.ErrNotFound):
		return NotFound("agent", id)
	}
	return err
}

func (h *AgentHandlers) create(w http.ResponseWriter, r *http.Request) error {
	var req createAgentRequest
	if err := DecodeJSON(r, &req); err != nil {
		return err
	}
	if string(req.JWKS) == "null" {
		req.JWKS = nil
	}
	a, secret, err := h.Issuer.CreateAgent(r.Context(), PrincipalFrom(r).TenantID, authz.AgentInput{
		Name: req.Name, AuthMethod: req.AuthMethod, JWKS: req.JWKS, GrantTypes: req.GrantTypes,
		Scopes: req.Scopes, Audiences: req.Audiences,
		RedirectURIs: req.RedirectURIs, BackchannelMode: req.BackchannelMode, BackchannelEndpoint: req.BackchannelEndpoint,
	})
	if err != nil {
		return agentError(err, "")
	}
	ReplayAs(r, viewAgent(a, ""))
	writeJSON(w, http.StatusCreated, viewAgent(a, secret))
	return nil
}

func (h *AgentHandlers) list(w http.ResponseWriter, r *http.Request) error {
	pg, err := listPage(r)
	if err != nil {
		return err
	}
	tenant := PrincipalFrom(r).TenantID
	if pg.StartingAfter != "" {
		if _, err := h.Issuer.GetAgent(r.Context(), tenant, pg.StartingAfter); err != nil {
			return agentError(err, pg.StartingAfter)
		}
	}
	agents, more, err := h.Issuer.ListAgents(r.Context(), tenant, pg)
	if err != nil {
		return err
	}
	writeList(w, agents, func(a *authz.Agent) agentView { return viewAgent(a, "") }, more)
	return nil
}

func (h *AgentHandlers) get(w http.ResponseWriter, r *http.Request) error {
	id := agentPathID(r)
	a, err := h.Issuer.GetAgent(r.Context(), PrincipalFrom(r).TenantID, id)
	if err != nil {
		return agentError(err, id)
	}
	writeJSON(w, http.StatusOK, viewAgent(a, ""))
	return nil
}

type replaceKeysRequest struct {
	JWKS json.RawMessage `json:"jwks"`
}

// replaceKeys sets a new JWKS (private_key_jwt) or generates a new secret
// (client_secret_basic, returned once).
func (h *AgentHandlers) replaceKeys(w http.ResponseWriter, r *http.Request) error {
	var req replaceKeysRequest
	if err := DecodeJSON(r, &req); err != nil {
		return err
	}
	if string(req.JWKS) == "null" {
		req.JWKS = nil
	}
	id := agentPathID(r)
	a, secret, err := h.Issuer.ReplaceKeys(r.Context(), PrincipalFrom(r).TenantID, id, req.JWKS)
	if err != nil {
		return agentError(err, id)
	}
	ReplayAs(r, viewAgent(a, ""))
	writeJSON(w, http.StatusOK, viewAgent(a, secret))
	return nil
}

func (h *AgentHandlers) action(fn func(ctx context.Context, tenantID, id string) (*authz.Agent, error)) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		if err := DecodeJSON(r, &struct{}{}); err != nil {
			return err
		}
		id := agentPathID(r)
		a, err := fn(r.Context(), PrincipalFrom(r).TenantID, id)
		if err != nil {
			return agentError(err, id)
		}
		writeJSON(w, http.StatusOK, viewAgent(a, ""))
		return nil
	}
}

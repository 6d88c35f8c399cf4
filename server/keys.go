package server

import (
	"errors"
	"net/http"
	"time"

	"github.com/gorilla/mux"

	"github.com/perfectpay/perfectpay/accounts"
	"github.com/perfectpay/perfectpay/internal/apierr"
	"github.com/perfectpay/perfectpay/store"
)

// keyHandlers serve the tenant and its API keys.
type keyHandlers struct{ s *Server }

func (h *keyHandlers) Mount(api *API) {
	api.Handle(http.MethodGet, "/v1/tenant", Access{Scope: ""}, h.tenant)
	api.Handle(http.MethodGet, "/v1/api_keys", Access{Scope: "keys:read"}, h.list)
	api.Handle(http.MethodPost, "/v1/api_keys", Access{Scope: "keys:write"}, h.create)
	api.Handle(http.MethodGet, "/v1/api_keys/{id}", Access{Scope: "keys:read"}, h.get)
	api.Handle(http.MethodPost, "/v1/api_keys/{id}/roll", Access{Scope: "keys:write"}, h.roll)
	api.Handle(http.MethodPost, "/v1/api_keys/{id}/revoke", Access{Scope: "keys:write"}, h.revoke)
}

// keyView is the API representation of a key; the secret appears only in
// the response that created it.
type keyView struct {
	ID        string     `json:"id"`
	Object    string     `json:"object"`
	Type      string     `json:"type"`
	Mode      string     `json:"mode"`
	Name      string     `json:"name"`
	Redacted  string     `json:"redacted"`
	Scopes    []string   `json:"scopes,omitempty"`
	Created   time.Time  `json:"created"`
	ExpiresAt *time.Time `json:"expires_at"`
	RevokedAt *time.Time `json:"revoked_at"`
	RolledTo  string     `json:"rolled_to,omitempty"`
	Secret    string     `json:"secret,omitempty"`
}

func viewKey(k *accounts.APIKey, secret string) keyView {
	return keyView{
		ID: k.ID, Object: "api_key", Type: k.Kind, Mode: k.Mode, Name: k.Name,
		Redacted: k.Prefix + "…" + k.Last4, Scopes: k.Scopes, Created: k.CreatedAt,
		ExpiresAt: k.ExpiresAt, RevokedAt: k.RevokedAt, RolledTo: k.RolledTo, Secret: secret,
	}
}

func (h *keyHandlers) tenant(w http.ResponseWriter, r *http.Request) error {
	p := PrincipalFrom(r)
	if p.Key == nil {
		return Errorf(http.StatusForbidden, TypePermission, "api_key_required", "", "This endpoint needs an API key.")
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"id": p.Key.Tenant.ID, "object": "tenant", "name": p.Key.Tenant.Name,
		"status": p.Key.Tenant.Status, "created": p.Key.Tenant.CreatedAt, "mode": p.Key.Key.Mode,
	})
	return nil
}

// callerKey is the API key behind the request: keys are read only with a
// key, and only those of its own mode.
func callerKey(r *http.Request) (*accounts.APIKey, error) {
	p := PrincipalFrom(r)
	if p.Key == nil {
		return nil, Errorf(http.StatusForbidden, TypePermission, "api_key_required", "", "This endpoint needs an API key.")
	}
	return p.Key.Key, nil
}

func (h *keyHandlers) list(w http.ResponseWriter, r *http.Request) error {
	caller, err := callerKey(r)
	if err != nil {
		return err
	}
	keys, err := h.s.Accounts.ListKeys(r.Context(), caller)
	if err != nil {
		return err
	}
	out := make([]keyView, 0, len(keys))
	for i := range keys {
		out = append(out, viewKey(&keys[i], ""))
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": out})
	return nil
}

func (h *keyHandlers) get(w http.ResponseWriter, r *http.Request) error {
	id := mux.Vars(r)["id"]
	caller, err := callerKey(r)
	if err != nil {
		return err
	}
	k, err := h.s.Accounts.GetKey(r.Context(), caller, id)
	if errors.Is(err, store.ErrNotFound) {
		return NotFound("api_key", id)
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, viewKey(k, ""))
	return nil
}

type createKeyRequest struct {
	Type   string   `json:"type"`
	Mode   string   `json:"mode"`
	Name   string   `json:"name"`
	Scopes []string `json:"scopes"`
}

func (h *keyHandlers) create(w http.ResponseWriter, r *http.Request) error {
	var req createKeyRequest
	if err := DecodeJSON(r, &req); err != nil {
		return err
	}
	p := PrincipalFrom(r)
	nk, err := h.s.Accounts.CreateKey(r.Context(), p.Key.Key, accounts.KeyRequest{Kind: req.Type, Mode: req.Mode, Name: req.Name, Scopes: req.Scopes})
	if err != nil {
		return keyError(err, "")
	}
	ReplayAs(r, viewKey(nk.Key, ""))
	writeJSON(w, http.StatusCreated, viewKey(nk.Key, nk.Secret))
	return nil
}

type rollKeyRequest struct {
	// ExpiresIn is how long the old key keeps working, in seconds
	// (default 24 h, 0 stops it at once, at most 7 days).
	ExpiresIn *int64 `json:"expires_in"`
}

func (h *keyHandlers) roll(w http.ResponseWriter, r *http.Request) error {
	var req rollKeyRequest
	if err := DecodeJSON(r, &req); err != nil {
		return err
	}
	overlap := 24 * time.Hour
	if req.ExpiresIn != nil {
		if *req.ExpiresIn < 0 || *req.ExpiresIn > 7*24*3600 {
			return BadRequest(apierr.ParameterInvalid, "expires_in", "expires_in must be between 0 and 604800 seconds.")
		}
		overlap = time.Duration(*req.ExpiresIn) * time.Second
	}
	id := mux.Vars(r)["id"]
	nk, err := h.s.Accounts.RollKey(r.Context(), PrincipalFrom(r).Key.Key, id, overlap)
	if err != nil {
		return keyError(err, id)
	}
	ReplayAs(r, viewKey(nk.Key, ""))
	writeJSON(w, http.StatusCreated, viewKey(nk.Key, nk.Secret))
	return nil
}

func (h *keyHandlers) revoke(w http.ResponseWriter, r *http.Request) error {
	if err := DecodeJSON(r, &struct{}{}); err != nil {
		return err
	}
	id := mux.Vars(r)["id"]
	k, err := h.s.Accounts.RevokeKey(r.Context(), PrincipalFrom(r).Key.Key, id)
	if err != nil {
		return keyError(err, id)
	}
	writeJSON(w, http.StatusOK, viewKey(k, ""))
	return nil
}

// keyError maps the accounts domain's refusals of a key request (id is the
// path's key id, if any) to API errors; the rules themselves live in
// accounts.
func keyError(err error, id string) error {
	switch {
	case errors.Is(err, store.ErrNotFound) && id != "":
		return NotFound("api_key", id)
	case errors.Is(err, accounts.ErrTenantRevoked): // an ErrRevokedKey too: first
		return Errorf(http.StatusForbidden, TypePermission, "tenant_revoked", "", "This tenant was revoked.")
	case errors.Is(err, accounts.ErrRevokedKey):
		return Errorf(http.StatusUnauthorized, TypeAuthentication, "api_key_revoked", "", "This API key was revoked or has expired.")
	}
	return err
}

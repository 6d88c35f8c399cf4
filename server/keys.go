package server

import (
	"errors"
	"net/http"
	"slices"
	"time"

	"github.com/gorilla/mux"

	"github.com/perfectpay/perfectpay/accounts"
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

func (h *keyHandlers) list(w http.ResponseWriter, r *http.Request) error {
	keys, err := h.s.Accounts.ListKeys(r.Context(), PrincipalFrom(r).TenantID)
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
	k, err := h.s.Accounts.GetKey(r.Context(), PrincipalFrom(r).TenantID, id)
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
	if req.Mode == "" {
		req.Mode = p.Key.Key.Mode
	}
	switch {
	case !slices.Contains([]string{accounts.KindSecret, accounts.KindPublishable, accounts.KindRestricted}, req.Type):
		return BadRequest("parameter_invalid", "type", "type must be one of secret, publishable, restricted.")
	case req.Mode != accounts.ModeTest && req.Mode != accounts.ModeLive:
		return BadRequest("parameter_invalid", "mode", "mode must be test or live.")
	case len(req.Name) > 100:
		return BadRequest("parameter_invalid", "name", "name is longer than 100 characters.")
	case req.Type == accounts.KindRestricted && len(req.Scopes) == 0:
		return BadRequest("parameter_missing", "scopes", "A restricted key needs at least one scope.")
	case req.Type != accounts.KindRestricted && len(req.Scopes) > 0:
		return BadRequest("parameter_invalid", "scopes", "Only restricted keys carry scopes.")
	}
	if err := notMorePowerful(p, req.Type, req.Scopes, "type", "scopes"); err != nil {
		return err
	}
	nk, err := h.s.Accounts.CreateKey(r.Context(), p.TenantID, req.Type, req.Mode, req.Name, req.Scopes)
	if errors.Is(err, accounts.ErrInvalidScope) {
		return BadRequest("parameter_invalid", "scopes", "%s. Known scopes: %v.", err.Error(), accounts.Scopes)
	}
	if err != nil {
		return err
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
			return BadRequest("parameter_invalid", "expires_in", "expires_in must be between 0 and 604800 seconds.")
		}
		overlap = time.Duration(*req.ExpiresIn) * time.Second
	}
	id := mux.Vars(r)["id"]
	p := PrincipalFrom(r)
	// Rolling hands out the replacement's secret.
	if err := h.mayTouch(r, p, id); err != nil {
		return err
	}
	nk, err := h.s.Accounts.RollKey(r.Context(), p.TenantID, id, overlap)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return NotFound("api_key", id)
	case errors.Is(err, store.ErrConflict):
		return Errorf(http.StatusBadRequest, TypeInvalidRequest, "api_key_not_active", "id", "The key %s is revoked, expired or already rolled.", id)
	case err != nil:
		return err
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
	p := PrincipalFrom(r)
	if err := h.mayTouch(r, p, id); err != nil {
		return err
	}
	k, err := h.s.Accounts.RevokeKey(r.Context(), p.TenantID, id)
	if errors.Is(err, store.ErrNotFound) {
		return NotFound("api_key", id)
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, viewKey(k, ""))
	return nil
}

// notMorePowerful refuses, for a restricted caller, a key of kind with
// scopes that the caller itself does not hold: a restricted key cannot
// obtain (create or roll) a key more powerful than itself.
// mayTouch refuses a restricted key acting on (rolling, revoking) a key
// more powerful than itself; other keys may touch any key of the tenant.
func (h *keyHandlers) mayTouch(r *http.Request, p *Principal, id string) error {
	if p.Key.Key.Kind != accounts.KindRestricted {
		return nil
	}
	target, err := h.s.Accounts.GetKey(r.Context(), p.TenantID, id)
	if errors.Is(err, store.ErrNotFound) {
		return NotFound("api_key", id)
	}
	if err != nil {
		return err
	}
	return notMorePowerful(p, target.Kind, target.Scopes, "id", "id")
}

func notMorePowerful(p *Principal, kind string, scopes []string, kindParam, scopesParam string) error {
	if p.Key.Key.Kind != accounts.KindRestricted {
		return nil
	}
	if kind == accounts.KindSecret {
		return Errorf(http.StatusForbidden, TypePermission, "insufficient_scope", kindParam, "A restricted key cannot obtain a secret key.")
	}
	for _, sc := range scopes {
		if !p.Key.HasScope(sc) {
			return Errorf(http.StatusForbidden, TypePermission, "insufficient_scope", scopesParam, "A restricted key cannot obtain a key with scope %s it does not hold.", sc)
		}
	}
	return nil
}

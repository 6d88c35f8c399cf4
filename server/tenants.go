package server

import (
	"errors"
	"net/http"

	"github.com/gorilla/mux"

	"github.com/perfectpay/perfectpay/audit"
	"github.com/perfectpay/perfectpay/store"
)

// operatorActor is how the platform operator appears in the audit trail.
const operatorActor = "platform_operator"

// tenantHandlers serve the platform operator's endpoints. The operator
// authenticates with the bearer token whose hash is platform.operator_key
// (compared in constant time); no API key reaches these routes.
type tenantHandlers struct{ s *Server }

func (h *tenantHandlers) Mount(api *API) {
	api.Handle(http.MethodPost, "/v1/tenants/{id}/revoke", Access{Public: true}, h.operator(h.revoke))
}

// operator admits the platform operator's token only.
func (h *tenantHandlers) operator(next handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		scheme, cred := bearer(r)
		if !h.s.OperatorKey.Set() || scheme != "bearer" || !h.s.OperatorKey.Matches(cred) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="operator"`)
			return Errorf(http.StatusUnauthorized, TypeAuthentication, "invalid_operator_token", "",
				"This endpoint needs the platform operator's token (platform.operator_key).")
		}
		// The request is audited (api.request) as the operator's; the
		// state change is audited under the tenant it concerns.
		return next(w, setPrincipal(r, &Principal{ActorType: audit.ActorSystem, CredentialID: operatorActor}))
	}
}

// revoke closes a tenant: every key, agent token and charge of it is
// refused from now on, on every node (tenant_revoked).
func (h *tenantHandlers) revoke(w http.ResponseWriter, r *http.Request) error {
	if err := DecodeJSON(r, &struct{}{}); err != nil {
		return err
	}
	id := mux.Vars(r)["id"]
	t, err := h.s.Accounts.RevokeTenant(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		return NotFound("tenant", id)
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"id": t.ID, "object": "tenant", "name": t.Name, "status": t.Status, "created": t.CreatedAt})
	return nil
}

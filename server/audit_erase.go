package server

import (
	"context"
	"net/http"

	"github.com/gorilla/mux"

	"github.com/perfectpay/perfectpay/compliance"
)

// CustomerEraser erases a customer.
type CustomerEraser interface {
	Erase(ctx context.Context, tenantID, id string) (*compliance.ErasureReport, error)
}

// ErasureHandlers serve the right to erasure.
type ErasureHandlers struct {
	Erasure CustomerEraser
}

// Mount adds the route.
func (h *ErasureHandlers) Mount(api *API) {
	api.Handle(http.MethodPost, "/v1/customers/{id}/erase", Access{Scope: "customers:write"}, h.erase)
}

// erase crypto-shreds the customer's card tokens and scrubs their
// personal fields; the erasure is audited under the customer's id alone.
func (h *ErasureHandlers) erase(w http.ResponseWriter, r *http.Request) error {
	if err := DecodeJSON(r, &struct{}{}); err != nil {
		return err
	}
	rep, err := h.Erasure.Erase(r.Context(), PrincipalFrom(r).TenantID, mux.Vars(r)["id"])
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, rep)
	return nil
}

package server

import (
	"context"
	"errors"
	"net/http"

	"github.com/gorilla/mux"

	"github.com/perfectpay/perfectpay/accounts"
	"github.com/perfectpay/perfectpay/internal/apierr"
	"github.com/perfectpay/perfectpay/store"
)

// OperatorCountries keeps the platform operator's bound of the countries
// each tenant may operate in.
type OperatorCountries interface {
	SetOperatorBound(ctx context.Context, tenantID string, codes []string) (*accounts.TenantCountries, error)
	Get(ctx context.Context, tenantID string) (*accounts.TenantCountries, error)
}

// JurisdictionHandlers serve the operator's bound of a tenant's
// countries: the tenant's own allowed countries may name only those
// (country_not_permitted otherwise), and the charge policy enforces the
// bound while the tenant's list is empty.
type JurisdictionHandlers struct {
	Countries OperatorCountries
}

// Mount adds the routes.
func (h *JurisdictionHandlers) Mount(api *API) {
	op := &tenantHandlers{s: api.s}
	api.Handle(http.MethodPost, "/v1/tenants/{id}/jurisdictions", Access{Public: true}, op.operator(h.set))
	api.Handle(http.MethodGet, "/v1/tenants/{id}/jurisdictions", Access{Public: true}, op.operator(h.get))
}

type jurisdictionsRequest struct {
	// Countries is required: an empty list lifts the bound.
	Countries *[]string `json:"countries"`
}

func (h *JurisdictionHandlers) set(w http.ResponseWriter, r *http.Request) error {
	var req jurisdictionsRequest
	if err := DecodeJSON(r, &req); err != nil {
		return err
	}
	if req.Countries == nil {
		return apierr.MissingParam("countries", "countries is required: a list of ISO 3166-1 alpha-2 codes, or [] for no bound.")
	}
	id := mux.Vars(r)["id"]
	c, err := h.Countries.SetOperatorBound(r.Context(), id, *req.Countries)
	if errors.Is(err, store.ErrNotFound) {
		return NotFound("tenant", id)
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, allowedCountriesView{Object: "tenant_allowed_countries", TenantCountries: c})
	return nil
}

func (h *JurisdictionHandlers) get(w http.ResponseWriter, r *http.Request) error {
	c, err := h.Countries.Get(r.Context(), mux.Vars(r)["id"])
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, allowedCountriesView{Object: "tenant_allowed_countries", TenantCountries: c})
	return nil
}

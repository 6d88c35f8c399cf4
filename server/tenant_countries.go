package server

import (
	"context"
	"net/http"

	"github.com/perfectpay/perfectpay/accounts"
	"github.com/perfectpay/perfectpay/internal/apierr"
)

// TenantCountries keeps a tenant's own list of countries it may pay in.
type TenantCountries interface {
	Set(ctx context.Context, tenantID string, codes []string) (*accounts.TenantCountries, error)
	Get(ctx context.Context, tenantID string) (*accounts.TenantCountries, error)
}

// TenantCountryHandlers serve the tenant's allowed countries: the charge
// policy denies an agent's charge at a merchant whose country is not in
// the list (tenant_country_not_allowed). The list applies to both modes,
// so only a live-mode secret key changes it; any key of the tenant reads it.
type TenantCountryHandlers struct {
	Countries TenantCountries
}

// Mount adds the routes.
func (h *TenantCountryHandlers) Mount(api *API) {
	api.Handle(http.MethodPost, "/v1/tenant/allowed_countries", Access{Scope: "keys:write"}, h.set)
	api.Handle(http.MethodGet, "/v1/tenant/allowed_countries", Access{Scope: ""}, h.get)
}

type allowedCountriesRequest struct {
	// AllowedCountries is required: an empty list lifts the restriction.
	AllowedCountries *[]string `json:"allowed_countries"`
}

type allowedCountriesView struct {
	Object string `json:"object"`
	*accounts.TenantCountries
}

func (h *TenantCountryHandlers) set(w http.ResponseWriter, r *http.Request) error {
	p := PrincipalFrom(r)
	if p.Key == nil || p.Key.Key.Kind != accounts.KindSecret || p.Key.Key.Mode != accounts.ModeLive {
		return &apierr.Forbidden{Code: "live_secret_key_required", Message: "The allowed countries apply to live-mode " +
			"charges too, so only a live-mode secret key changes them."}
	}
	var req allowedCountriesRequest
	if err := DecodeJSON(r, &req); err != nil {
		return err
	}
	if req.AllowedCountries == nil {
		return apierr.MissingParam("allowed_countries", "allowed_countries is required: a list of ISO 3166-1 alpha-2 codes, or [] for no restriction.")
	}
	c, err := h.Countries.Set(r.Context(), p.TenantID, *req.AllowedCountries)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, allowedCountriesView{Object: "tenant_allowed_countries", TenantCountries: c})
	return nil
}

func (h *TenantCountryHandlers) get(w http.ResponseWriter, r *http.Request) error {
	c, err := h.Countries.Get(r.Context(), PrincipalFrom(r).TenantID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, allowedCountriesView{Object: "tenant_allowed_countries", TenantCountries: c})
	return nil
}

package server

import (
	"errors"
	"net/http"
	"time"

	"github.com/gorilla/mux"

	"github.com/perfectpay/perfectpay/mandates"
	"github.com/perfectpay/perfectpay/merchants"
	"github.com/perfectpay/perfectpay/store"
)

// MerchantHandlers serve merchant profiles: a tenant sets its own
// (merchants:write) and looks any merchant up by id or verified domain
// (merchants:read).
type MerchantHandlers struct {
	Merchants *merchants.Service
}

// Mount adds the routes.
func (h *MerchantHandlers) Mount(api *API) {
	api.Handle(http.MethodPost, "/v1/merchants", Access{Scope: "merchants:write"}, h.put)
	api.Handle(http.MethodGet, "/v1/merchants", Access{Scope: "merchants:read"}, h.find)
	api.Handle(http.MethodGet, "/v1/merchants/{id}", Access{Scope: "merchants:read"}, h.get)
}

type merchantDomainView struct {
	Domain     string     `json:"domain"`
	Verified   bool       `json:"verified"`
	VerifiedAt *time.Time `json:"verified_at"`
}

type merchantView struct {
	ID          string               `json:"id"`
	Object      string               `json:"object"`
	DisplayName string               `json:"display_name"`
	MCC         string               `json:"mcc"`
	Country     string               `json:"country"`
	Domains     []merchantDomainView `json:"domains"`
	Created     time.Time            `json:"created"`
	Updated     time.Time            `json:"updated"`
}

func viewMerchant(m *merchants.Merchant) merchantView {
	v := merchantView{ID: m.ID, Object: "merchant", DisplayName: m.DisplayName, MCC: m.MCC, Country: m.Country,
		Domains: make([]merchantDomainView, 0, len(m.Domains)), Created: m.CreatedAt, Updated: m.UpdatedAt}
	for _, d := range m.Domains {
		v.Domains = append(v.Domains, merchantDomainView{Domain: d.Name, Verified: d.Verified(), VerifiedAt: d.VerifiedAt})
	}
	return v
}

type putMerchantRequest struct {
	DisplayName string   `json:"display_name"`
	MCC         string   `json:"mcc"`
	Country     string   `json:"country"`
	Domains     []string `json:"domains"`
}

// put creates or replaces the caller's own merchant profile. New domains
// start unverified; only verified domains match a mandate's allowed_merchants.
func (h *MerchantHandlers) put(w http.ResponseWriter, r *http.Request) error {
	var req putMerchantRequest
	if err := DecodeJSON(r, &req); err != nil {
		return err
	}
	m, created, err := h.Merchants.Put(r.Context(), PrincipalFrom(r).TenantID, merchants.Profile{
		DisplayName: req.DisplayName, MCC: req.MCC, Country: req.Country, Domains: req.Domains,
	})
	var fe *mandates.FieldError
	if errors.As(err, &fe) {
		return BadRequest(fe.Code, fe.Param, "%s", fe.Message)
	}
	if err != nil {
		return err
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	writeJSON(w, status, viewMerchant(m))
	return nil
}

func (h *MerchantHandlers) get(w http.ResponseWriter, r *http.Request) error {
	id := mux.Vars(r)["id"]
	m, err := h.Merchants.Get(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		return NotFound("merchant", id)
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, viewMerchant(m))
	return nil
}

// find looks merchants up by verified domain: ?domain=books.example.com.
func (h *MerchantHandlers) find(w http.ResponseWriter, r *http.Request) error {
	domain := mandates.NormalizeDomain(r.URL.Query().Get("domain"))
	if domain == "" {
		return BadRequest("parameter_missing", "domain", "Give ?domain= to look a merchant up by its verified website domain, or GET /v1/merchants/{id}.")
	}
	if !mandates.ValidDomain(domain) {
		return BadRequest("parameter_invalid", "domain", "%q is not a domain name.", domain)
	}
	found, err := h.Merchants.FindByDomain(r.Context(), domain)
	if err != nil {
		return err
	}
	out := make([]merchantView, 0, len(found))
	for i := range found {
		out = append(out, viewMerchant(&found[i]))
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": out, "has_more": false})
	return nil
}

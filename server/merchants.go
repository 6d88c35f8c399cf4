package server

import (
	"errors"
	"net/http"
	"time"

	"github.com/gorilla/mux"

	"github.com/perfectpay/perfectpay/internal/apierr"
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
	api.Handle(http.MethodPost, "/v1/merchants/{id}/domains/{domain}/challenge", Access{Scope: "merchants:write"}, h.challenge)
	api.Handle(http.MethodPost, "/v1/merchants/{id}/domains/{domain}/verify", Access{Scope: "merchants:write"}, h.verify)
}

type merchantDomainView struct {
	Domain     string     `json:"domain"`
	Verified   bool       `json:"verified"`
	VerifiedAt *time.Time `json:"verified_at"`
	// Method is how the domain was proven: dns, https, or operator.
	Method string `json:"method,omitempty"`
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
		v.Domains = append(v.Domains, merchantDomainView{Domain: d.Name, Verified: d.Verified(), VerifiedAt: d.VerifiedAt, Method: d.Method})
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

// find looks merchants up by verified domain (?domain=books.example.com);
// without a domain it lists the tenant's own profiles (?limit=&starting_after=).
func (h *MerchantHandlers) find(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	if !q.Has("domain") {
		return h.list(w, r)
	}
	domain := mandates.NormalizeDomain(q.Get("domain"))
	if domain == "" {
		return BadRequest(apierr.ParameterMissing, "domain", "Give ?domain= to look a merchant up by its verified website domain, leave it out to list your own profiles, or GET /v1/merchants/{id}.")
	}
	if !mandates.ValidDomain(domain) {
		return BadRequest(apierr.ParameterInvalid, "domain", "%q is not a domain name.", domain)
	}
	found, err := h.Merchants.FindByDomain(r.Context(), domain)
	if err != nil {
		return err
	}
	writeList(w, found, viewMerchant, false)
	return nil
}

// list pages the tenant's own merchant profiles by id.
func (h *MerchantHandlers) list(w http.ResponseWriter, r *http.Request) error {
	pg, err := listPage(r)
	if err != nil {
		return err
	}
	page, more, err := h.Merchants.List(r.Context(), PrincipalFrom(r).TenantID, pg)
	if errors.Is(err, store.ErrNotFound) {
		return BadRequest(apierr.ResourceMissing, "starting_after", "No such merchant of yours: '%s'.", pg.StartingAfter)
	}
	if err != nil {
		return err
	}
	writeList(w, page, viewMerchant, more)
	return nil
}

// domainError maps domain verification errors to API errors.
func domainError(err error, id, domain string) error {
	switch {
	case errors.Is(err, merchants.ErrDomainNotClaimed):
		return Errorf(http.StatusNotFound, TypeInvalidRequest, "resource_missing", "domain",
			"Merchant %s does not claim %s: add it to the profile's domains (POST /v1/merchants) first.", id, domain)
	case errors.Is(err, merchants.ErrDomainTaken):
		return Errorf(http.StatusConflict, TypeInvalidRequest, "domain_taken", "domain", "%s is verified by another merchant.", domain)
	case errors.Is(err, store.ErrNotFound):
		return NotFound("merchant", id)
	}
	return err
}

func domainVars(r *http.Request) (id, domain string, err error) {
	v := mux.Vars(r)
	domain = mandates.NormalizeDomain(v["domain"])
	if !mandates.ValidDomain(domain) {
		return "", "", BadRequest(apierr.ParameterInvalid, "domain", "%q is not a domain name.", v["domain"])
	}
	return v["id"], domain, nil
}

type challengeView struct {
	Object string `json:"object"`
	*merchants.Challenge
}

// challenge gives the tenant's merchant a token to publish for domain (the
// pending one while valid): a TXT record or an HTTPS well-known file.
func (h *MerchantHandlers) challenge(w http.ResponseWriter, r *http.Request) error {
	if err := DecodeJSON(r, &struct{}{}); err != nil {
		return err
	}
	id, domain, err := domainVars(r)
	if err != nil {
		return err
	}
	ch, err := h.Merchants.StartVerification(r.Context(), PrincipalFrom(r).TenantID, id, domain)
	if err != nil {
		return domainError(err, id, domain)
	}
	writeJSON(w, http.StatusOK, challengeView{Object: "domain_challenge", Challenge: ch})
	return nil
}

// verify checks the published token now; the domain is verified when it
// holds, else a 400 says what was looked for and found.
func (h *MerchantHandlers) verify(w http.ResponseWriter, r *http.Request) error {
	if err := DecodeJSON(r, &struct{}{}); err != nil {
		return err
	}
	id, domain, err := domainVars(r)
	if err != nil {
		return err
	}
	m, err := h.Merchants.Verify(r.Context(), PrincipalFrom(r).TenantID, id, domain)
	if err != nil {
		return domainError(err, id, domain)
	}
	writeJSON(w, http.StatusOK, viewMerchant(m))
	return nil
}

package server

import (
	"errors"
	"net/http"
	"time"

	"github.com/gorilla/mux"

	"github.com/perfectpay/perfectpay/authz"
	"github.com/perfectpay/perfectpay/store"
)

// ClientDomainHandlers serve /v1/client_domains: the hosts whose Client ID
// Metadata Documents the tenant accepts, so that an agent whose client_id
// is an https URL on such a host authenticates as an agent of the tenant.
type ClientDomainHandlers struct {
	Issuer *authz.Issuer
}

// Mount adds the client domain routes (tenant API keys only).
func (h *ClientDomainHandlers) Mount(api *API) {
	api.Handle(http.MethodPost, "/v1/client_domains", Access{Scope: "agents:write"}, h.add)
	api.Handle(http.MethodGet, "/v1/client_domains", Access{Scope: "agents:read"}, h.list)
	api.Handle(http.MethodDelete, "/v1/client_domains/{domain}", Access{Scope: "agents:write"}, h.remove)
}

type clientDomainView struct {
	Domain  string    `json:"domain"`
	Object  string    `json:"object"`
	Created time.Time `json:"created"`
}

func viewClientDomain(d *authz.ClientDomain) clientDomainView {
	return clientDomainView{Domain: d.Domain, Object: "client_domain", Created: d.CreatedAt}
}

func (h *ClientDomainHandlers) add(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Domain string `json:"domain"`
	}
	if err := DecodeJSON(r, &req); err != nil {
		return err
	}
	d, err := h.Issuer.AddClientDomain(r.Context(), PrincipalFrom(r).TenantID, req.Domain)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, viewClientDomain(d))
	return nil
}

func (h *ClientDomainHandlers) list(w http.ResponseWriter, r *http.Request) error {
	list, err := h.Issuer.ListClientDomains(r.Context(), PrincipalFrom(r).TenantID)
	if err != nil {
		return err
	}
	writeList(w, list, viewClientDomain, false)
	return nil
}

func (h *ClientDomainHandlers) remove(w http.ResponseWriter, r *http.Request) error {
	domain := mux.Vars(r)["domain"]
	if err := h.Issuer.RemoveClientDomain(r.Context(), PrincipalFrom(r).TenantID, domain); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return NotFound("client_domain", domain)
		}
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"domain": domain, "object": "client_domain", "deleted": true})
	return nil
}

// agentPathID is the agent an /v1/agents/{id} route names. An agent whose
// client id is an https URL (a Client ID Metadata Document) cannot sit in
// a path segment, so it is named as /v1/agents/by_client_id?client_id=URL.
func agentPathID(r *http.Request) string {
	id := mux.Vars(r)["id"]
	if id == "by_client_id" {
		return r.URL.Query().Get("client_id")
	}
	return id
}

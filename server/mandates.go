package server

import (
	"errors"
	"net/http"
	"slices"
	"strings"

	"github.com/gorilla/mux"

	"github.com/perfectpay/perfectpay/internal/apierr"
	"github.com/perfectpay/perfectpay/mandates"
	"github.com/perfectpay/perfectpay/store"
)

// MandateHandlers serve the mandate API (tenant keys: mandates:read,
// mandates:write). Approving a mandate is the payer's act on the approval
// page, not a tenant key's, so there is no approve route here.
type MandateHandlers struct {
	Mandates *mandates.Service
	// Signer signs mandates for GET /v1/mandates/{id}/jws (the issuer's
	// keys); nil answers 503.
	Signer mandates.Signer
}

// Mount adds the routes.
func (h *MandateHandlers) Mount(api *API) {
	api.Handle(http.MethodPost, "/v1/mandates", Access{Scope: "mandates:write"}, h.create)
	api.Handle(http.MethodGet, "/v1/mandates", Access{Scope: "mandates:read"}, h.list)
	api.Handle(http.MethodGet, "/v1/mandates/{id}", Access{Scope: "mandates:read"}, h.get)
	api.Handle(http.MethodPost, "/v1/mandates/{id}/suspend", Access{Scope: "mandates:write"}, h.suspend)
	api.Handle(http.MethodPost, "/v1/mandates/{id}/resume", Access{Scope: "mandates:write"}, h.resume)
	api.Handle(http.MethodPost, "/v1/mandates/{id}/revoke", Access{Scope: "mandates:write"}, h.revoke)
	api.Handle(http.MethodGet, "/v1/mandates/{id}/events", Access{Scope: "mandates:read"}, h.events)
	api.Handle(http.MethodGet, "/v1/mandates/{id}/jws", Access{Scope: "mandates:read"}, h.jws)
}

// mandateView is the API representation of a mandate.
type mandateView struct {
	Object string `json:"object"`
	*mandates.WireMandate
	// Remaining is budget - spent.
	Remaining int64 `json:"remaining"`
}

func viewMandate(m *mandates.Mandate) mandateView {
	return mandateView{Object: "mandate", WireMandate: m.Wire(), Remaining: m.Remaining()}
}

// createMandateRequest is the body of POST /v1/mandates: the limits, and
// who pays and who spends. payer "self" names the tenant itself.
type createMandateRequest struct {
	mandates.Limits
	Description string `json:"description"`
	Payer       string `json:"payer"`
	Agent       string `json:"agent"`
	ParentID    string `json:"parent_id"`
}

// mandateError maps the mandates domain's errors to API errors.
func mandateError(err error, id string) error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return NotFound("mandate", id)
	}
	return err
}

// embeddedParam strips the Go name of an embedded struct from a decoding
// error's param ("Limits.budget" → "budget").
func embeddedParam(err error) error {
	var e *Error
	if errors.As(err, &e) && strings.HasPrefix(e.Param, "Limits.") {
		e.Param = strings.TrimPrefix(e.Param, "Limits.")
		e.Message = strings.ReplaceAll(e.Message, "Limits.", "")
	}
	return err
}

func (h *MandateHandlers) create(w http.ResponseWriter, r *http.Request) error {
	var req createMandateRequest
	if err := DecodeJSON(r, &req); err != nil {
		return embeddedParam(err)
	}
	m := &mandates.Mandate{Limits: req.Limits, Description: req.Description, Payer: req.Payer, Agent: req.Agent, ParentID: req.ParentID}
	created, err := h.Mandates.Create(r.Context(), PrincipalFrom(r).TenantID, m)
	if err != nil {
		return mandateError(err, req.ParentID)
	}
	writeJSON(w, http.StatusCreated, viewMandate(created))
	return nil
}

func (h *MandateHandlers) get(w http.ResponseWriter, r *http.Request) error {
	id := mux.Vars(r)["id"]
	m, err := h.Mandates.Get(r.Context(), PrincipalFrom(r).TenantID, id)
	if err != nil {
		return mandateError(err, id)
	}
	writeJSON(w, http.StatusOK, viewMandate(m))
	return nil
}

// list pages newest first: ?agent=&payer=&status=&parent_id=&limit=&starting_after=mdt_…
func (h *MandateHandlers) list(w http.ResponseWriter, r *http.Request) error {
	pg, err := listPage(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	f := mandates.Filter{
		TenantID: PrincipalFrom(r).TenantID, Agent: q.Get("agent"), Payer: q.Get("payer"), Status: q.Get("status"),
		ParentID: q.Get("parent_id"), StartingAfter: pg.StartingAfter, Limit: pg.Limit,
	}
	if f.Status != "" && !slices.Contains(mandates.Statuses, f.Status) {
		return BadRequest(apierr.ParameterInvalid, "status", "status must be one of %s.", strings.Join(mandates.Statuses, ", "))
	}
	if f.Payer == mandates.PayerSelf {
		f.Payer = f.TenantID
	}
	page, more, err := h.Mandates.List(r.Context(), f)
	if errors.Is(err, store.ErrNotFound) {
		return BadRequest(apierr.ResourceMissing, "starting_after", "No such mandate: '%s'.", f.StartingAfter)
	}
	if err != nil {
		return err
	}
	writeList(w, page, viewMandate, more)
	return nil
}

func (h *MandateHandlers) lifecycle(w http.ResponseWriter, r *http.Request, act func(*mandates.Service, string, string) (*mandates.Mandate, error)) error {
	if err := DecodeJSON(r, &struct{}{}); err != nil {
		return err
	}
	id := mux.Vars(r)["id"]
	m, err := act(h.Mandates, PrincipalFrom(r).TenantID, id)
	if err != nil {
		return mandateError(err, id)
	}
	writeJSON(w, http.StatusOK, viewMandate(m))
	return nil
}

func (h *MandateHandlers) suspend(w http.ResponseWriter, r *http.Request) error {
	return h.lifecycle(w, r, func(s *mandates.Service, tenant, id string) (*mandates.Mandate, error) {
		return s.Suspend(r.Context(), tenant, id)
	})
}

func (h *MandateHandlers) resume(w http.ResponseWriter, r *http.Request) error {
	return h.lifecycle(w, r, func(s *mandates.Service, tenant, id string) (*mandates.Mandate, error) {
		return s.Resume(r.Context(), tenant, id)
	})
}

func (h *MandateHandlers) revoke(w http.ResponseWriter, r *http.Request) error {
	if err := DecodeJSON(r, &struct{}{}); err != nil {
		return err
	}
	id := mux.Vars(r)["id"]
	m, revoked, err := h.Mandates.Revoke(r.Context(), PrincipalFrom(r).TenantID, id)
	if err != nil {
		return mandateError(err, id)
	}
	if revoked == nil {
		revoked = []string{}
	}
	writeJSON(w, http.StatusOK, struct {
		mandateView
		Revoked []string `json:"revoked"`
	}{viewMandate(m), revoked})
	return nil
}

// events pages the mandate's history oldest first: ?limit=&starting_after=mev_…
func (h *MandateHandlers) events(w http.ResponseWriter, r *http.Request) error {
	pg, err := listPage(r)
	if err != nil {
		return err
	}
	id := mux.Vars(r)["id"]
	after := pg.StartingAfter
	page, more, err := h.Mandates.Events(r.Context(), mandates.EventFilter{
		TenantID: PrincipalFrom(r).TenantID, MandateID: id, StartingAfter: after, Limit: pg.Limit,
	})
	if errors.Is(err, store.ErrNotFound) && after != "" {
		if _, gerr := h.Mandates.Get(r.Context(), PrincipalFrom(r).TenantID, id); gerr == nil {
			return BadRequest(apierr.ResourceMissing, "starting_after", "No such event of mandate %s: '%s'.", id, after)
		}
	}
	if err != nil {
		return mandateError(err, id)
	}
	type eventView struct {
		Object string `json:"object"`
		mandates.Event
	}
	writeList(w, page, func(e *mandates.Event) eventView { return eventView{Object: "mandate_event", Event: *e} }, more)
	return nil
}

func (h *MandateHandlers) jws(w http.ResponseWriter, r *http.Request) error {
	id := mux.Vars(r)["id"]
	jws, m, err := h.Mandates.Signed(r.Context(), h.Signer, PrincipalFrom(r).TenantID, id)
	if errors.Is(err, mandates.ErrNoSigner) {
		return Errorf(http.StatusServiceUnavailable, TypeAPI, "signing_unavailable", "", "Mandate signing is not configured on this server.")
	}
	if err != nil {
		return mandateError(err, id)
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "signed_mandate", "mandate": m.ID, "jws": jws})
	return nil
}

package server

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/gorilla/mux"

	"github.com/perfectpay/perfectpay/events"
	"github.com/perfectpay/perfectpay/internal/apierr"
	"github.com/perfectpay/perfectpay/webhooks"
)

// EventHandlers serve /v1/events.
type EventHandlers struct{ svc *webhooks.Service }

// NewEventHandlers returns the event handlers.
func NewEventHandlers(svc *webhooks.Service) *EventHandlers { return &EventHandlers{svc: svc} }

// Mount adds the routes.
func (h *EventHandlers) Mount(api *API) {
	api.Handle(http.MethodGet, "/v1/events", Access{Scope: "events:read"}, h.list)
	api.Handle(http.MethodGet, "/v1/events/{id}", Access{Scope: "events:read"}, h.get)
	api.Handle(http.MethodGet, "/v1/events/{id}/deliveries", Access{Scope: "events:read"}, h.deliveries)
	api.Handle(http.MethodGet, "/v1/events/{id}/attempts", Access{Scope: "events:read"}, h.attempts)
	api.Handle(http.MethodPost, "/v1/events/{id}/redeliver", Access{Scope: "webhooks:write"}, h.redeliver)
}

type eventView struct {
	ID      string          `json:"id"`
	Object  string          `json:"object"`
	Type    string          `json:"type"`
	Created time.Time       `json:"created"`
	Data    json.RawMessage `json:"data"`
}

func viewEvent(e *events.Event) eventView {
	return eventView{ID: e.ID, Object: "event", Type: e.Type, Created: e.CreatedAt.UTC(), Data: e.Data}
}

// list pages newest first: ?limit=&starting_after=evt_…&type=charge.succeeded
// (or a prefix such as charge.*).
func (h *EventHandlers) list(w http.ResponseWriter, r *http.Request) error {
	pg, err := listPage(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	if len(q.Get("type")) > 100 {
		return BadRequest(apierr.ParameterInvalid, "type", "type is longer than 100 characters.")
	}
	list, more, err := h.svc.ListEvents(r.Context(), webhooks.EventFilter{
		TenantID: PrincipalFrom(r).TenantID, Type: q.Get("type"), StartingAfter: pg.StartingAfter, Limit: pg.Limit,
	})
	if err != nil {
		return webhookErr(err, "event", "")
	}
	writeList(w, list, viewEvent, more)
	return nil
}

func (h *EventHandlers) get(w http.ResponseWriter, r *http.Request) error {
	id := mux.Vars(r)["id"]
	e, err := h.svc.GetEvent(r.Context(), PrincipalFrom(r).TenantID, id)
	if err != nil {
		return webhookErr(err, "event", id)
	}
	writeJSON(w, http.StatusOK, viewEvent(e))
	return nil
}

type deliveryView struct {
	webhooks.Delivery
	Object string `json:"object"`
}

func viewDeliveries(list []webhooks.Delivery) []deliveryView {
	out := make([]deliveryView, 0, len(list))
	for _, d := range list {
		out = append(out, deliveryView{Delivery: d, Object: "webhook_delivery"})
	}
	return out
}

func (h *EventHandlers) deliveries(w http.ResponseWriter, r *http.Request) error {
	id := mux.Vars(r)["id"]
	list, err := h.svc.ListDeliveries(r.Context(), PrincipalFrom(r).TenantID, id)
	if err != nil {
		return webhookErr(err, "event", id)
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": viewDeliveries(list), "has_more": false})
	return nil
}

func (h *EventHandlers) attempts(w http.ResponseWriter, r *http.Request) error {
	id := mux.Vars(r)["id"]
	tenant := PrincipalFrom(r).TenantID
	if _, err := h.svc.GetEvent(r.Context(), tenant, id); err != nil {
		return webhookErr(err, "event", id)
	}
	pg, err := listPage(r)
	if err != nil {
		return err
	}
	list, more, err := h.svc.ListAttempts(r.Context(), webhooks.AttemptFilter{
		TenantID: tenant, EventID: id, StartingAfter: pg.StartingAfter, Limit: pg.Limit,
	})
	if err != nil {
		return err
	}
	writeAttempts(w, list, more)
	return nil
}

type redeliverRequest struct {
	// Endpoint limits the redelivery to one endpoint (which need not be
	// subscribed to the event's type, but must be enabled).
	Endpoint string `json:"endpoint"`
}

func (h *EventHandlers) redeliver(w http.ResponseWriter, r *http.Request) error {
	var req redeliverRequest
	if err := DecodeJSON(r, &req); err != nil {
		return err
	}
	id := mux.Vars(r)["id"]
	list, err := h.svc.Redeliver(r.Context(), PrincipalFrom(r).TenantID, id, req.Endpoint)
	if err != nil {
		return webhookErr(err, "event", id)
	}
	writeJSON(w, http.StatusAccepted, map[string]any{"object": "list", "data": viewDeliveries(list), "has_more": false})
	return nil
}

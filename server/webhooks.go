package server

import (
	"errors"
	"net/http"
	"time"

	"github.com/gorilla/mux"

	"github.com/perfectpay/perfectpay/internal/apierr"
	"github.com/perfectpay/perfectpay/store"
	"github.com/perfectpay/perfectpay/webhooks"
)

// WebhookHandlers serve /v1/webhook_endpoints.
type WebhookHandlers struct{ svc *webhooks.Service }

// NewWebhookHandlers returns the webhook endpoint handlers.
func NewWebhookHandlers(svc *webhooks.Service) *WebhookHandlers { return &WebhookHandlers{svc: svc} }

// Mount adds the routes.
func (h *WebhookHandlers) Mount(api *API) {
	api.Handle(http.MethodPost, "/v1/webhook_endpoints", Access{Scope: "webhooks:write"}, h.create)
	api.Handle(http.MethodGet, "/v1/webhook_endpoints", Access{Scope: "webhooks:read"}, h.list)
	api.Handle(http.MethodGet, "/v1/webhook_endpoints/{id}", Access{Scope: "webhooks:read"}, h.get)
	api.Handle(http.MethodPost, "/v1/webhook_endpoints/{id}", Access{Scope: "webhooks:write"}, h.update)
	api.Handle(http.MethodDelete, "/v1/webhook_endpoints/{id}", Access{Scope: "webhooks:write"}, h.delete)
	api.Handle(http.MethodPost, "/v1/webhook_endpoints/{id}/disable", Access{Scope: "webhooks:write"}, h.setDisabled(true))
	api.Handle(http.MethodPost, "/v1/webhook_endpoints/{id}/enable", Access{Scope: "webhooks:write"}, h.setDisabled(false))
	api.Handle(http.MethodPost, "/v1/webhook_endpoints/{id}/rotate_secret", Access{Scope: "webhooks:write"}, h.rotate)
	api.Handle(http.MethodGet, "/v1/webhook_endpoints/{id}/attempts", Access{Scope: "webhooks:read"}, h.attempts)
}

// endpointView is the API shape of an endpoint. The secret appears only in
// the responses that create it (creation, rotation), never in replays.
type endpointView struct {
	*webhooks.Endpoint
	Object                  string     `json:"object"`
	PreviousSecretExpiresAt *time.Time `json:"previous_secret_expires_at"`
	Secret                  string     `json:"secret,omitempty"`
}

func viewEndpoint(e *webhooks.Endpoint, secret string) endpointView {
	v := endpointView{Endpoint: e, Object: "webhook_endpoint", Secret: secret}
	if e.PrevSecret != nil && e.PrevSecretExpiresAt != nil && time.Now().Before(*e.PrevSecretExpiresAt) {
		v.PreviousSecretExpiresAt = e.PrevSecretExpiresAt
	}
	return v
}

// webhookErr maps the webhooks domain's errors to API errors.
func webhookErr(err error, kind, id string) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, webhooks.ErrEndpointDisabled):
		return BadRequest("webhook_endpoint_disabled", "endpoint", "The webhook endpoint is disabled; enable it first.")
	case errors.Is(err, store.ErrNotFound):
		return NotFound(kind, id)
	}
	return err
}

type createEndpointRequest struct {
	URL           string   `json:"url"`
	EnabledEvents []string `json:"enabled_events"`
	// Events is accepted as a shorter synonym of enabled_events.
	Events      []string `json:"events"`
	Description string   `json:"description"`
}

func (h *WebhookHandlers) create(w http.ResponseWriter, r *http.Request) error {
	var req createEndpointRequest
	if err := DecodeJSON(r, &req); err != nil {
		return err
	}
	if req.URL == "" {
		return BadRequest(apierr.ParameterMissing, "url", "Missing required param: url.")
	}
	events := req.EnabledEvents
	if events == nil {
		events = req.Events
	} else if req.Events != nil {
		return BadRequest(apierr.ParameterInvalid, "events", "Send enabled_events or events, not both.")
	}
	if events == nil {
		return BadRequest(apierr.ParameterMissing, "enabled_events", "Missing required param: enabled_events (use [\"*\"] for every event).")
	}
	e, secret, err := h.svc.CreateEndpoint(r.Context(), PrincipalFrom(r).TenantID,
		webhooks.EndpointInput{URL: req.URL, Events: events, Description: req.Description})
	if err != nil {
		return webhookErr(err, "webhook_endpoint", "")
	}
	ReplayAs(r, viewEndpoint(e, ""))
	writeJSON(w, http.StatusCreated, viewEndpoint(e, secret))
	return nil
}

func (h *WebhookHandlers) list(w http.ResponseWriter, r *http.Request) error {
	list, err := h.svc.ListEndpoints(r.Context(), PrincipalFrom(r).TenantID)
	if err != nil {
		return err
	}
	writeList(w, list, func(e *webhooks.Endpoint) endpointView { return viewEndpoint(e, "") }, false)
	return nil
}

func (h *WebhookHandlers) get(w http.ResponseWriter, r *http.Request) error {
	id := mux.Vars(r)["id"]
	e, err := h.svc.GetEndpoint(r.Context(), PrincipalFrom(r).TenantID, id)
	if err != nil {
		return webhookErr(err, "webhook_endpoint", id)
	}
	writeJSON(w, http.StatusOK, viewEndpoint(e, ""))
	return nil
}

type updateEndpointRequest struct {
	URL           *string  `json:"url"`
	EnabledEvents []string `json:"enabled_events"`
	Events        []string `json:"events"`
	Description   *string  `json:"description"`
	Disabled      *bool    `json:"disabled"`
}

func (h *WebhookHandlers) update(w http.ResponseWriter, r *http.Request) error {
	var req updateEndpointRequest
	if err := DecodeJSON(r, &req); err != nil {
		return err
	}
	events := req.EnabledEvents
	if events == nil {
		events = req.Events
	} else if req.Events != nil {
		return BadRequest(apierr.ParameterInvalid, "events", "Send enabled_events or events, not both.")
	}
	id := mux.Vars(r)["id"]
	e, err := h.svc.UpdateEndpoint(r.Context(), PrincipalFrom(r).TenantID, id, webhooks.EndpointUpdate{
		URL: req.URL, Events: events, Description: req.Description, Disabled: req.Disabled,
	})
	if err != nil {
		return webhookErr(err, "webhook_endpoint", id)
	}
	writeJSON(w, http.StatusOK, viewEndpoint(e, ""))
	return nil
}

func (h *WebhookHandlers) setDisabled(disabled bool) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		if err := DecodeJSON(r, &struct{}{}); err != nil {
			return err
		}
		id := mux.Vars(r)["id"]
		e, err := h.svc.UpdateEndpoint(r.Context(), PrincipalFrom(r).TenantID, id, webhooks.EndpointUpdate{Disabled: &disabled})
		if err != nil {
			return webhookErr(err, "webhook_endpoint", id)
		}
		writeJSON(w, http.StatusOK, viewEndpoint(e, ""))
		return nil
	}
}

func (h *WebhookHandlers) delete(w http.ResponseWriter, r *http.Request) error {
	id := mux.Vars(r)["id"]
	e, err := h.svc.DeleteEndpoint(r.Context(), PrincipalFrom(r).TenantID, id)
	if err != nil {
		return webhookErr(err, "webhook_endpoint", id)
	}
	writeJSON(w, http.StatusOK, map[string]any{"id": e.ID, "object": "webhook_endpoint", "deleted": true})
	return nil
}

type rotateSecretRequest struct {
	// ExpiresIn is how long, in seconds, the previous secret keeps signing
	// (default webhooks.rotation_overlap; 0 stops it at once).
	ExpiresIn *int64 `json:"expires_in"`
}

func (h *WebhookHandlers) rotate(w http.ResponseWriter, r *http.Request) error {
	var req rotateSecretRequest
	if err := DecodeJSON(r, &req); err != nil {
		return err
	}
	var overlap *time.Duration
	if req.ExpiresIn != nil {
		if *req.ExpiresIn < 0 || *req.ExpiresIn > int64(webhooks.MaxRotationOverlap.Seconds()) {
			return BadRequest(apierr.ParameterInvalid, "expires_in", "expires_in must be between 0 and %d seconds.", int64(webhooks.MaxRotationOverlap.Seconds()))
		}
		d := time.Duration(*req.ExpiresIn) * time.Second
		overlap = &d
	}
	id := mux.Vars(r)["id"]
	e, secret, err := h.svc.RotateSecret(r.Context(), PrincipalFrom(r).TenantID, id, overlap)
	if err != nil {
		return webhookErr(err, "webhook_endpoint", id)
	}
	ReplayAs(r, viewEndpoint(e, ""))
	writeJSON(w, http.StatusOK, viewEndpoint(e, secret))
	return nil
}

func (h *WebhookHandlers) attempts(w http.ResponseWriter, r *http.Request) error {
	id := mux.Vars(r)["id"]
	tenant := PrincipalFrom(r).TenantID
	pg, err := listPage(r)
	if err != nil {
		return err
	}
	// Attempts of deleted endpoints stay listable; only the id is checked.
	list, more, err := h.svc.ListAttempts(r.Context(), webhooks.AttemptFilter{
		TenantID: tenant, EndpointID: id, StartingAfter: pg.StartingAfter, Limit: pg.Limit,
	})
	if err != nil {
		return webhookErr(err, "webhook_endpoint", id)
	}
	writeAttempts(w, list, more)
	return nil
}

func writeAttempts(w http.ResponseWriter, list []webhooks.Attempt, more bool) {
	type attemptView struct {
		webhooks.Attempt
		Object string `json:"object"`
	}
	writeList(w, list, func(a *webhooks.Attempt) attemptView { return attemptView{Attempt: *a, Object: "webhook_attempt"} }, more)
}

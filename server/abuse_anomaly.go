package server

import (
	"context"
	"net/http"

	"github.com/gorilla/mux"

	"github.com/perfectpay/perfectpay/fraud"
)

// AnomalyHandlers show and clear an agent's anomaly flag: while it stands
// the charge policy asks a person to approve each of the agent's charges,
// on every node (the flag is stored), until one clears it. With Fraud nil
// (the fraud signals off) both answer 409 fraud_signals_off.
type AnomalyHandlers struct{ Fraud *fraud.Assessor }

// Mount adds the routes.
func (h *AnomalyHandlers) Mount(api *API) {
	api.Handle(http.MethodGet, "/v1/agents/{id}/anomaly", Access{Scope: "agents:read"}, h.get)
	api.Handle(http.MethodPost, "/v1/agents/{id}/anomaly/clear", Access{Scope: "agents:write"}, h.clear)
}

type anomalyView struct {
	Object  string  `json:"object"`
	Agent   string  `json:"agent"`
	Flagged bool    `json:"flagged"`
	Metric  string  `json:"metric,omitempty"`
	Score   float64 `json:"score,omitempty"`
	Message string  `json:"message,omitempty"`
}

// errFraudOff answers both routes when the fraud signals are turned off
// (fraud.enabled: false): no flag is raised or read then.
func errFraudOff() error {
	return Errorf(http.StatusConflict, TypeInvalidRequest, "fraud_signals_off", "",
		"The fraud signals are turned off on this server (fraud.enabled), so no agent is flagged.")
}

func (h *AnomalyHandlers) view(ctx context.Context, tenantID, agentID string) (anomalyView, error) {
	v := anomalyView{Object: "agent_anomaly", Agent: agentID}
	if h.Fraud == nil {
		return v, errFraudOff()
	}
	f, err := h.Fraud.AnomalyOf(ctx, tenantID, agentID)
	if err != nil {
		return v, err
	}
	if f != nil {
		v.Flagged, v.Metric, v.Score, v.Message = true, f.Metric, f.Score, f.Message
	}
	return v, nil
}

func (h *AnomalyHandlers) get(w http.ResponseWriter, r *http.Request) error {
	v, err := h.view(r.Context(), PrincipalFrom(r).TenantID, mux.Vars(r)["id"])
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

func (h *AnomalyHandlers) clear(w http.ResponseWriter, r *http.Request) error {
	p, id := PrincipalFrom(r), mux.Vars(r)["id"]
	if h.Fraud == nil {
		return errFraudOff()
	}
	cleared, err := h.Fraud.ClearAnomaly(r.Context(), p.TenantID, id)
	if err != nil {
		return err
	}
	if !cleared {
		return Errorf(http.StatusConflict, TypeInvalidRequest, "agent_not_flagged", "id", "Agent %s has no anomaly flag to clear.", id)
	}
	v, err := h.view(r.Context(), p.TenantID, id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

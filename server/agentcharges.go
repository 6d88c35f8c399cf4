package server

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/gorilla/mux"

	"github.com/perfectpay/perfectpay/authz"
	"github.com/perfectpay/perfectpay/charging"
	"github.com/perfectpay/perfectpay/payments"
	"github.com/perfectpay/perfectpay/store"
)

// AgentCharger decides and makes agent charges (authz/charging.Service).
type AgentCharger interface {
	Charge(ctx context.Context, tok *authz.AccessToken, req charging.Request) (*charging.Outcome, error)
}

// agentChargeRequest is what an agent sends. Merchant facts come from the
// merchant's registered profile: the agent names the merchant by account
// id, and what it says about the purchase is context for people only.
type agentChargeRequest struct {
	Amount        json.RawMessage     `json:"amount"`
	Currency      string              `json:"currency"`
	PaymentMethod string              `json:"payment_method"`
	Merchant      string              `json:"merchant"`
	Capture       *bool               `json:"capture"`
	Description   string              `json:"description"`
	LineItems     []payments.LineItem `json:"line_items"`
	OrderURL      string              `json:"order_url"`
	Approval      string              `json:"approval"`
}

func decisionView(d *charging.Decision) map[string]any {
	return map[string]any{"id": d.ID, "result": d.Result, "reasons": d.Reasons, "policy_version": d.PolicyVersion}
}

func (h *ChargeHandlers) createAgentCharge(w http.ResponseWriter, r *http.Request) error {
	tok, _ := PrincipalFrom(r).Agent.(*authz.AccessToken)
	if tok == nil || h.Agents == nil {
		return Errorf(http.StatusForbidden, TypePermission, "agent_charges_unavailable", "", "Agent charges are not enabled.")
	}
	var req agentChargeRequest
	if err := DecodeJSON(r, &req); err != nil {
		return err
	}
	amount, err := requiredAmount(req.Amount)
	if err != nil {
		return err
	}
	for param, v := range map[string]string{"currency": req.Currency, "payment_method": req.PaymentMethod, "merchant": req.Merchant} {
		if v == "" {
			return BadRequest("parameter_missing", param, "Missing required param: %s.", param)
		}
	}
	var purchase *payments.Purchase
	if req.Description != "" || len(req.LineItems) > 0 || req.OrderURL != "" {
		purchase = &payments.Purchase{Description: req.Description, LineItems: req.LineItems, OrderURL: req.OrderURL}
	}
	out, err := h.Agents.Charge(r.Context(), tok, charging.Request{
		Amount: *amount, Currency: req.Currency, PaymentMethod: req.PaymentMethod, MerchantID: req.Merchant,
		Capture: req.Capture == nil || *req.Capture, Purchase: purchase, ApprovalID: req.Approval,
		IdempotencyKey: r.Header.Get("Idempotency-Key"),
	})
	var reqErr *charging.RequestError
	var denied *charging.DeniedError
	var revoked *charging.RevokedError
	var challenge *charging.ApprovalRequiredError
	switch {
	case errors.As(err, &reqErr):
		return BadRequest(reqErr.Code, reqErr.Param, "%s", reqErr.Message)
	case errors.As(err, &revoked):
		e := Errorf(http.StatusForbidden, TypePermission, revoked.What+"_revoked", "", "The %s %s was revoked; this charge was denied.", revoked.What, revoked.ID)
		e.Extra = map[string]any{"decision": decisionView(revoked.Decision)}
		return e
	case errors.As(err, &denied):
		d := denied.Decision
		e := Errorf(http.StatusForbidden, TypePermission, "charge_denied", "", "The mandate does not allow this charge: %s.", joinReasons(d))
		e.Extra = map[string]any{"decision": decisionView(d)}
		return e
	case errors.As(err, &challenge):
		// Not stored for replay: the retry carrying the approval must run.
		DontStoreResponse(w)
		e := Errorf(http.StatusPaymentRequired, "approval_required", "approval_required", "",
			"A person must approve this charge: %s. Retry with the same Idempotency-Key and \"approval\": %q once approved.",
			joinReasons(challenge.Decision), challenge.Approval.ID)
		e.Extra = map[string]any{"approval": challenge.Approval, "decision": decisionView(challenge.Decision)}
		return e
	case errors.Is(err, charging.ErrApprovalUsed):
		return Errorf(http.StatusConflict, TypeInvalidRequest, "approval_used", "approval", "The approval %s was already used for a charge.", req.Approval)
	}
	var ce *payments.CardError
	if errors.As(err, &ce) && out != nil {
		e := paymentsError(err, "charge", "").(*Error)
		if e.Extra == nil {
			e.Extra = map[string]any{}
		}
		e.Extra["decision"] = decisionView(out.Decision)
		return e
	}
	if err != nil {
		return paymentsError(err, "charge", "")
	}
	writeJSON(w, http.StatusOK, struct {
		*payments.Charge
		Decision map[string]any `json:"decision"`
	}{out.Charge, decisionView(out.Decision)})
	return nil
}

func joinReasons(d *charging.Decision) string {
	s := ""
	for i, r := range d.Reasons {
		if i > 0 {
			s += "; "
		}
		s += r.Message
	}
	return s
}

// ApprovalHandlers let a tenant (for now; the MFA page comes later) see,
// approve and deny step-up approvals.
type ApprovalHandlers struct{ P *charging.Service }

// Mount registers the routes.
func (h *ApprovalHandlers) Mount(api *API) {
	api.Handle(http.MethodGet, "/v1/approvals/{id}", Access{Scope: "approvals:write"}, h.get)
	api.Handle(http.MethodPost, "/v1/approvals/{id}/approve", Access{Scope: "approvals:write"}, h.resolve(true))
	api.Handle(http.MethodPost, "/v1/approvals/{id}/deny", Access{Scope: "approvals:write"}, h.resolve(false))
}

func (h *ApprovalHandlers) get(w http.ResponseWriter, r *http.Request) error {
	id := mux.Vars(r)["id"]
	a, err := h.P.GetApproval(r.Context(), PrincipalFrom(r).TenantID, id)
	if errors.Is(err, store.ErrNotFound) {
		return NotFound("approval", id)
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, a)
	return nil
}

func (h *ApprovalHandlers) resolve(yes bool) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		if err := DecodeJSON(r, &struct{}{}); err != nil {
			return err
		}
		id := mux.Vars(r)["id"]
		p := PrincipalFrom(r)
		a, err := h.P.ResolveApproval(r.Context(), p.TenantID, id, yes, p.CredentialID)
		switch {
		case errors.Is(err, store.ErrNotFound):
			return NotFound("approval", id)
		case errors.Is(err, charging.ErrApprovalClosed):
			return Errorf(http.StatusConflict, TypeInvalidRequest, "approval_closed", "id", "The approval %s is no longer pending (resolved, used or expired).", id)
		case err != nil:
			return err
		}
		writeJSON(w, http.StatusOK, a)
		return nil
	}
}

package server

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/gorilla/mux"

	"github.com/perfectpay/perfectpay/authz"
	"github.com/perfectpay/perfectpay/charging"
	"github.com/perfectpay/perfectpay/internal/apierr"
	"github.com/perfectpay/perfectpay/payments"
	"github.com/perfectpay/perfectpay/store"
)

// AgentCharger checks agent charge requests and decides and makes agent
// charges (charging.Service).
type AgentCharger interface {
	NewRequest(r charging.RawRequest) (charging.Request, error)
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
	tok := PrincipalFrom(r).Agent
	if tok == nil || h.agents == nil {
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
			return BadRequest(apierr.ParameterMissing, param, "Missing required param: %s.", param)
		}
	}
	var purchase *payments.Purchase
	if req.Description != "" || len(req.LineItems) > 0 || req.OrderURL != "" {
		purchase = &payments.Purchase{Description: req.Description, LineItems: req.LineItems, OrderURL: req.OrderURL}
	}
	// Checked once, here; the one value flows down unchanged.
	creq, err := h.agents.NewRequest(charging.RawRequest{
		Amount: *amount, Currency: req.Currency, PaymentMethod: req.PaymentMethod, MerchantID: req.Merchant,
		Capture: req.Capture == nil || *req.Capture, Purchase: purchase, ApprovalID: req.Approval,
		IdempotencyKey: r.Header.Get("Idempotency-Key"),
	})
	if err != nil {
		return err
	}
	approval := req.Approval
	respond := func(w http.ResponseWriter, result any, err error) error {
		out, _ := result.(*charging.Outcome)
		return respondAgentCharge(w, out, err, approval)
	}
	// The charge's transactions store the answer under the
	// Idempotency-Key with the outcome they record.
	RespondWith(r, respond)
	out, err := h.agents.Charge(r.Context(), tok, creq)
	return respond(w, out, err)
}

// respondAgentCharge writes the answer to an agent charge: its outcome,
// or the error it ended in (returned, for the error writer).
func respondAgentCharge(w http.ResponseWriter, out *charging.Outcome, err error, approval string) error {
	var denied *charging.DeniedError
	var revoked *charging.RevokedError
	var challenge *charging.ApprovalRequiredError
	var pending *charging.PendingError
	var mismatch *charging.MismatchError
	switch {
	case errors.As(err, &pending):
		// The charge made under this key has no outcome yet: not stored,
		// so the retry after Retry-After gets the outcome.
		DontStoreResponse(w)
		e := Errorf(http.StatusConflict, TypeIdempotency, "charge_in_progress", "Idempotency-Key",
			"The charge %s made under this Idempotency-Key is still being processed; retry after a short while for its outcome.", pending.ChargeID)
		e.RetryAfter = 1
		e.Extra = map[string]any{"charge": map[string]any{"id": pending.ChargeID, "object": "charge", "status": "pending"}}
		return e
	case errors.As(err, &mismatch):
		return Errorf(http.StatusUnprocessableEntity, TypeIdempotency, "idempotency_key_reused", "Idempotency-Key",
			"Keys for idempotent requests can only be used with the same parameters they were first used with: charge %s was made with other parameters under this key.", mismatch.ChargeID)
	case errors.As(err, &revoked):
		verb := "revoked"
		if revoked.Suspended {
			verb = "suspended"
		}
		e := Errorf(http.StatusForbidden, TypePermission, revoked.Code(), "", "The %s %s was %s; this charge was denied.", revoked.What, revoked.ID, verb)
		e.Extra = map[string]any{"decision": decisionView(revoked.Decision)}
		return e
	case errors.As(err, &denied):
		d := denied.Decision
		if denied.Retryable {
			DontStoreResponse(w)
		}
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
		return Errorf(http.StatusConflict, TypeInvalidRequest, "approval_used", "approval", "The approval %s was already used for a charge.", approval)
	}
	var ce *payments.CardError
	if errors.As(err, &ce) && out != nil {
		e := paymentsError(err, "charge", "").(*Error) //nolint:errorlint // our own answer, built by paymentsError, never a wrapped error
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

// idempotencyScope is the set of Idempotency-Keys a request's key belongs
// to: its credential's, and for an agent's access token its mandate's too,
// so the same key sent for two mandates never shares an answer.
func idempotencyScope(p *Principal) string {
	if tok := p.Agent; tok != nil {
		if m, _, err := charging.MandateOf(tok); err == nil {
			return p.CredentialID + ":" + m
		}
	}
	return p.CredentialID
}

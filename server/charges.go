package server

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/gorilla/mux"

	"github.com/perfectpay/perfectpay/accounts"
	"github.com/perfectpay/perfectpay/fraud"
	"github.com/perfectpay/perfectpay/internal/apierr"
	"github.com/perfectpay/perfectpay/internal/page"
	"github.com/perfectpay/perfectpay/merchants"
	"github.com/perfectpay/perfectpay/payments"
	"github.com/perfectpay/perfectpay/store"
)

// ChargeCore is the payment core the charge endpoints read with and make
// merchant charges on (payments.Service).
type ChargeCore interface {
	Create(ctx context.Context, p payments.ChargeParams) (*payments.Charge, error)
	Get(ctx context.Context, o payments.Owner, id string) (*payments.Charge, error)
	List(ctx context.Context, o payments.Owner, p page.Page) ([]payments.Charge, bool, error)
	ListForMerchant(ctx context.Context, merchantID string, livemode bool, p page.Page) ([]payments.Charge, bool, error)
	GetRefund(ctx context.Context, o payments.Owner, id string) (*payments.Refund, error)
}

// ChargeOps captures, voids and refunds charges. With agent charges on it
// is the charging service, which keeps mandate budgets in step in the
// same transactions; without, the payment core itself.
type ChargeOps interface {
	Capture(ctx context.Context, o payments.Owner, id string, amount *int64) (*payments.Charge, error)
	Void(ctx context.Context, o payments.Owner, id string) (*payments.Charge, error)
	Refund(ctx context.Context, p payments.RefundParams) (*payments.Refund, error)
}

// MerchantProfiles finds the caller's merchant profile.
type MerchantProfiles interface {
	Mine(ctx context.Context, tenantID string) (*merchants.Merchant, error)
}

// ChargeHandlers serve charges and refunds: merchant-initiated with a
// secret or restricted key, agent-initiated with an agent's access token
// (through the decision pipeline, see agentcharges.go).
type ChargeHandlers struct {
	p   ChargeCore
	ops ChargeOps
	// agents decides agent charges; nil refuses agent tokens.
	agents AgentCharger
	// merchants nil turns GET /v1/merchant/charges off.
	merchants MerchantProfiles
}

// NewChargeHandlers returns the charge and refund endpoints: p reads and
// makes merchant charges, ops captures, voids and refunds, agents (nil:
// off) decides agent charges, merchants (nil: off) serves the charges
// made to the caller's merchant account.
func NewChargeHandlers(p ChargeCore, ops ChargeOps, agents AgentCharger, merchants MerchantProfiles) *ChargeHandlers {
	return &ChargeHandlers{p: p, ops: ops, agents: agents, merchants: merchants}
}

// Mount registers the routes.
func (h *ChargeHandlers) Mount(api *API) {
	api.Handle(http.MethodPost, "/v1/charges", Access{Scope: "charges:write", Agent: h.agents != nil}, h.create)
	api.Handle(http.MethodGet, "/v1/charges", Access{Scope: "charges:read"}, h.list)
	if h.merchants != nil {
		api.Handle(http.MethodGet, "/v1/merchant/charges", Access{Scope: "charges:read"}, h.listForMerchant)
	}
	api.Handle(http.MethodGet, "/v1/charges/{id}", Access{Scope: "charges:read"}, h.get)
	api.Handle(http.MethodPost, "/v1/charges/{id}/capture", Access{Scope: "charges:write"}, h.capture)
	api.Handle(http.MethodPost, "/v1/charges/{id}/void", Access{Scope: "charges:write"}, h.void)
	api.Handle(http.MethodPost, "/v1/refunds", Access{Scope: "charges:write"}, h.refund)
	api.Handle(http.MethodGet, "/v1/refunds/{id}", Access{Scope: "charges:read"}, h.getRefund)
}

func owner(r *http.Request) payments.Owner {
	p := PrincipalFrom(r)
	return payments.Owner{TenantID: p.TenantID, Livemode: p.Key != nil && p.Key.Key.Mode == accounts.ModeLive}
}

// amountParam parses an optional amount: a JSON integer of minor units.
func amountParam(raw json.RawMessage, param string) (*int64, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	n, err := payments.ParseAmount(string(raw))
	if err != nil {
		return nil, BadRequest(apierr.ParameterInvalid, param, "%s must be a positive integer in the currency's minor units (e.g. 1050 for 10.50 USD).", param)
	}
	return &n, nil
}

// chargeIdempotencyKey scopes the request's Idempotency-Key to its
// credential, as the idempotency middleware does ("" without a key).
func chargeIdempotencyKey(r *http.Request) string {
	k := r.Header.Get("Idempotency-Key")
	if k == "" {
		return ""
	}
	return PrincipalFrom(r).CredentialID + ":" + k
}

// requiredAmount parses the required amount of a charge.
func requiredAmount(raw json.RawMessage) (*int64, error) {
	amount, err := amountParam(raw, "amount")
	if err == nil && amount == nil {
		err = BadRequest(apierr.ParameterMissing, "amount", "Missing required param: amount.")
	}
	return amount, err
}

// paymentsError maps the payment core's errors to API errors.
func paymentsError(err error, kind, id string) error {
	var ce *payments.CardError
	switch {
	case errors.As(err, &ce):
		e := Errorf(http.StatusPaymentRequired, TypeCard, ce.Code, "", "%s", ce.Message)
		e.DeclineCode = ce.DeclineCode
		if ce.Charge != nil {
			e.Extra = map[string]any{"charge": ce.Charge}
		}
		return e
	case errors.Is(err, payments.ErrChargeBusy):
		e := Errorf(http.StatusConflict, TypeInvalidRequest, "charge_operation_in_progress", "charge",
			"Another capture or void of this charge is under way; retry shortly.")
		e.RetryAfter = 1
		return e
	case errors.Is(err, store.ErrNotFound):
		return NotFound(kind, id)
	}
	return err
}

type chargeRequest struct {
	Amount        json.RawMessage   `json:"amount"`
	Currency      string            `json:"currency"`
	PaymentMethod string            `json:"payment_method"`
	Capture       *bool             `json:"capture"`
	Description   string            `json:"description"`
	Metadata      map[string]string `json:"metadata"`
}

func (h *ChargeHandlers) create(w http.ResponseWriter, r *http.Request) error {
	if PrincipalFrom(r).Agent != nil {
		return h.createAgentCharge(w, r)
	}
	var req chargeRequest
	if err := DecodeJSON(r, &req); err != nil {
		return err
	}
	amount, err := requiredAmount(req.Amount)
	if err != nil {
		return err
	}
	capture := req.Capture == nil || *req.Capture
	c, err := h.p.Create(r.Context(), payments.ChargeParams{
		Owner: owner(r), Amount: *amount, Currency: req.Currency, PaymentMethod: req.PaymentMethod,
		Capture: capture, Description: req.Description, Metadata: req.Metadata,
		IdempotencyKey: chargeIdempotencyKey(r), RiskSignals: fraud.RiskSignalsFrom(r.Context()),
	})
	if err != nil {
		return paymentsError(err, "charge", "")
	}
	writeJSON(w, http.StatusOK, c)
	return nil
}

func (h *ChargeHandlers) get(w http.ResponseWriter, r *http.Request) error {
	id := mux.Vars(r)["id"]
	c, err := h.p.Get(r.Context(), owner(r), id)
	if err != nil {
		return paymentsError(err, "charge", id)
	}
	writeJSON(w, http.StatusOK, c)
	return nil
}

func (h *ChargeHandlers) list(w http.ResponseWriter, r *http.Request) error {
	pg, err := listPage(r)
	if err != nil {
		return err
	}
	page, more, err := h.p.List(r.Context(), owner(r), pg)
	if err != nil {
		return paymentsError(err, "charge", "")
	}
	return writeChargePage(w, "/v1/charges", page, more)
}

func writeChargePage(w http.ResponseWriter, url string, page []payments.Charge, more bool) error {
	if page == nil {
		page = []payments.Charge{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "url": url, "data": page, "has_more": more})
	return nil
}

// listForMerchant lists the charges agents made to the caller's merchant
// account, whoever paid them.
func (h *ChargeHandlers) listForMerchant(w http.ResponseWriter, r *http.Request) error {
	m, err := h.merchants.Mine(r.Context(), PrincipalFrom(r).TenantID)
	if errors.Is(err, store.ErrNotFound) {
		return Errorf(http.StatusNotFound, TypeInvalidRequest, "merchant_profile_missing", "", "This account has no merchant profile; create one with POST /v1/merchants.")
	}
	if err != nil {
		return err
	}
	pg, err := listPage(r)
	if err != nil {
		return err
	}
	page, more, err := h.p.ListForMerchant(r.Context(), m.ID, owner(r).Livemode, pg)
	if err != nil {
		return paymentsError(err, "charge", "")
	}
	views := make([]merchantChargeView, len(page))
	for i := range page {
		views[i] = viewForMerchant(&page[i])
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "url": "/v1/merchant/charges", "data": views, "has_more": more})
	return nil
}

// merchantChargeView is what a merchant sees of a charge another tenant's
// agent made to it: the sale, not the payer's card token, fingerprint,
// mandate, agent or metadata.
type merchantChargeView struct {
	ID             string             `json:"id"`
	Object         string             `json:"object"`
	Livemode       bool               `json:"livemode"`
	Status         string             `json:"status"`
	Amount         int64              `json:"amount"`
	AmountCaptured int64              `json:"amount_captured"`
	AmountRefunded int64              `json:"amount_refunded"`
	Currency       string             `json:"currency"`
	CardBrand      string             `json:"card_brand"`
	Purchase       *payments.Purchase `json:"purchase"`
	Created        time.Time          `json:"created"`
}

func viewForMerchant(c *payments.Charge) merchantChargeView {
	return merchantChargeView{ID: c.ID, Object: "merchant_charge", Livemode: c.Livemode, Status: c.Status, Amount: c.Amount,
		AmountCaptured: c.AmountCaptured, AmountRefunded: c.AmountRefunded, Currency: c.Currency, CardBrand: c.Card.Brand,
		Purchase: c.Purchase, Created: c.Created}
}

func (h *ChargeHandlers) capture(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Amount json.RawMessage `json:"amount"`
	}
	if err := DecodeJSON(r, &req); err != nil {
		return err
	}
	amount, err := amountParam(req.Amount, "amount")
	if err != nil {
		return err
	}
	id := mux.Vars(r)["id"]
	c, err := h.ops.Capture(r.Context(), owner(r), id, amount)
	if err != nil {
		return paymentsError(err, "charge", id)
	}
	writeJSON(w, http.StatusOK, c)
	return nil
}

func (h *ChargeHandlers) void(w http.ResponseWriter, r *http.Request) error {
	if err := DecodeJSON(r, &struct{}{}); err != nil {
		return err
	}
	id := mux.Vars(r)["id"]
	c, err := h.ops.Void(r.Context(), owner(r), id)
	if err != nil {
		return paymentsError(err, "charge", id)
	}
	writeJSON(w, http.StatusOK, c)
	return nil
}

func (h *ChargeHandlers) refund(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Charge string          `json:"charge"`
		Amount json.RawMessage `json:"amount"`
		Reason string          `json:"reason"`
	}
	if err := DecodeJSON(r, &req); err != nil {
		return err
	}
	amount, err := amountParam(req.Amount, "amount")
	if err != nil {
		return err
	}
	ref, err := h.ops.Refund(r.Context(), payments.RefundParams{Owner: owner(r), ChargeID: req.Charge, Amount: amount, Reason: req.Reason})
	if err != nil {
		return paymentsError(err, "charge", req.Charge)
	}
	writeJSON(w, http.StatusOK, ref)
	return nil
}

func (h *ChargeHandlers) getRefund(w http.ResponseWriter, r *http.Request) error {
	id := mux.Vars(r)["id"]
	ref, err := h.p.GetRefund(r.Context(), owner(r), id)
	if err != nil {
		return paymentsError(err, "refund", id)
	}
	writeJSON(w, http.StatusOK, ref)
	return nil
}

package mcpserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/ory/fosite"

	"github.com/perfectpay/perfectpay/audit"
	"github.com/perfectpay/perfectpay/authz"
	"github.com/perfectpay/perfectpay/charging"
	"github.com/perfectpay/perfectpay/fraud"
	"github.com/perfectpay/perfectpay/internal/apierr"
	"github.com/perfectpay/perfectpay/internal/money"
	"github.com/perfectpay/perfectpay/mandates"
	"github.com/perfectpay/perfectpay/merchants"
	"github.com/perfectpay/perfectpay/payments"
	"github.com/perfectpay/perfectpay/policies"
	"github.com/perfectpay/perfectpay/store"
)

// Every tool's input and output. Amounts are integers in the currency's
// minor unit (cents for usd), as everywhere in the API.

type noInput struct{}

// MandateView is get_mandate's answer.
type MandateView struct {
	ID                    string     `json:"id"`
	Status                string     `json:"status"`
	Currency              string     `json:"currency"`
	Budget                int64      `json:"budget"`
	Spent                 int64      `json:"spent"`
	RemainingBudget       int64      `json:"remaining_budget" jsonschema:"what may still be spent, the least left on this mandate and every mandate it was delegated from"`
	RemainingPeriodBudget *int64     `json:"remaining_period_budget,omitempty"`
	Period                string     `json:"period,omitempty"`
	MaxAmountPerCharge    *int64     `json:"max_amount_per_charge,omitempty"`
	ApprovalThreshold     *int64     `json:"approval_threshold,omitempty" jsonschema:"charges above this amount need a person's approval"`
	PaymentMethods        []string   `json:"payment_methods"`
	AllowedMerchants      []string   `json:"allowed_merchants,omitempty"`
	AllowedCategories     []string   `json:"allowed_categories,omitempty"`
	ValidUntil            *time.Time `json:"valid_until,omitempty"`
	Description           string     `json:"description,omitempty"`
	Summary               string     `json:"summary"`
}

type findMerchantInput struct {
	Domain string `json:"domain" jsonschema:"the merchant's website domain, e.g. books.acme.example"`
}

// MerchantView is one merchant found by domain.
type MerchantView struct {
	ID          string   `json:"id"`
	DisplayName string   `json:"display_name"`
	MCC         string   `json:"mcc"`
	Country     string   `json:"country"`
	Domains     []string `json:"verified_domains"`
}

type findMerchantOutput struct {
	Merchants []MerchantView `json:"merchants"`
}

type payInput struct {
	Amount         int64             `json:"amount" jsonschema:"the amount in the currency's minor unit (cents for usd)"`
	Currency       string            `json:"currency" jsonschema:"ISO 4217 code, lower case, e.g. usd"`
	Merchant       string            `json:"merchant" jsonschema:"the merchant's account id (acct_…), from find_merchant"`
	PaymentMethod  string            `json:"payment_method,omitempty" jsonschema:"a card token of the mandate (tok_…); optional when the mandate has one"`
	Description    string            `json:"description,omitempty" jsonschema:"what is being bought, shown to the person"`
	IdempotencyKey string            `json:"idempotency_key" jsonschema:"a unique id for this purchase; call again with the same one to retry safely"`
	Approval       string            `json:"approval,omitempty" jsonschema:"the approval id (apr_…) a person approved, when retrying a purchase that needed one"`
	RiskSignals    []riskSignalInput `json:"risk_signals,omitempty" jsonschema:"your own view of the purchase's risk, at most 20; they can ask for review or deny, never allow"`
}

// riskSignalInput is one risk signal of pay, as POST /v1/charges takes it.
type riskSignalInput struct {
	Type   string  `json:"type" jsonschema:"a short token, e.g. new_device"`
	Score  float64 `json:"score" jsonschema:"0 to 100"`
	Action string  `json:"action" jsonschema:"allow, review or block"`
}

// PayResult is pay's answer.
type PayResult struct {
	Outcome  string             `json:"outcome" jsonschema:"paid, authorized, declined, denied, approval_required, revoked or in_progress"`
	Charge   *ChargeView        `json:"charge,omitempty"`
	Reasons  []string           `json:"reasons,omitempty"`
	Approval *charging.Approval `json:"approval,omitempty"`
	Decision string             `json:"decision,omitempty"`
}

// ChargeView is a charge as an agent sees it.
type ChargeView struct {
	ID             string    `json:"id"`
	Status         string    `json:"status"`
	Amount         int64     `json:"amount"`
	AmountCaptured int64     `json:"amount_captured"`
	AmountRefunded int64     `json:"amount_refunded"`
	Currency       string    `json:"currency"`
	Merchant       string    `json:"merchant"`
	Mandate        string    `json:"mandate"`
	Created        time.Time `json:"created"`
	FailureCode    string    `json:"failure_code,omitempty"`
}

type getChargeInput struct {
	ID string `json:"id" jsonschema:"the charge id (ch_…)"`
}

type listChargesInput struct {
	Limit int `json:"limit,omitempty" jsonschema:"how many of the newest charges, 1 to 100 (default 10)"`
}

type listChargesOutput struct {
	Charges []ChargeView `json:"charges"`
}

type approvalInput struct {
	Approval string `json:"approval" jsonschema:"the approval id (apr_…) pay returned"`
}

type delegateInput struct {
	Agent              string   `json:"agent" jsonschema:"the sub-agent's client id"`
	Budget             int64    `json:"budget" jsonschema:"the total the sub-agent may spend, in minor units; at most your remaining budget"`
	MaxAmountPerCharge *int64   `json:"max_amount_per_charge,omitempty"`
	ApprovalThreshold  *int64   `json:"approval_threshold,omitempty"`
	AllowedMerchants   []string `json:"allowed_merchants,omitempty" jsonschema:"a subset of yours"`
	Description        string   `json:"description,omitempty"`
	ValidUntil         string   `json:"valid_until,omitempty" jsonschema:"RFC 3339 time, before your own mandate ends"`
}

type delegateOutput struct {
	AccessToken string `json:"access_token" jsonschema:"the sub-agent's token; hand it to the sub-agent only"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int64  `json:"expires_in"`
	Mandate     string `json:"mandate" jsonschema:"the child mandate created for the sub-agent"`
}

type revokeOutput struct {
	Mandate string   `json:"mandate"`
	Revoked []string `json:"revoked"`
}

func (s *Server) addTools() {
	ro := &mcp.ToolAnnotations{ReadOnlyHint: true, OpenWorldHint: ptr(false)}
	mcp.AddTool(s.mcp, &mcp.Tool{Name: "get_mandate", Annotations: ro,
		Description: "Your mandate: its limits, the budget and period budget left, the merchants and cards you may use."}, s.getMandate)
	mcp.AddTool(s.mcp, &mcp.Tool{Name: "find_merchant", Annotations: ro,
		Description: "Find a merchant by its verified website domain; pay needs its account id."}, s.findMerchant)
	mcp.AddTool(s.mcp, &mcp.Tool{Name: "pay",
		Annotations: &mcp.ToolAnnotations{DestructiveHint: ptr(false), IdempotentHint: true, OpenWorldHint: ptr(true)},
		Description: "Pay a merchant with the mandate's card. The policy decides; a refusal says which limit stopped it. " +
			"Retrying with the same idempotency_key never pays twice."}, s.pay)
	mcp.AddTool(s.mcp, &mcp.Tool{Name: "get_charge", Annotations: ro,
		Description: "One charge made under your mandate."}, s.getCharge)
	mcp.AddTool(s.mcp, &mcp.Tool{Name: "list_charges", Annotations: ro,
		Description: "The newest charges made under your mandate."}, s.listCharges)
	mcp.AddTool(s.mcp, &mcp.Tool{Name: "request_approval", Annotations: ro,
		Description: "Where a person approves a purchase pay said needs approval, and whether they have: " +
			"show the URL to the person, then call pay again with the approval id once it is approved."}, s.requestApproval)
	mcp.AddTool(s.mcp, &mcp.Tool{Name: "delegate",
		Description: "Give a sub-agent a narrower part of your mandate (RFC 8693 token exchange): a child mandate " +
			"within yours and a token for it. Revoking your mandate revokes the child too."}, s.delegate)
	mcp.AddTool(s.mcp, &mcp.Tool{Name: "revoke",
		Annotations: &mcp.ToolAnnotations{DestructiveHint: ptr(true), IdempotentHint: true},
		Description: "Give up your mandate for good (and every mandate delegated from it). Nothing can be paid with it afterwards."}, s.revoke)
}

func ptr[T any](v T) *T { return &v }

// text is a tool result whose one line says what happened, for people
// reading the transcript; the structured content carries the data.
func text(format string, args ...any) *mcp.CallToolResult {
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: fmt.Sprintf(format, args...)}}}
}

// refusal is a tool error the model reads (never a protocol error): what
// was refused and why, with structured details.
func refusal(structured any, format string, args ...any) *mcp.CallToolResult {
	r := text(format, args...)
	r.IsError = true
	r.StructuredContent = structured
	return r
}

// toolError turns a service error into a tool error; only failures of
// the server itself (store down, bug) remain Go errors, which the SDK
// reports as a failed call without details.
func (s *Server) toolError(ctx context.Context, tool string, err error) (*mcp.CallToolResult, error) {
	var inv *apierr.Invalid
	var nf *apierr.NotFound
	var cf *apierr.Conflict
	var fb *apierr.Forbidden
	var un *apierr.Unavailable
	var te *authz.TokenError
	switch {
	case errors.As(err, &inv):
		return refusal(map[string]any{"code": string(inv.Code), "param": inv.Param}, "%s", inv.Error()), nil
	case errors.As(err, &nf):
		return refusal(map[string]any{"code": "resource_missing"}, "%s", nf.Error()), nil
	case errors.As(err, &cf):
		return refusal(map[string]any{"code": string(cf.Code)}, "%s", cf.Message), nil
	case errors.As(err, &fb):
		return refusal(map[string]any{"code": string(fb.Code)}, "%s", fb.Message), nil
	case errors.As(err, &te):
		return refusal(map[string]any{"code": te.Code}, "%s", te.Description), nil
	case errors.Is(err, store.ErrNotFound):
		return refusal(map[string]any{"code": "resource_missing"}, "Not found."), nil
	case errors.As(err, &un), errors.Is(err, store.ErrUnavailable):
		return refusal(map[string]any{"code": "store_unavailable"}, "The service is briefly unavailable; retry in a few seconds."), nil
	}
	var oe *fosite.RFC6749Error
	if errors.As(err, &oe) && oe.CodeField < 500 {
		msg := oe.DescriptionField
		if oe.HintField != "" {
			msg += " " + oe.HintField
		}
		return refusal(map[string]any{"code": oe.ErrorField}, "%s", msg), nil
	}
	s.d.Log.ErrorContext(ctx, "mcp tool failed", "tool", tool, "err", err)
	return nil, fmt.Errorf("%s failed; retry later", tool)
}

// record writes the audit entry of a tool call: which tool, for which
// mandate, with what outcome (the effects are audited by the services).
func (s *Server) record(ctx context.Context, at *authz.AccessToken, tool, target string, data map[string]any) {
	if s.d.Audit == nil {
		return
	}
	if data == nil {
		data = map[string]any{}
	}
	data["tool"] = tool
	data["agent"] = at.ClientID
	err := s.d.Audit.Autocommit(context.WithoutCancel(ctx), func(tx audit.Writer) error {
		return audit.RecordFor(ctx, tx, at.TenantID, "mcp.tool_called", target, data)
	})
	if err != nil {
		s.d.Log.ErrorContext(ctx, "mcp tool audit failed", "tool", tool, "err", err)
	}
}

func (s *Server) mandateOf(at *authz.AccessToken) (string, error) {
	id, _, err := charging.MandateOf(at)
	return id, err
}

func (s *Server) getMandate(ctx context.Context, req *mcp.CallToolRequest, _ noInput) (*mcp.CallToolResult, *MandateView, error) {
	ctx, at, err := caller(ctx, req.Extra)
	if err != nil {
		return nil, nil, err
	}
	v, err := s.mandateView(ctx, at)
	if err != nil {
		r, err := s.toolError(ctx, "get_mandate", err)
		return r, nil, err
	}
	return text("%s", v.Summary), v, nil
}

// mandate reads the token's mandate as it stands: its terms, without what
// is left up its chain (pay and delegate need only the terms).
func (s *Server) mandate(ctx context.Context, at *authz.AccessToken) (*mandates.Mandate, error) {
	id, err := s.mandateOf(at)
	if err != nil {
		return nil, err
	}
	return s.d.Mandates.Get(ctx, at.TenantID, id)
}

// mandateView reads the token's mandate and what is left of it: the least
// left on it and every ancestor, as introspection reports it.
func (s *Server) mandateView(ctx context.Context, at *authz.AccessToken) (*MandateView, error) {
	m, err := s.mandate(ctx, at)
	if err != nil {
		return nil, err
	}
	v := &MandateView{
		ID: m.ID, Status: m.Status, Currency: m.Currency, Budget: m.Budget, Spent: m.Spent,
		RemainingBudget: max(m.Remaining(), 0), Period: m.Period, MaxAmountPerCharge: m.MaxAmountPerCharge,
		ApprovalThreshold: m.ApprovalThreshold, PaymentMethods: m.PaymentMethods, AllowedMerchants: m.AllowedMerchants,
		AllowedCategories: m.AllowedCategories, ValidUntil: m.ValidUntil, Description: m.Description,
	}
	if info, err := s.d.Issuer.Introspect(ctx, authz.Caller{TenantID: at.TenantID, AgentID: at.ClientID}, at.Raw, ""); err == nil {
		if n, ok := asInt(info["remaining_budget"]); ok {
			v.RemainingBudget = n
		}
		if n, ok := asInt(info["remaining_period_budget"]); ok {
			v.RemainingPeriodBudget = &n
		}
	}
	v.Summary = s.describe(ctx, m, v)
	return v, nil
}

func asInt(v any) (int64, bool) {
	switch n := v.(type) {
	case int64:
		return n, true
	case int:
		return int64(n), true
	case float64:
		return int64(n), true
	}
	return 0, false
}

// describe says a mandate's limits in plain words.
func (s *Server) describe(ctx context.Context, m *mandates.Mandate, v *MandateView) string {
	cur := m.Currency
	var b strings.Builder
	fmt.Fprintf(&b, "Mandate %s (%s): %s left of a %s budget", m.ID, m.Status, money.Format(v.RemainingBudget, cur), money.Format(m.Budget, cur))
	if v.RemainingPeriodBudget != nil && m.Period != "" {
		fmt.Fprintf(&b, ", %s left this %s", money.Format(*v.RemainingPeriodBudget, cur), strings.TrimSuffix(m.Period, "ly"))
	}
	if m.MaxAmountPerCharge != nil {
		fmt.Fprintf(&b, "; at most %s per purchase", money.Format(*m.MaxAmountPerCharge, cur))
	}
	if len(m.AllowedMerchants) > 0 {
		names := make([]string, 0, len(m.AllowedMerchants))
		for _, a := range m.AllowedMerchants {
			names = append(names, s.merchantName(ctx, a))
		}
		fmt.Fprintf(&b, "; only at %s", strings.Join(names, ", "))
	}
	if m.ValidUntil != nil {
		fmt.Fprintf(&b, "; until %s", m.ValidUntil.UTC().Format("2 Jan 2006"))
	}
	if m.ApprovalThreshold != nil {
		fmt.Fprintf(&b, "; purchases over %s need a person's approval", money.Format(*m.ApprovalThreshold, cur))
	}
	b.WriteString(".")
	return b.String()
}

// merchantName names an allowed merchant: its display name for an account
// id, the domain itself otherwise.
func (s *Server) merchantName(ctx context.Context, ref string) string {
	if !strings.HasPrefix(ref, "acct_") || s.d.Merchants == nil {
		return ref
	}
	m, err := s.d.Merchants.Get(ctx, ref)
	if err != nil {
		return ref
	}
	return m.DisplayName
}

func (s *Server) findMerchant(ctx context.Context, req *mcp.CallToolRequest, in findMerchantInput) (*mcp.CallToolResult, *findMerchantOutput, error) {
	ctx, _, err := caller(ctx, req.Extra)
	if err != nil {
		return nil, nil, err
	}
	if strings.TrimSpace(in.Domain) == "" || len(in.Domain) > 253 {
		return refusal(map[string]any{"param": "domain"}, "Give the merchant's website domain."), nil, nil
	}
	ms, err := s.d.Merchants.FindByDomain(ctx, strings.ToLower(strings.TrimSpace(in.Domain)))
	if err != nil {
		r, err := s.toolError(ctx, "find_merchant", err)
		return r, nil, err
	}
	out := &findMerchantOutput{Merchants: []MerchantView{}}
	for _, m := range ms {
		out.Merchants = append(out.Merchants, merchantView(&m))
	}
	if len(out.Merchants) == 0 {
		return text("No merchant has verified the domain %s.", in.Domain), out, nil
	}
	return text("%s (%s) sells at %s.", out.Merchants[0].DisplayName, out.Merchants[0].ID, in.Domain), out, nil
}

func merchantView(m *merchants.Merchant) MerchantView {
	v := MerchantView{ID: m.ID, DisplayName: m.DisplayName, MCC: m.MCC, Country: m.Country, Domains: []string{}}
	for _, d := range m.Domains {
		if d.VerifiedAt != nil {
			v.Domains = append(v.Domains, d.Name)
		}
	}
	return v
}

func chargeView(c *payments.Charge) *ChargeView {
	return &ChargeView{ID: c.ID, Status: c.Status, Amount: c.Amount, AmountCaptured: c.AmountCaptured,
		AmountRefunded: c.AmountRefunded, Currency: c.Currency, Merchant: c.MerchantID, Mandate: c.MandateID,
		Created: c.Created, FailureCode: c.FailureCode}
}

func reasons(d *charging.Decision) []string {
	if d == nil {
		return nil
	}
	out := make([]string, 0, len(d.Reasons))
	for _, r := range d.Reasons {
		out = append(out, r.Message)
	}
	return out
}

func (s *Server) pay(ctx context.Context, req *mcp.CallToolRequest, in payInput) (*mcp.CallToolResult, *PayResult, error) {
	ctx, at, err := caller(ctx, req.Extra)
	if err != nil {
		return nil, nil, err
	}
	if in.IdempotencyKey == "" {
		return refusal(map[string]any{"param": "idempotency_key"}, "Give each purchase an idempotency_key, and reuse it to retry."), nil, nil
	}
	if len(in.RiskSignals) > 0 {
		rs := make([]policies.RiskSignal, len(in.RiskSignals))
		for i, r := range in.RiskSignals {
			rs[i] = policies.RiskSignal(r)
		}
		if err := fraud.CheckRiskSignals(rs); err != nil {
			var re *fraud.RiskSignalError
			if errors.As(err, &re) {
				return refusal(map[string]any{"param": re.Param}, "%s", re.Message), nil, nil
			}
			return nil, nil, err
		}
		ctx = fraud.WithRiskSignals(ctx, rs)
	}
	pm := in.PaymentMethod
	if pm == "" {
		v, err := s.mandate(ctx, at)
		if err != nil {
			r, err := s.toolError(ctx, "pay", err)
			return r, nil, err
		}
		if len(v.PaymentMethods) != 1 {
			return refusal(map[string]any{"param": "payment_method"}, "The mandate has several cards; name one as payment_method."), nil, nil
		}
		pm = v.PaymentMethods[0]
	}
	var purchase *payments.Purchase
	if in.Description != "" {
		purchase = &payments.Purchase{Description: in.Description}
	}
	creq, err := s.d.Charges.NewRequest(charging.RawRequest{
		Amount: in.Amount, Currency: in.Currency, PaymentMethod: pm, MerchantID: in.Merchant, Capture: true,
		Purchase: purchase, ApprovalID: in.Approval, IdempotencyKey: "mcp:" + in.IdempotencyKey,
	})
	var out *charging.Outcome
	if err == nil {
		out, err = s.d.Charges.Charge(ctx, at, creq)
	}
	res, structured, err := s.payResult(ctx, in, out, err)
	if res != nil && structured != nil {
		data := map[string]any{"outcome": structured.Outcome}
		target := ""
		if structured.Charge != nil {
			target = structured.Charge.ID
		}
		s.record(ctx, at, "pay", target, data)
	}
	return res, structured, err
}

// payResult maps the pipeline's answer as the REST handler does, into a
// result the model can act on.
func (s *Server) payResult(ctx context.Context, in payInput, out *charging.Outcome, err error) (*mcp.CallToolResult, *PayResult, error) {
	var denied *charging.DeniedError
	var revoked *charging.RevokedError
	var challenge *charging.ApprovalRequiredError
	var pending *charging.PendingError
	var mismatch *charging.MismatchError
	var card *payments.CardError
	amt := money.Format(in.Amount, strings.ToUpper(in.Currency))
	shop := s.merchantName(ctx, in.Merchant)
	switch {
	case err == nil:
		r := &PayResult{Outcome: "paid", Charge: chargeView(out.Charge), Decision: out.Decision.ID}
		if out.Charge.Status == payments.StatusRequiresCapture {
			r.Outcome = "authorized"
		}
		return text("Paid %s to %s: charge %s (%s).", amt, shop, out.Charge.ID, out.Charge.Status), r, nil
	case errors.As(err, &challenge):
		r := &PayResult{Outcome: "approval_required", Approval: challenge.Approval, Reasons: reasons(challenge.Decision), Decision: challenge.Decision.ID}
		return refusal(r, "A person must approve this purchase of %s (%s). Show them %s, then call pay again with the same idempotency_key and approval %q.",
			amt, strings.Join(r.Reasons, "; "), challenge.Approval.URL, challenge.Approval.ID), r, nil
	case errors.As(err, &denied):
		r := &PayResult{Outcome: "denied", Reasons: reasons(denied.Decision), Decision: denied.Decision.ID}
		return refusal(r, "The mandate does not allow this purchase of %s: %s.", amt, strings.Join(r.Reasons, "; ")), r, nil
	case errors.As(err, &revoked):
		verb := "revoked"
		if revoked.Suspended {
			verb = "suspended"
		}
		r := &PayResult{Outcome: "revoked", Reasons: []string{fmt.Sprintf("the %s %s was %s", revoked.What, revoked.ID, verb)}}
		if revoked.Decision != nil {
			r.Decision = revoked.Decision.ID
		}
		return refusal(r, "Refused: the %s %s was %s; nothing can be paid with it.", revoked.What, revoked.ID, verb), r, nil
	case errors.As(err, &pending):
		r := &PayResult{Outcome: "in_progress", Charge: &ChargeView{ID: pending.ChargeID, Status: "pending"}}
		return refusal(r, "The purchase under this idempotency_key (charge %s) is still being processed; call pay again in a second for its outcome.", pending.ChargeID), r, nil
	case errors.As(err, &mismatch):
		return refusal(map[string]any{"param": "idempotency_key", "charge": mismatch.ChargeID},
			"This idempotency_key was used for charge %s with other parameters; use a new key for a new purchase.", mismatch.ChargeID), nil, nil
	case errors.Is(err, charging.ErrApprovalUsed):
		return refusal(map[string]any{"param": "approval"}, "The approval %s was already used for a purchase.", in.Approval), nil, nil
	case errors.As(err, &card):
		r := &PayResult{Outcome: "declined", Reasons: []string{card.Message}}
		if card.Charge != nil {
			r.Charge = chargeView(card.Charge)
		}
		if out != nil && out.Decision != nil {
			r.Decision = out.Decision.ID
		}
		return refusal(r, "The card was declined (%s): %s", card.Code, card.Message), r, nil
	}
	res, err := s.toolError(ctx, "pay", err)
	return res, nil, err
}

// ownCharge reads a charge made under the token's mandate; any other is
// not found, as it would be for another tenant.
func (s *Server) ownCharge(ctx context.Context, at *authz.AccessToken, id string) (*payments.Charge, error) {
	mid, err := s.mandateOf(at)
	if err != nil {
		return nil, err
	}
	for _, live := range []bool{false, true} {
		c, err := s.d.Charges.Get(ctx, payments.Owner{TenantID: at.TenantID, Livemode: live}, id)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if c.MandateID != mid {
			return nil, store.ErrNotFound
		}
		return c, nil
	}
	return nil, store.ErrNotFound
}

func (s *Server) getCharge(ctx context.Context, req *mcp.CallToolRequest, in getChargeInput) (*mcp.CallToolResult, *ChargeView, error) {
	ctx, at, err := caller(ctx, req.Extra)
	if err != nil {
		return nil, nil, err
	}
	if !strings.HasPrefix(in.ID, "ch_") || len(in.ID) > 64 {
		return refusal(map[string]any{"param": "id"}, "Give a charge id (ch_…)."), nil, nil
	}
	c, err := s.ownCharge(ctx, at, in.ID)
	if err != nil {
		r, err := s.toolError(ctx, "get_charge", err)
		return r, nil, err
	}
	v := chargeView(c)
	return text("Charge %s: %s to %s, %s.", c.ID, money.Format(c.Amount, strings.ToUpper(c.Currency)), s.merchantName(ctx, c.MerchantID), c.Status), v, nil
}

// listCharges reads the mandate's history (its charge events, oldest
// first) and keeps the newest limit charges.
func (s *Server) listCharges(ctx context.Context, req *mcp.CallToolRequest, in listChargesInput) (*mcp.CallToolResult, *listChargesOutput, error) {
	ctx, at, err := caller(ctx, req.Extra)
	if err != nil {
		return nil, nil, err
	}
	limit := in.Limit
	if limit == 0 {
		limit = 10
	}
	if limit < 1 || limit > 100 {
		return refusal(map[string]any{"param": "limit"}, "limit must be between 1 and 100."), nil, nil
	}
	mid, err := s.mandateOf(at)
	if err != nil {
		r, err := s.toolError(ctx, "list_charges", err)
		return r, nil, err
	}
	var newest []string
	seen := map[string]bool{}
	f := mandates.EventFilter{TenantID: at.TenantID, MandateID: mid, Limit: 100}
	for {
		evs, more, err := s.d.Mandates.Events(ctx, f)
		if err != nil {
			r, err := s.toolError(ctx, "list_charges", err)
			return r, nil, err
		}
		for _, e := range evs {
			if !strings.HasPrefix(e.Type, "charge.") {
				continue
			}
			var d struct {
				Charge string `json:"charge"`
			}
			if json.Unmarshal(e.Data, &d) == nil && d.Charge != "" && !seen[d.Charge] {
				seen[d.Charge] = true
				newest = append(newest, d.Charge)
			}
		}
		if !more || len(evs) == 0 {
			break
		}
		f.StartingAfter = evs[len(evs)-1].ID
	}
	out := &listChargesOutput{Charges: []ChargeView{}}
	for i := len(newest) - 1; i >= 0 && len(out.Charges) < limit; i-- {
		c, err := s.ownCharge(ctx, at, newest[i])
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			r, err := s.toolError(ctx, "list_charges", err)
			return r, nil, err
		}
		out.Charges = append(out.Charges, *chargeView(c))
	}
	return text("%d charge(s) under mandate %s.", len(out.Charges), mid), out, nil
}

func (s *Server) requestApproval(ctx context.Context, req *mcp.CallToolRequest, in approvalInput) (*mcp.CallToolResult, *charging.Approval, error) {
	ctx, at, err := caller(ctx, req.Extra)
	if err != nil {
		return nil, nil, err
	}
	if !strings.HasPrefix(in.Approval, "apr_") || len(in.Approval) > 64 {
		return refusal(map[string]any{"param": "approval"}, "Give the approval id (apr_…) pay returned."), nil, nil
	}
	a, err := s.d.Charges.GetApproval(ctx, at.TenantID, in.Approval)
	if err == nil && a.AgentID != at.ClientID {
		err = store.ErrNotFound
	}
	if err != nil {
		r, err := s.toolError(ctx, "request_approval", err)
		return r, nil, err
	}
	switch a.Status {
	case "approved":
		return text("Approval %s was approved: call pay again with the same idempotency_key and approval %q.", a.ID, a.ID), a, nil
	case "pending":
		return text("Approval %s is waiting for the person: show them %s (it expires %s).", a.ID, a.URL, a.ExpiresAt.UTC().Format(time.RFC3339)), a, nil
	}
	return text("Approval %s is %s.", a.ID, a.Status), a, nil
}

func (s *Server) delegate(ctx context.Context, req *mcp.CallToolRequest, in delegateInput) (*mcp.CallToolResult, *delegateOutput, error) {
	ctx, at, err := caller(ctx, req.Extra)
	if err != nil {
		return nil, nil, err
	}
	v, err := s.mandate(ctx, at)
	if err != nil {
		r, err := s.toolError(ctx, "delegate", err)
		return r, nil, err
	}
	terms := map[string]any{
		"type": "payment_mandate", "currency": v.Currency, "budget": in.Budget, "payment_methods": v.PaymentMethods,
	}
	// What the caller leaves out stays as its own mandate has it: a child
	// is never wider than its parent.
	if in.MaxAmountPerCharge != nil {
		terms["max_amount_per_charge"] = *in.MaxAmountPerCharge
	} else if v.MaxAmountPerCharge != nil {
		terms["max_amount_per_charge"] = *v.MaxAmountPerCharge
	}
	if in.ApprovalThreshold != nil {
		terms["approval_threshold"] = *in.ApprovalThreshold
	} else if v.ApprovalThreshold != nil {
		terms["approval_threshold"] = *v.ApprovalThreshold
	}
	if len(in.AllowedMerchants) > 0 {
		terms["allowed_merchants"] = in.AllowedMerchants
	} else if len(v.AllowedMerchants) > 0 {
		terms["allowed_merchants"] = v.AllowedMerchants
	}
	if len(v.AllowedCategories) > 0 {
		terms["allowed_categories"] = v.AllowedCategories
	}
	if in.Description != "" {
		terms["description"] = in.Description
	}
	if in.ValidUntil != "" {
		terms["valid_until"] = in.ValidUntil
	} else if v.ValidUntil != nil {
		terms["valid_until"] = v.ValidUntil.UTC().Format(time.RFC3339)
	}
	details, _ := json.Marshal([]any{terms})
	d, err := s.d.Issuer.Delegate(ctx, at, in.Agent, url.Values{
		"authorization_details": {string(details)}, "scope": {"charges:read charges:write mandates:read"},
	})
	if err != nil {
		r, err := s.toolError(ctx, "delegate", err)
		return r, nil, err
	}
	out := &delegateOutput{AccessToken: d.AccessToken, TokenType: d.TokenType, ExpiresIn: d.ExpiresIn}
	if b, err := json.Marshal(d.AuthorizationDetails); err == nil {
		var granted []struct {
			MandateID string `json:"mandate_id"`
		}
		if json.Unmarshal(b, &granted) == nil && len(granted) == 1 {
			out.Mandate = granted[0].MandateID
		}
	}
	s.record(ctx, at, "delegate", out.Mandate, map[string]any{"sub_agent": in.Agent, "budget": in.Budget})
	return text("Delegated %s to %s under child mandate %s; give the sub-agent its token.",
		money.Format(in.Budget, strings.ToUpper(v.Currency)), in.Agent, out.Mandate), out, nil
}

func (s *Server) revoke(ctx context.Context, req *mcp.CallToolRequest, _ noInput) (*mcp.CallToolResult, *revokeOutput, error) {
	ctx, at, err := caller(ctx, req.Extra)
	if err != nil {
		return nil, nil, err
	}
	mid, err := s.mandateOf(at)
	if err != nil {
		r, err := s.toolError(ctx, "revoke", err)
		return r, nil, err
	}
	_, revoked, err := s.d.Mandates.Revoke(ctx, at.TenantID, mid)
	if err != nil {
		r, err := s.toolError(ctx, "revoke", err)
		return r, nil, err
	}
	if revoked == nil {
		revoked = []string{}
	}
	s.record(ctx, at, "revoke", mid, map[string]any{"revoked": revoked})
	return text("Mandate %s is revoked (%d mandate(s) in all); nothing more can be paid with it.", mid, len(revoked)),
		&revokeOutput{Mandate: mid, Revoked: revoked}, nil
}

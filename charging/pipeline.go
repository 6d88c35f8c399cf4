// Package charging decides and executes agent charges (DESIGN.md §3.4):
// verify the token (done by the HTTP layer's agent authenticator) → load
// the mandate chain and revocation state → gather velocity signals → OPA
// decision → in one transaction re-check revocations, reserve the amount on
// the mandate and every ancestor (root first), insert the charge, its
// decision record, audit entry and outbox event → processor → capture or
// release. It also runs step-up approvals and binds the payment_mandate
// authorization details type to the issuer.
package charging

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/perfectpay/perfectpay/accounts"
	"github.com/perfectpay/perfectpay/audit"
	"github.com/perfectpay/perfectpay/authz"
	"github.com/perfectpay/perfectpay/internal/ids"
	"github.com/perfectpay/perfectpay/internal/money"
	"github.com/perfectpay/perfectpay/mandates"
	"github.com/perfectpay/perfectpay/merchants"
	"github.com/perfectpay/perfectpay/payments"
	"github.com/perfectpay/perfectpay/policies"
	"github.com/perfectpay/perfectpay/store"
	"github.com/perfectpay/perfectpay/webhooks"
)

// Tx is everything a pipeline transaction touches.
type Tx interface {
	payments.Tx
	mandates.Repo
	merchants.Repo
	authz.Repo
	accounts.Repo
	Repo
}

// Config tunes the pipeline.
type Config struct {
	// ApprovalTTL is how long a step-up approval may be given and used.
	ApprovalTTL time.Duration
	// MaxDepth bounds delegation (child mandates).
	MaxDepth int
	// PublicURL is the base of approval links.
	PublicURL string
}

// Service is the agent charge pipeline.
type Service struct {
	db     store.Runner[Tx]
	engine *payments.Engine[Tx]
	policy *policies.Engine
	cfg    Config
	log    *slog.Logger
	now    func() time.Time
}

// New returns the pipeline. Its payment engine runs the budget hooks in the
// payment core's own transactions; call Engine().RunResolver on it.
func New(db store.Runner[Tx], pay *payments.Service, policy *policies.Engine, cfg Config, log *slog.Logger) *Service {
	if cfg.ApprovalTTL <= 0 {
		cfg.ApprovalTTL = 15 * time.Minute
	}
	if cfg.MaxDepth <= 0 {
		cfg.MaxDepth = 3
	}
	s := &Service{db: db, policy: policy, cfg: cfg, log: log, now: time.Now}
	s.engine = payments.NewEngine(pay, db, payments.Hooks[Tx]{Reserve: s.reserve, Settled: s.settled})
	return s
}

// Engine is the payment engine whose hooks keep mandate budgets: captures,
// voids and refunds of agent charges must go through it.
func (s *Service) Engine() *payments.Engine[Tx] { return s.engine }

// Policy returns the policy engine.
func (s *Service) Policy() *policies.Engine { return s.policy }

func (s *Service) clock() time.Time { return s.now().UTC().Truncate(time.Microsecond) }

// Request is an agent's charge request. What the agent says about the
// purchase (Purchase) is context for people; no rule reads it.
type Request struct {
	Amount         int64
	Currency       string
	PaymentMethod  string
	MerchantID     string
	Capture        bool
	Purchase       *payments.Purchase
	ApprovalID     string
	IdempotencyKey string
}

// Outcome is an allowed charge with its decision.
type Outcome struct {
	Charge   *payments.Charge
	Decision *Decision
}

// RequestError is a malformed request (HTTP 400).
type RequestError struct{ Param, Code, Message string }

func (e *RequestError) Error() string { return e.Message }

// DeniedError is a charge the policy (or a budget that ran out while it
// decided) refused. Its decision carries the reasons.
type DeniedError struct{ Decision *Decision }

func (e *DeniedError) Error() string { return "charge denied: " + reasonText(e.Decision.Reasons) }

// RevokedError is a charge refused because its token, agent (or a
// delegator), mandate (or an ancestor) or tenant was revoked.
type RevokedError struct {
	What     string // token | agent | mandate | tenant
	ID       string
	Decision *Decision
}

func (e *RevokedError) Error() string { return fmt.Sprintf("the %s %s was revoked", e.What, e.ID) }

// ApprovalRequiredError is a challenged charge: a human must approve it;
// the agent retries with the approval id and the same idempotency key.
type ApprovalRequiredError struct {
	Approval *Approval
	Decision *Decision
}

func (e *ApprovalRequiredError) Error() string {
	return "approval required: " + reasonText(e.Decision.Reasons)
}

// ErrApprovalUsed is a retry with an approval that was already spent.
var ErrApprovalUsed = errors.New("pipeline: the approval was already used")

func reasonText(rs []policies.Reason) string {
	msgs := make([]string, len(rs))
	for i, r := range rs {
		msgs[i] = r.Message
	}
	return strings.Join(msgs, "; ")
}

// attempt is the state of one charge request that the payment core's
// Reserve hook needs; it travels in the context.
type attempt struct {
	tok      *authz.AccessToken
	chain    []string
	decision *Decision
	approval *Approval
	err      error // a refusal the hook decided, to tell from other errors
}

type attemptKey struct{}

// MandateOf returns the mandate id a token is bound to, and the token's
// payment_mandate details (claims carry both the id and the limits).
func MandateOf(tok *authz.AccessToken) (string, []mandates.AuthorizationDetail, error) {
	details, err := claimDetails(tok.AuthorizationDetails)
	if err != nil || len(details) == 0 {
		return "", nil, &RequestError{Code: "mandate_required", Message: "The access token carries no payment_mandate authorization details; request the token with authorization_details=[{\"type\":\"payment_mandate\",\"mandate_id\":\"mdt_…\"}]."}
	}
	id := ""
	for _, d := range details {
		if d.MandateID != "" {
			if id != "" && id != d.MandateID {
				return "", nil, &RequestError{Code: "mandate_ambiguous", Message: "The access token names more than one mandate."}
			}
			id = d.MandateID
		}
	}
	if id == "" {
		return "", nil, &RequestError{Code: "mandate_required", Message: "The access token names no mandate."}
	}
	return id, details, nil
}

// claimDetails decodes the payment_mandate elements of a token's
// authorization_details claim (which we signed: the claims form, id and
// limits together, not a request to validate).
func claimDetails(raw json.RawMessage) ([]mandates.AuthorizationDetail, error) {
	if len(raw) == 0 {
		return nil, nil
	}
	var all []mandates.AuthorizationDetail
	if err := json.Unmarshal(raw, &all); err != nil {
		return nil, err
	}
	out := all[:0]
	for _, d := range all {
		if d.Type == mandates.AuthorizationDetailsType {
			out = append(out, d)
		}
	}
	return out, nil
}

// binding is the digest that ties an approval to one exact request.
func binding(tenantID, mandateID, agentID string, r *Request) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%s\n%s\n%d\n%s\n%s\n%s\n%s", tenantID, mandateID, agentID, r.Amount, r.Currency,
		r.PaymentMethod, r.MerchantID, r.IdempotencyKey)
	return hex.EncodeToString(h.Sum(nil))
}

// loaded is what the decision needs from the store.
type loaded struct {
	chain    []mandates.Mandate
	merchant *merchants.Merchant
	agent    *authz.Agent
	tenant   *accounts.Tenant
	agentV   Counts
	mandateV Counts
	approval *Approval
}

func (s *Service) load(ctx context.Context, tok *authz.AccessToken, mandateID string, req *Request, now time.Time) (*loaded, error) {
	l := &loaded{}
	err := s.db.Autocommit(ctx, func(tx Tx) error {
		var err error
		if l.chain, err = tx.MandateChain(ctx, tok.TenantID, mandateID); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return &RequestError{Code: "mandate_missing", Message: fmt.Sprintf("The token's mandate %s does not exist.", mandateID)}
			}
			return err
		}
		if l.merchant, err = tx.GetMerchant(ctx, req.MerchantID); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return &RequestError{Param: "merchant", Code: "resource_missing", Message: fmt.Sprintf("No such merchant: '%s'.", req.MerchantID)}
			}
			return err
		}
		if l.agent, err = tx.GetAgent(ctx, tok.ClientID); err != nil {
			return err
		}
		if l.tenant, err = tx.GetTenant(ctx, tok.TenantID); err != nil {
			return err
		}
		// The counts read every decision of the agent and of the mandate in
		// the last hour; with every velocity limit off no rule reads them.
		if q := velocityQuery(s.policy.Velocity(), now); q.Needed() {
			if l.agentV, l.mandateV, err = tx.Velocity(ctx, tok.TenantID, tok.ClientID, mandateID, q); err != nil {
				return err
			}
		}
		if req.ApprovalID != "" {
			if l.approval, err = tx.GetApproval(ctx, tok.TenantID, req.ApprovalID); err != nil {
				if errors.Is(err, store.ErrNotFound) {
					return &RequestError{Param: "approval", Code: "resource_missing", Message: fmt.Sprintf("No such approval: '%s'.", req.ApprovalID)}
				}
				return err
			}
		}
		return nil
	})
	return l, err
}

// velocityQuery asks only for the counts a limit is set for. Each count
// stops 1,000 past its limit: enough to decide and to report a true number
// in all but runaway cases, while bounding the rows a decision reads.
func velocityQuery(v policies.Velocity, now time.Time) VelocityQuery {
	capOf := func(limit int) int {
		if limit <= 0 {
			return 0
		}
		return limit + 1000
	}
	return VelocityQuery{Since: now.Add(-time.Hour),
		AgentCharges: capOf(v.AgentChargesPerHour), AgentDeclines: capOf(v.AgentDeclinesPerHour),
		MandateCharges: capOf(v.MandateChargesPerHour), MandateDeclines: capOf(v.MandateDeclinesPerHour)}
}

// Charge decides an agent's charge and, when allowed, makes it.
func (s *Service) Charge(ctx context.Context, tok *authz.AccessToken, req Request) (*Outcome, error) {
	if err := validate(&req); err != nil {
		return nil, err
	}
	mandateID, details, err := MandateOf(tok)
	if err != nil {
		return nil, err
	}
	now := s.clock()
	l, err := s.load(ctx, tok, mandateID, &req, now)
	if err != nil {
		return nil, err
	}
	m := &l.chain[len(l.chain)-1]
	chainIDs := make([]string, len(l.chain))
	for i := range l.chain {
		chainIDs[i] = l.chain[i].ID
	}
	bind := binding(tok.TenantID, mandateID, tok.ClientID, &req)
	dec := &Decision{ID: ids.New("dec"), TenantID: tok.TenantID, MandateID: mandateID, AgentID: tok.ClientID, CreatedAt: now}

	// Fast refusal the policy need not see: a revoked mandate in the chain.
	// Revoked credentials are refused by the agent authenticator (its cache
	// hears revocations through LISTEN/NOTIFY) and, authoritatively, inside
	// the charge transaction (reserve) and the approval's (challenge).
	for i := range l.chain {
		if l.chain[i].Status == mandates.StatusRevoked {
			return nil, s.refuseRevoked(ctx, dec, "mandate", l.chain[i].ID)
		}
	}
	if a := l.approval; a != nil && a.Binding != bind {
		dec.Result, dec.Reasons = policies.Deny, []policies.Reason{{Code: "approval_invalid",
			Message: fmt.Sprintf("approval %s was given for a different charge request", a.ID)}}
		return nil, s.refuse(ctx, dec, &DeniedError{Decision: dec})
	}

	in := s.input(tok, details, l, &req, now)
	start := time.Now()
	d, err := s.policy.Decide(ctx, in)
	dec.LatencyMicros = time.Since(start).Microseconds()
	if err != nil {
		s.log.ErrorContext(ctx, "policy evaluation failed; denying", "err", err)
	}
	dec.Result, dec.Reasons, dec.PolicyVersion = d.Result, d.Reasons, d.PolicyVersion
	if dec.InputDigest, err = in.Digest(); err != nil {
		return nil, err
	}
	if l.approval != nil {
		dec.ApprovalID = l.approval.ID
	}

	switch d.Result {
	case policies.Deny:
		return nil, s.refuse(ctx, dec, &DeniedError{Decision: dec})
	case policies.Challenge:
		return nil, s.challenge(ctx, tok, dec, l, &req, bind, now)
	}

	att := &attempt{tok: tok, chain: chainIDs, decision: dec, approval: l.approval}
	ch, err := s.engine.Create(context.WithValue(ctx, attemptKey{}, att), payments.ChargeParams{
		Owner: payments.Owner{TenantID: tok.TenantID}, LivemodeOfCard: true,
		Amount: req.Amount, Currency: req.Currency, PaymentMethod: req.PaymentMethod, Capture: req.Capture,
		Description: purchaseDescription(req.Purchase), MandateID: m.ID, AgentID: tok.ClientID,
		MerchantID: req.MerchantID, Purchase: req.Purchase, IdempotencyKey: chargeKey(tok, req.IdempotencyKey),
	})
	if att.err != nil && errors.Is(err, att.err) {
		// The transaction rolled back with the decision record in it:
		// record the refusal on its own.
		return nil, s.refuse(ctx, dec, att.err)
	}
	if ch == nil && err != nil && dec.ChargeID == "" {
		// The core refused before the reservation (say the card token was
		// deleted): the allowed decision is still recorded, marked so.
		dec.Outcome = "not_created"
		if rerr := s.db.InTx(ctx, func(tx Tx) error { return recordDecision(ctx, tx, dec) }); rerr != nil {
			s.log.ErrorContext(ctx, "recording a decision failed", "decision", dec.ID, "err", rerr)
		}
		return nil, err
	}
	if ch != nil {
		dec.ChargeID = ch.ID
		dec.Outcome = ch.Status
	}
	return &Outcome{Charge: ch, Decision: dec}, err
}

// chargeKey scopes an Idempotency-Key to the agent, as the idempotency
// middleware does, so a charge is created once per key.
func chargeKey(tok *authz.AccessToken, key string) string {
	if key == "" {
		return ""
	}
	return tok.ClientID + ":" + key
}

func purchaseDescription(p *payments.Purchase) string {
	if p == nil {
		return ""
	}
	return p.Description
}

func revokedID(what string, tok *authz.AccessToken) string {
	switch what {
	case authz.RevokedToken:
		return tok.JTI
	case authz.RevokedTenant:
		return tok.TenantID
	}
	return tok.ClientID
}

// validate checks the request's own fields (the policy checks the rest).
func validate(r *Request) error {
	if r.Amount < 1 || r.Amount > money.MaxAmount {
		return &RequestError{Param: "amount", Code: "parameter_invalid", Message: fmt.Sprintf("amount must be a positive integer of minor units up to %d.", money.MaxAmount)}
	}
	cur := strings.ToUpper(r.Currency)
	if _, ok := money.Exponent(cur); !ok {
		return &RequestError{Param: "currency", Code: "parameter_invalid", Message: fmt.Sprintf("Unknown currency %q: use an ISO 4217 code such as USD.", r.Currency)}
	}
	r.Currency = cur
	if !strings.HasPrefix(r.PaymentMethod, "tok_") || len(r.PaymentMethod) > 64 {
		return &RequestError{Param: "payment_method", Code: "parameter_invalid", Message: "payment_method must be a card token id (tok_…)."}
	}
	if !mandates.IsMerchantID(r.MerchantID) {
		return &RequestError{Param: "merchant", Code: "parameter_invalid", Message: "merchant must be a merchant account id (acct_…)."}
	}
	if r.ApprovalID != "" && (!strings.HasPrefix(r.ApprovalID, "apr_") || len(r.ApprovalID) > 64) {
		return &RequestError{Param: "approval", Code: "parameter_invalid", Message: "approval must be an approval id (apr_…)."}
	}
	// The purchase is stored before the payment core sees it (approvals,
	// their events), so it is checked here: bounds, and no card number.
	if err := payments.ValidatePurchase(r.Purchase); err != nil {
		var pe *payments.ParamError
		if errors.As(err, &pe) {
			return &RequestError{Param: pe.Param, Code: pe.Code, Message: pe.Message}
		}
		return err
	}
	return nil
}

// input builds the policy input. The merchant facts come from the
// merchant's registered profile, never from the request.
func (s *Service) input(tok *authz.AccessToken, details []mandates.AuthorizationDetail, l *loaded, req *Request, now time.Time) *policies.Input {
	in := &policies.Input{
		Now: now,
		Charge: policies.Charge{
			Amount: req.Amount, Currency: req.Currency, PaymentMethod: req.PaymentMethod,
			Merchant: policies.Merchant{ID: l.merchant.ID, Name: l.merchant.DisplayName, MCC: l.merchant.MCC,
				Country: l.merchant.Country, Domains: l.merchant.VerifiedDomains()},
		},
		Token:    policies.Token{Sub: tok.Subject, ClientID: tok.ClientID, Act: actor(tok.Act), AuthorizationDetails: details},
		Chain:    l.chain,
		Agent:    policies.Agent{ClientID: l.agent.ID, Status: l.agent.Status},
		Tenant:   policies.Tenant{ID: l.tenant.ID, Status: l.tenant.Status},
		Velocity: policies.VelocityCounts{Agent: l.agentV, Mandate: l.mandateV},
	}
	if req.Purchase != nil {
		var ctxDoc map[string]any
		if b, err := json.Marshal(req.Purchase); err == nil && json.Unmarshal(b, &ctxDoc) == nil {
			in.Charge.Context = ctxDoc
		}
	}
	if a := l.approval; a != nil {
		status := a.Status
		if status == ApprovalUsed {
			status = ApprovalDenied // spent: treated like a refusal
		}
		in.Approval = &policies.Approval{ID: a.ID, Status: status, MandateID: a.MandateID, Amount: a.Amount,
			Currency: a.Currency, PaymentMethod: a.PaymentMethod, Merchant: a.MerchantID, ExpiresAt: a.ExpiresAt}
	}
	return in
}

func actor(a *authz.Actor) *policies.Actor {
	if a == nil {
		return nil
	}
	return &policies.Actor{Sub: a.Sub, Act: actor(a.Act)}
}

// recordDecision writes the decision record, the mandate's history entry
// and the audit entry, in tx.
func recordDecision(ctx context.Context, tx Tx, d *Decision) error {
	if err := tx.CreateDecision(ctx, d); err != nil {
		return err
	}
	data, _ := json.Marshal(d)
	if err := tx.AppendMandateEvent(ctx, &mandates.Event{ID: ids.New("mev"), TenantID: d.TenantID, MandateID: d.MandateID,
		Type: "decision." + d.Result, ActorType: audit.ActorAgent, ActorID: d.AgentID, Data: data, CreatedAt: d.CreatedAt}); err != nil {
		return err
	}
	return audit.RecordFor(ctx, tx, d.TenantID, "charge.decision", d.ID, map[string]any{
		"mandate": d.MandateID, "agent": d.AgentID, "charge": d.ChargeID, "approval": d.ApprovalID,
		"result": d.Result, "reasons": d.Reasons, "policy_version": d.PolicyVersion,
		"input_digest": d.InputDigest, "latency_us": d.LatencyMicros,
	})
}

// refuse records a refusal in its own transaction and returns err.
func (s *Service) refuse(ctx context.Context, d *Decision, err error) error {
	if d.Result == "" || d.Result == policies.Allow {
		d.Result = policies.Deny
	}
	if d.PolicyVersion == "" {
		d.PolicyVersion = s.policy.Version()
	}
	if rerr := s.db.InTx(ctx, func(tx Tx) error { return recordDecision(ctx, tx, d) }); rerr != nil {
		return rerr
	}
	return err
}

func (s *Service) refuseRevoked(ctx context.Context, d *Decision, what, id string) error {
	d.Result = policies.Deny
	d.Reasons = []policies.Reason{{Code: what + "_revoked", Message: fmt.Sprintf("the %s %s was revoked", what, id)}}
	return s.refuse(ctx, d, &RevokedError{What: what, ID: id, Decision: d})
}

// challenge asks a human: it creates an approval for this exact request
// (or returns the pending one the agent presented again).
func (s *Service) challenge(ctx context.Context, tok *authz.AccessToken, d *Decision, l *loaded, req *Request, bind string, now time.Time) error {
	if a := l.approval; a != nil && a.Status == ApprovalPending && now.Before(a.ExpiresAt) {
		a.URL = s.approvalURL(a.ID)
		return s.refuse(ctx, d, &ApprovalRequiredError{Approval: a, Decision: d})
	}
	var purchase json.RawMessage
	if req.Purchase != nil {
		purchase, _ = json.Marshal(req.Purchase)
	}
	a := &Approval{
		ID: ids.New("apr"), Object: "approval", TenantID: d.TenantID, Status: ApprovalPending, MandateID: d.MandateID,
		AgentID: d.AgentID, Amount: req.Amount, Currency: req.Currency, PaymentMethod: req.PaymentMethod,
		MerchantID: req.MerchantID, Purchase: purchase, Reasons: d.Reasons, Binding: bind,
		CreatedAt: now, ExpiresAt: now.Add(s.cfg.ApprovalTTL),
	}
	d.ApprovalID = a.ID
	var revoked string
	err := s.db.InTx(ctx, func(tx Tx) error {
		// Nobody is asked to approve for revoked credentials.
		var err error
		if revoked, err = authz.CheckRevoked(ctx, tx, tok); err != nil || revoked != "" {
			return err
		}
		if err := tx.CreateApproval(ctx, a); err != nil {
			return err
		}
		if err := recordDecision(ctx, tx, d); err != nil {
			return err
		}
		if err := audit.RecordFor(ctx, tx, d.TenantID, "approval.requested", a.ID, map[string]any{
			"mandate": a.MandateID, "agent": a.AgentID, "amount": a.Amount, "currency": a.Currency, "merchant": a.MerchantID,
		}); err != nil {
			return err
		}
		return webhooks.Emit(ctx, tx, d.TenantID, "approval.requested", a)
	})
	if err != nil {
		return err
	}
	if revoked != "" {
		d.ApprovalID = ""
		return s.refuseRevoked(ctx, d, revoked, revokedID(revoked, tok))
	}
	a.URL = s.approvalURL(a.ID)
	return &ApprovalRequiredError{Approval: a, Decision: d}
}

func (s *Service) approvalURL(id string) string {
	return strings.TrimSuffix(s.cfg.PublicURL, "/") + "/v1/approvals/" + id
}

// reserve runs inside the transaction that inserts the charge: the
// authoritative re-check of revocations, the single use of an approval,
// the atomic reservation on the whole mandate chain, and the records.
func (s *Service) reserve(ctx context.Context, tx Tx, c *payments.Charge) error {
	att, _ := ctx.Value(attemptKey{}).(*attempt)
	if att == nil {
		if c.MandateID != "" {
			return errors.New("pipeline: agent charge without its decision")
		}
		return nil // a merchant charge: no mandate to reserve on
	}
	fail := func(err error) error {
		att.err = err
		return err
	}
	now := s.clock()
	if what, err := authz.CheckRevoked(ctx, tx, att.tok); err != nil {
		return err
	} else if what != "" {
		d := att.decision
		d.Result = policies.Deny
		d.Reasons = []policies.Reason{{Code: what + "_revoked", Message: fmt.Sprintf("the %s %s was revoked", what, revokedID(what, att.tok))}}
		return fail(&RevokedError{What: what, ID: revokedID(what, att.tok), Decision: d})
	}
	if a := att.approval; a != nil {
		a.Status, a.ChargeID = ApprovalUsed, c.ID
		if err := tx.UpdateApproval(ctx, a, ApprovalApproved); errors.Is(err, store.ErrConflict) {
			return fail(ErrApprovalUsed)
		} else if err != nil {
			return err
		}
	}
	res, err := tx.Reserve(ctx, att.chain, c.Amount, now)
	var refused *mandates.RefusedError
	if errors.As(err, &refused) {
		d := att.decision
		d.Result = policies.Deny
		if refused.Limit == mandates.LimitStatus && refused.Status == mandates.StatusRevoked {
			d.Reasons = []policies.Reason{{Code: "mandate_revoked", Message: fmt.Sprintf("the mandate %s was revoked", refused.MandateID)}}
			return fail(&RevokedError{What: "mandate", ID: refused.MandateID, Decision: d})
		}
		d.Reasons = []policies.Reason{refusalReason(refused, c)}
		return fail(&DeniedError{Decision: d})
	}
	if err != nil {
		return err
	}
	if err := tx.CreateHold(ctx, &Hold{ChargeID: c.ID, TenantID: c.TenantID, Reservation: *res, Held: c.Amount, Counted: true}); err != nil {
		return err
	}
	att.decision.ChargeID = c.ID
	if err := recordDecision(ctx, tx, att.decision); err != nil {
		return err
	}
	for _, id := range res.Exhausted {
		if err := audit.RecordFor(ctx, tx, c.TenantID, "mandate.exhausted", id, nil); err != nil {
			return err
		}
		if err := webhooks.Emit(ctx, tx, c.TenantID, "mandate.exhausted", map[string]any{"id": id, "object": "mandate"}); err != nil {
			return err
		}
	}
	return nil
}

// refusalReason explains a reservation a mandate refused after the policy
// allowed it (another charge took the budget in between).
func refusalReason(r *mandates.RefusedError, c *payments.Charge) policies.Reason {
	amt := money.Format(c.Amount, c.Currency)
	switch r.Limit {
	case mandates.LimitBudget:
		return policies.Reason{Code: "budget_exceeded", Message: fmt.Sprintf("charge %s exceeds the remaining budget of mandate %s", amt, r.MandateID)}
	case mandates.LimitPeriod:
		return policies.Reason{Code: "period_budget_exceeded", Message: fmt.Sprintf("charge %s exceeds the remaining period budget of mandate %s", amt, r.MandateID)}
	case mandates.LimitMaxCharges:
		return policies.Reason{Code: "max_charges_reached", Message: fmt.Sprintf("mandate %s has reached its maximum number of charges", r.MandateID)}
	case mandates.LimitWindow:
		return policies.Reason{Code: "mandate_expired", Message: fmt.Sprintf("mandate %s is outside its validity window", r.MandateID)}
	case mandates.LimitStatus:
		return policies.Reason{Code: "mandate_inactive", Message: fmt.Sprintf("mandate %s is %s", r.MandateID, r.Status)}
	}
	return policies.Reason{Code: "mandate_refused", Message: fmt.Sprintf("mandate %s refused the charge", r.MandateID)}
}

// settled keeps the hold in step with the charge: a decline or void gives
// everything back, a partial capture the uncaptured rest, a refund what
// was refunded.
func (s *Service) settled(ctx context.Context, tx Tx, c *payments.Charge) error {
	h, err := tx.LockHold(ctx, c.TenantID, c.ID)
	if errors.Is(err, store.ErrNotFound) {
		return nil // a merchant charge: no mandate
	}
	if err != nil {
		return err
	}
	target, counted := h.Held, h.Counted
	switch c.Status {
	case payments.StatusFailed, payments.StatusCanceled:
		target, counted = 0, false
	case payments.StatusRequiresCapture:
		target = c.Amount
	case payments.StatusSucceeded:
		target = c.AmountCaptured - c.AmountRefunded
	}
	if target < 0 {
		target = 0
	}
	if target < h.Held {
		r := h.Reservation
		r.Amount = h.Held - target
		// Only the release that stops the charge counting gives back its
		// place under max_charges.
		if err := tx.Release(ctx, &r, counted || !h.Counted); err != nil {
			return err
		}
		h.Held, h.Counted = target, counted
		if err := tx.UpdateHold(ctx, h); err != nil {
			return err
		}
	}
	if err := tx.SetDecisionOutcome(ctx, c.TenantID, c.ID, c.Status); err != nil {
		return err
	}
	data, _ := json.Marshal(map[string]any{"charge": c.ID, "status": c.Status, "amount": c.Amount,
		"captured": c.AmountCaptured, "refunded": c.AmountRefunded, "held": h.Held})
	return tx.AppendMandateEvent(ctx, &mandates.Event{ID: ids.New("mev"), TenantID: c.TenantID, MandateID: c.MandateID,
		Type: "charge." + c.Status, ActorType: audit.ActorSystem, Data: data, CreatedAt: s.clock()})
}

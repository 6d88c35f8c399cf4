package charging

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/perfectpay/perfectpay/accounts"
	"github.com/perfectpay/perfectpay/audit"
	"github.com/perfectpay/perfectpay/authz"
	"github.com/perfectpay/perfectpay/events"
	"github.com/perfectpay/perfectpay/fraud"
	"github.com/perfectpay/perfectpay/idempotency"
	"github.com/perfectpay/perfectpay/internal/apierr"
	"github.com/perfectpay/perfectpay/internal/ids"
	"github.com/perfectpay/perfectpay/internal/money"
	"github.com/perfectpay/perfectpay/mandates"
	"github.com/perfectpay/perfectpay/merchants"
	"github.com/perfectpay/perfectpay/payments"
	"github.com/perfectpay/perfectpay/policies"
	"github.com/perfectpay/perfectpay/store"
	"github.com/perfectpay/perfectpay/vault"
)

// Tx is everything a pipeline transaction touches.
type Tx interface {
	payments.Tx
	idempotency.Repo
	mandates.Repo
	merchants.Repo
	authz.Repo
	accounts.Repo
	accounts.TenantCountriesRepo
	AnomalyReader
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
	// GroupMax is the most charge transactions on one mandate chain a
	// node runs as one group transaction (group.go); 1 runs each alone,
	// 0 means DefaultGroupMax.
	GroupMax int
}

// Service is the agent charge pipeline. It owns the transactions of agent
// charges and of every capture, void, refund and resolution (any of which
// may move a mandate's budget): it calls the payment core's steps inside
// them, next to its ledger.
type Service struct {
	db     store.Runner[Tx]
	pay    *payments.Service
	policy *policies.Engine
	fraud  FraudSignals
	cfg    Config
	log    *slog.Logger
	now    func() time.Time
	groups groups
}

// New returns the pipeline on the payment core pay.
func New(db store.Runner[Tx], pay *payments.Service, policy *policies.Engine, cfg Config, log *slog.Logger) *Service {
	if cfg.ApprovalTTL <= 0 {
		cfg.ApprovalTTL = 15 * time.Minute
	}
	if cfg.MaxDepth <= 0 {
		cfg.MaxDepth = 3
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Service{db: db, pay: pay, policy: policy, cfg: cfg, log: log, now: time.Now}
}

// Policy returns the policy engine.
func (s *Service) Policy() *policies.Engine { return s.policy }

func (s *Service) clock() time.Time { return s.now().UTC().Truncate(time.Microsecond) }

// Request is an agent's charge request, checked once at the boundary
// (NewRequest) and passed down unchanged: the payment core checked the
// charge's own fields (amount bounds, currency, texts, purchase) and the
// pipeline the ids it names. What the agent says about the purchase is
// context for people; no rule reads it.
type Request struct {
	charge         payments.Checked
	approvalID     string
	idempotencyKey string
}

// RawRequest is an agent's charge request as the HTTP layer decoded it.
type RawRequest struct {
	Amount         int64
	Currency       string
	PaymentMethod  string
	MerchantID     string
	Capture        bool
	Purchase       *payments.Purchase
	ApprovalID     string
	IdempotencyKey string
}

// NewRequest checks r: an *apierr.Invalid names what is wrong.
func (s *Service) NewRequest(r RawRequest) (Request, error) {
	if !strings.HasPrefix(r.PaymentMethod, "tok_") || len(r.PaymentMethod) > 64 {
		return Request{}, &apierr.Invalid{Param: "payment_method", Code: apierr.ParameterInvalid, Message: "payment_method must be a card token id (tok_…)."}
	}
	if !mandates.IsMerchantID(r.MerchantID) {
		return Request{}, &apierr.Invalid{Param: "merchant", Code: apierr.ParameterInvalid, Message: "merchant must be a merchant account id (acct_…)."}
	}
	if r.ApprovalID != "" && (!strings.HasPrefix(r.ApprovalID, "apr_") || len(r.ApprovalID) > 64) {
		return Request{}, &apierr.Invalid{Param: "approval", Code: apierr.ParameterInvalid, Message: "approval must be an approval id (apr_…)."}
	}
	ck, err := s.pay.Check(payments.ChargeParams{Amount: r.Amount, Currency: r.Currency, PaymentMethod: r.PaymentMethod,
		Capture: r.Capture, Description: purchaseDescription(r.Purchase), MerchantID: r.MerchantID, Purchase: r.Purchase})
	if err != nil {
		return Request{}, err
	}
	return Request{charge: ck, approvalID: r.ApprovalID, idempotencyKey: r.IdempotencyKey}, nil
}

// policyCurrency is the ISO 4217 code as mandates state it (upper case).
func policyCurrency(p *payments.ChargeParams) string { return strings.ToUpper(p.Currency) }

// Outcome is an allowed charge with its decision.
type Outcome struct {
	Charge   *payments.Charge
	Decision *Decision
}

// DeniedError is a charge the policy (or a budget that ran out while it
// decided) refused. Its decision carries the reasons.
type DeniedError struct {
	Decision *Decision
	// Retryable: the refusal is not the request's final answer (an
	// approval presented with a request it was not given for), so it is
	// not stored for replay under the Idempotency-Key.
	Retryable bool
}

func (e *DeniedError) Error() string { return "charge denied: " + reasonText(e.Decision.Reasons) }

// RevokedError is a charge refused because its token, agent (or a
// delegator), mandate (or an ancestor) or tenant was revoked.
type RevokedError struct {
	What string // token | agent | mandate | tenant
	ID   string
	// Suspended: an agent that was suspended rather than revoked.
	Suspended bool
	Decision  *Decision
}

func (e *RevokedError) Error() string {
	if e.Suspended {
		return fmt.Sprintf("the %s %s was suspended", e.What, e.ID)
	}
	return fmt.Sprintf("the %s %s was revoked", e.What, e.ID)
}

// Code is the API error code: <what>_revoked or agent_suspended.
func (e *RevokedError) Code() string {
	if e.Suspended {
		return e.What + "_suspended"
	}
	return e.What + "_revoked"
}

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

// PendingError is a retry of a charge whose outcome is not known yet (its
// processor call is in flight, or its node stopped mid-call and the
// resolver will complete it): retry later, the answer will be its outcome.
type PendingError struct{ ChargeID string }

func (e *PendingError) Error() string {
	return fmt.Sprintf("the charge %s made under this Idempotency-Key is still in progress", e.ChargeID)
}

// MismatchError is a retry under an Idempotency-Key whose charge was made
// for a different request.
type MismatchError struct{ ChargeID string }

func (e *MismatchError) Error() string {
	return fmt.Sprintf("the Idempotency-Key was used for charge %s with different parameters", e.ChargeID)
}

// refusal is a refusal decided inside the charge transaction; it rolls
// the transaction back and is recorded on its own afterwards.
type refusal struct {
	d   *Decision
	err error
}

func (r *refusal) Error() string { return r.err.Error() }
func (r *refusal) Unwrap() error { return r.err }

// MandateOf returns the mandate id a token is bound to, and the token's
// payment_mandate details (claims carry both the id and the limits).
func MandateOf(tok *authz.AccessToken) (string, []mandates.AuthorizationDetail, error) {
	details, err := claimDetails(tok.AuthorizationDetails)
	if err != nil || len(details) == 0 {
		return "", nil, &apierr.Invalid{Code: "mandate_required", Message: "The access token carries no payment_mandate authorization details; request the token with authorization_details=[{\"type\":\"payment_mandate\",\"mandate_id\":\"mdt_…\"}]."}
	}
	id := ""
	for _, d := range details {
		if d.MandateID != "" {
			if id != "" && id != d.MandateID {
				return "", nil, &apierr.Invalid{Code: "mandate_ambiguous", Message: "The access token names more than one mandate."}
			}
			id = d.MandateID
		}
	}
	if id == "" {
		return "", nil, &apierr.Invalid{Code: "mandate_required", Message: "The access token names no mandate."}
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
func binding(tenantID, mandateID, agentID, key string, p *payments.ChargeParams) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%s\n%s\n%d\n%s\n%s\n%s\n%s", tenantID, mandateID, agentID, p.Amount, policyCurrency(p),
		p.PaymentMethod, p.MerchantID, key)
	return hex.EncodeToString(h.Sum(nil))
}

// loaded is what the decision needs from the store.
type loaded struct {
	// existing is the charge already made under the request's scoped
	// Idempotency-Key: its outcome is the answer, no decision is made.
	existing *payments.Charge
	chain    []mandates.Mandate
	merchant *merchants.Merchant
	agent    *authz.Agent
	// ancestors are the agents of the chain's mandates other than the
	// token's own, root first.
	ancestors []*authz.Agent
	tenant    *accounts.Tenant
	// countries is the tenant's own list of countries it may pay in.
	countries []string
	agentV    Counts
	mandateV  Counts
	approval  *Approval
	// standing is the agent's stored anomaly flag as read (readStanding:
	// the fraud defences read it, see readsStanding).
	readStanding bool
	standing     *fraud.Flag
	standingErr  error
}

func (s *Service) load(ctx context.Context, tok *authz.AccessToken, mandateID, key string, req *Request, now time.Time) (*loaded, error) {
	p := req.charge.Params()
	l := &loaded{}
	err := s.db.Autocommit(ctx, func(tx Tx) error {
		*l = loaded{} // a re-run starts afresh
		// Every read the decision needs, in one round trip; a retry's
		// charge is among them, and when it exists it is the answer and
		// the rest is not looked at.
		var existingErr, chainErr, merchantErr, approvalErr error
		reads := []func(tx Tx) error{
			func(tx Tx) error {
				l.chain, chainErr = tx.MandateChain(ctx, tok.TenantID, mandateID)
				return nil
			},
			func(tx Tx) error {
				l.merchant, merchantErr = tx.GetMerchant(ctx, p.MerchantID)
				return nil
			},
			func(tx Tx) (err error) { l.agent, err = tx.GetAgent(ctx, tok.ClientID); return err },
			func(tx Tx) (err error) {
				l.tenant, l.countries, err = tx.GetTenantWithCountries(ctx, tok.TenantID)
				return err
			},
		}
		if key != "" {
			// Before any decision: a retry gets the outcome of the charge
			// made under its key, never a fresh decision.
			reads = append(reads, func(tx Tx) error {
				l.existing, existingErr = tx.ChargeByIdempotencyKey(ctx, tok.TenantID, key)
				return nil
			})
		}
		// The counts read every decision of the agent and of the mandate in
		// the last hour; with every velocity limit off no rule reads them.
		if q := velocityQuery(s.policy.Velocity(), now); q.Needed() {
			reads = append(reads, func(tx Tx) (err error) {
				l.agentV, l.mandateV, err = tx.Velocity(ctx, tok.TenantID, tok.ClientID, mandateID, q)
				return err
			})
		}
		if req.approvalID != "" {
			reads = append(reads, func(tx Tx) error {
				l.approval, approvalErr = tx.GetApproval(ctx, tok.TenantID, req.approvalID)
				return nil
			})
		}
		if s.readsStanding() {
			l.readStanding = true
			reads = append(reads, func(tx Tx) error {
				l.standing, l.standingErr = tx.GetAnomaly(ctx, tok.TenantID, tok.ClientID)
				return nil
			})
		}
		err := tx.Prefetch(ctx, reads...)
		switch {
		case existingErr == nil && l.existing != nil:
			return nil
		case existingErr != nil && !errors.Is(existingErr, store.ErrNotFound):
			return existingErr
		}
		l.existing = nil
		if chainErr != nil {
			if errors.Is(chainErr, store.ErrNotFound) {
				return &apierr.Invalid{Code: "mandate_missing", Message: fmt.Sprintf("The token's mandate %s does not exist.", mandateID)}
			}
			return chainErr
		}
		if merchantErr != nil {
			if errors.Is(merchantErr, store.ErrNotFound) {
				return &apierr.Invalid{Param: "merchant", Code: apierr.ResourceMissing, Message: fmt.Sprintf("No such merchant: '%s'.", p.MerchantID)}
			}
			return merchantErr
		}
		if err != nil {
			return err
		}
		if approvalErr != nil {
			if errors.Is(approvalErr, store.ErrNotFound) {
				return &apierr.Invalid{Param: "approval", Code: apierr.ResourceMissing, Message: fmt.Sprintf("No such approval: '%s'.", req.approvalID)}
			}
			return approvalErr
		}
		// The agents of a delegated chain, in a second round trip (only
		// delegated chains have any).
		agentIDs := chainAgents(l.chain, tok.ClientID)
		ancestors := make([]*authz.Agent, len(agentIDs)) // assigned whole: a re-run starts afresh
		areads := make([]func(tx Tx) error, len(agentIDs))
		for i, id := range agentIDs {
			areads[i] = func(tx Tx) (err error) { ancestors[i], err = tx.GetAgent(ctx, id); return err }
		}
		if err := tx.Prefetch(ctx, areads...); err != nil {
			return err
		}
		l.ancestors = ancestors
		return nil
	})
	return l, err
}

// chainAgents are the agents of a mandate chain's mandates other than
// self, root first, each once.
func chainAgents(chain []mandates.Mandate, self string) []string {
	var out []string
	for i := range chain {
		if a := chain[i].Agent; a != "" && a != self && !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out
}

// inactive returns the first agent of agents that is revoked or suspended.
func inactive(agents ...*authz.Agent) *authz.Agent {
	for _, a := range agents {
		if a != nil && (a.Status == authz.AgentRevoked || a.Status == authz.AgentSuspended) {
			return a
		}
	}
	return nil
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

// Charge decides an agent's charge and, when allowed, makes it. A retry
// under the Idempotency-Key of a charge already made gets that charge's
// outcome (*PendingError while it is unresolved).
func (s *Service) Charge(ctx context.Context, tok *authz.AccessToken, req Request) (*Outcome, error) {
	mandateID, details, err := MandateOf(tok)
	if err != nil {
		return nil, err
	}
	p := req.charge.Params()
	key := chargeKey(tok, mandateID, req.idempotencyKey)
	now := s.clock()
	l, err := s.load(ctx, tok, mandateID, key, &req, now)
	if err != nil {
		return nil, err
	}
	if l.existing != nil {
		return s.replay(ctx, l.existing, &p)
	}
	bind := binding(tok.TenantID, mandateID, tok.ClientID, req.idempotencyKey, &p)
	dec := &Decision{ID: ids.New("dec"), TenantID: tok.TenantID, MandateID: mandateID, AgentID: tok.ClientID, CreatedAt: now}

	// Fast refusals the policy need not see: a revoked mandate in the
	// chain, an agent along it that is revoked or suspended. Revoked
	// credentials are refused by the agent authenticator (its cache hears
	// revocations through LISTEN/NOTIFY) and, authoritatively, inside the
	// charge transaction and the approval's.
	// A revoked tenant, before a node has heard of it, is named as such
	// (not a policy denial).
	if l.tenant.Status == accounts.TenantRevoked {
		return nil, s.refuse(ctx, dec, revoked(dec, "tenant", l.tenant.ID, false))
	}
	for i := range l.chain {
		if l.chain[i].Status == mandates.StatusRevoked {
			return nil, s.refuse(ctx, dec, revoked(dec, "mandate", l.chain[i].ID, false))
		}
	}
	if a := inactive(append([]*authz.Agent{l.agent}, l.ancestors...)...); a != nil {
		return nil, s.refuse(ctx, dec, revoked(dec, "agent", a.ID, a.Status == authz.AgentSuspended))
	}
	if a := l.approval; a != nil && a.Binding != bind {
		dec.Result, dec.Reasons = policies.Deny, []policies.Reason{{Code: "approval_invalid",
			Message: fmt.Sprintf("approval %s was given for a different charge request", a.ID)}}
		// Not final: the approval stays usable by the request it was given for.
		return nil, s.refuse(ctx, dec, &DeniedError{Decision: dec, Retryable: true})
	}

	in := s.input(tok, details, l, &p, now)
	s.assessFraud(ctx, tok, l, in)
	start := time.Now()
	d, err := s.policy.Decide(ctx, in)
	dec.LatencyMicros = time.Since(start).Microseconds()
	if err != nil {
		s.log.ErrorContext(ctx, "policy evaluation failed; denying", "err", err)
	}
	dec.Result, dec.Reasons, dec.PolicyVersion = d.Result, d.Reasons, d.PolicyVersion
	if dec.Input, err = in.JSON(); err != nil {
		return nil, err
	}
	dec.InputDigest = policies.DigestJSON(dec.Input)
	if l.approval != nil {
		dec.ApprovalID = l.approval.ID
	}

	switch d.Result {
	case policies.Deny:
		return nil, s.refuse(ctx, dec, &DeniedError{Decision: dec})
	case policies.Challenge:
		return nil, s.challenge(ctx, tok, dec, l, &p, bind, now)
	}

	ck := req.charge.Placed(payments.Owner{TenantID: tok.TenantID}, true, l.chain[len(l.chain)-1].ID, tok.ClientID, key)
	// The charge transaction takes the Idempotency-Key claim the HTTP layer
	// left to it: the claim costs no transaction of its own.
	claim := idempotency.ClaimFrom(ctx)
	var op *opened
	// Grouped with the other charges on the chain waiting here (group.go).
	err = s.chargeTx(ctx, l.chain[0].ID, func(ctx context.Context, tx Tx) error {
		var err error
		op, err = s.open(ctx, tx, claim, tok, l, ck, *dec, now)
		return err
	})
	claim.Committed(err)
	var ref *refusal
	switch {
	case errors.As(err, &ref):
		return nil, s.refuse(ctx, ref.d, ref.err)
	case errors.Is(err, store.ErrConflict) && key != "":
		// A request with the same key committed its charge first.
		if c, gerr := s.chargeByKey(ctx, tok.TenantID, key); gerr == nil {
			return s.replay(ctx, c, &p)
		}
		return nil, err
	case err != nil:
		var pe *apierr.Invalid
		if errors.As(err, &pe) {
			// The core refused before the charge existed (say the card
			// token was deleted): the allowed decision is still recorded.
			dec.Outcome = "not_created"
			rerr := s.db.InTx(ctx, func(tx Tx) error {
				if err := claim.Take(ctx, tx); err != nil {
					return err
				}
				if err := recordDecision(ctx, tx, dec); err != nil {
					return err
				}
				return claim.Answer(ctx, tx, nil, pe)
			})
			claim.Committed(rerr)
			if rerr != nil {
				s.log.ErrorContext(ctx, "recording a decision failed", "decision", dec.ID, "err", rerr)
			}
		}
		return nil, err
	}
	// From here on the charge exists: finish it even if the client goes away.
	ctx = context.WithoutCancel(ctx)
	ch, err := s.completeAnswered(ctx, op.charge, s.pay.Authorize(ctx, op.charge, op.card), claim, op.decision, op.hold)
	s.observeFraud(ctx, in, ch)
	out := op.decision
	if ch != nil {
		out.Outcome = ch.Status
		return &Outcome{Charge: ch, Decision: &out}, err
	}
	return nil, err
}

// opened is what the charge transaction made.
type opened struct {
	charge   *payments.Charge
	card     *vault.Card
	decision Decision
	hold     Hold
}

// open is the charge transaction: the authoritative re-check of
// revocations and of every agent along the mandate chain, the single use
// of an approval, the atomic reservation on the whole chain, the charge
// (payment core), its hold, the decision record and the events. It writes
// nothing outside tx and changes none of its arguments: Postgres may run
// it again after a serialization failure.
func (s *Service) open(ctx context.Context, tx Tx, claim *idempotency.Claim, tok *authz.AccessToken, l *loaded, ck payments.Checked, d Decision, now time.Time) (*opened, error) {
	refuse := func(err error) error { return &refusal{d: &d, err: err} }
	// The claim, the revocation check, the chain's agents and the card
	// with its tenant key, in one round trip (with BEGIN). The card is read
	// and decrypted before the mandate rows are locked; its refusal (say
	// the token was deleted) counts only once the credentials are known
	// to be live.
	var claimErr, cardErr error
	var what string
	var c *payments.Charge
	var card *vault.Card
	agents := make([]*authz.Agent, len(l.ancestors))
	reads := []func(tx Tx) error{
		func(tx Tx) error { claimErr = claim.Take(ctx, tx); return nil },
		func(tx Tx) (err error) { what, err = authz.CheckRevoked(ctx, tx, tok); return err },
		func(tx Tx) error { c, card, cardErr = s.pay.Prepare(ctx, tx, ck); return nil },
	}
	for i, seen := range l.ancestors {
		reads = append(reads, func(tx Tx) (err error) { agents[i], err = tx.GetAgent(ctx, seen.ID); return err })
	}
	err := tx.Prefetch(ctx, reads...)
	if claimErr != nil {
		return nil, claimErr
	}
	if err != nil {
		return nil, err
	}
	if a := inactive(agents...); a != nil {
		return nil, refuse(revoked(&d, "agent", a.ID, a.Status == authz.AgentSuspended))
	}
	if what != "" {
		id, suspended, err := s.revokedWhom(ctx, tx, what, tok)
		if err != nil {
			return nil, err
		}
		return nil, refuse(revoked(&d, what, id, suspended))
	}
	if cardErr != nil {
		return nil, cardErr
	}
	p := ck.Params()
	chain := make([]string, len(l.chain))
	for i := range l.chain {
		chain[i] = l.chain[i].ID
	}
	res, err := tx.Reserve(ctx, chain, p.Amount, now)
	var refused *mandates.RefusedError
	if errors.As(err, &refused) {
		if refused.Limit == mandates.LimitStatus && refused.Status == mandates.StatusRevoked {
			return nil, refuse(revoked(&d, "mandate", refused.MandateID, false))
		}
		d.Result = policies.Deny
		d.Reasons = []policies.Reason{refusalReason(refused, &p)}
		return nil, refuse(&DeniedError{Decision: &d})
	}
	if err != nil {
		return nil, err
	}
	if err := s.pay.Insert(ctx, tx, c); err != nil {
		return nil, err
	}
	if l.approval != nil {
		a := *l.approval
		a.Status, a.ChargeID = ApprovalUsed, c.ID
		if err := tx.UpdateApproval(ctx, &a, ApprovalApproved); errors.Is(err, store.ErrConflict) {
			return nil, refuse(ErrApprovalUsed)
		} else if err != nil {
			return nil, err
		}
	}
	hold := Hold{ChargeID: c.ID, TenantID: c.TenantID, Reservation: *res, Held: c.Amount, Counted: true}
	if err := tx.CreateHold(ctx, &hold); err != nil {
		return nil, err
	}
	d.ChargeID = c.ID
	if err := recordDecision(ctx, tx, &d); err != nil {
		return nil, err
	}
	for _, id := range res.Exhausted {
		if err := audit.RecordFor(ctx, tx, c.TenantID, "mandate.exhausted", id, nil); err != nil {
			return nil, err
		}
		if err := events.Emit(ctx, tx, c.TenantID, "mandate.exhausted", map[string]any{"id": id, "object": "mandate"}); err != nil {
			return nil, err
		}
	}
	return &opened{charge: c, card: card, decision: d, hold: hold}, nil
}

// revokedWhom names what CheckRevoked found revoked: for an agent, the
// first of the token's agents that is revoked or suspended.
func (s *Service) revokedWhom(ctx context.Context, tx Tx, what string, tok *authz.AccessToken) (string, bool, error) {
	switch what {
	case authz.RevokedToken:
		return tok.JTI, false, nil
	case authz.RevokedTenant:
		return tok.TenantID, false, nil
	}
	for _, id := range tokenAgents(tok) {
		a, err := tx.GetAgent(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return "", false, err
		}
		if a.Status == authz.AgentRevoked || a.Status == authz.AgentSuspended {
			return a.ID, a.Status == authz.AgentSuspended, nil
		}
	}
	return tok.ClientID, false, nil
}

// tokenAgents are the agents a token's authority passed through: its
// client, then its subject and actors when they are agents.
func tokenAgents(tok *authz.AccessToken) []string {
	out := []string{tok.ClientID}
	add := func(id string) {
		if (strings.HasPrefix(id, "agt_") || authz.IsURLClientID(id)) && !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	add(tok.Subject)
	for a := tok.Act; a != nil; a = a.Act {
		add(a.Sub)
	}
	return out
}

// revoked fills d as a refusal for a revoked (or suspended) credential.
func revoked(d *Decision, what, id string, suspended bool) *RevokedError {
	code, verb := what+"_revoked", "revoked"
	if suspended {
		code, verb = what+"_suspended", "suspended"
	}
	d.Result = policies.Deny
	d.Reasons = []policies.Reason{{Code: code, Message: fmt.Sprintf("the %s %s was %s", what, id, verb)}}
	return &RevokedError{What: what, ID: id, Suspended: suspended, Decision: d}
}

// chargeByKey reads the charge made under a scoped Idempotency-Key.
func (s *Service) chargeByKey(ctx context.Context, tenantID, key string) (*payments.Charge, error) {
	var c *payments.Charge
	err := s.db.Autocommit(ctx, func(tx Tx) error {
		var err error
		c, err = tx.ChargeByIdempotencyKey(ctx, tenantID, key)
		return err
	})
	return c, err
}

// replay answers a retry with the outcome of the charge made under its key.
func (s *Service) replay(ctx context.Context, c *payments.Charge, p *payments.ChargeParams) (*Outcome, error) {
	if c.Amount != p.Amount || c.Currency != p.Currency || c.PaymentMethod != p.PaymentMethod || c.MerchantID != p.MerchantID {
		return nil, &MismatchError{ChargeID: c.ID}
	}
	if c.Status == payments.StatusPending {
		return nil, &PendingError{ChargeID: c.ID}
	}
	claim := idempotency.ClaimFrom(ctx)
	if claim == nil || claim.Render == nil {
		var d *Decision
		err := s.db.Autocommit(ctx, func(tx Tx) error {
			var err error
			d, err = tx.DecisionOfCharge(ctx, c.TenantID, c.ID)
			return err
		})
		if err != nil {
			return nil, err
		}
		ch, err := payments.Outcome(c)
		return &Outcome{Charge: ch, Decision: d}, err
	}
	// The answer is rebuilt from the charge and stored under the key, on
	// the claim of an earlier attempt that never stored it too (its node
	// died, or lost the store, after the charge committed): that claim
	// would otherwise keep every retry waiting.
	var out *Outcome
	var oerr error
	err := s.db.InTx(ctx, func(tx Tx) error {
		d, err := tx.DecisionOfCharge(ctx, c.TenantID, c.ID)
		if err != nil {
			return err
		}
		cc := *c
		ch, cerr := payments.Outcome(&cc)
		out, oerr = &Outcome{Charge: ch, Decision: d}, cerr
		if err := claim.Adopt(ctx, tx); err != nil {
			return err
		}
		return claim.Answer(ctx, tx, out, oerr)
	})
	claim.Committed(err)
	var claimed *idempotency.ClaimedError
	if err != nil && !errors.As(err, &claimed) {
		return nil, err
	}
	// A key another request answered: the HTTP layer replays its answer.
	return out, oerr
}

// chargeKey scopes an Idempotency-Key to the agent and the mandate, as the
// idempotency middleware does, so a charge is made once per key and two
// mandates never share one.
func chargeKey(tok *authz.AccessToken, mandateID, key string) string {
	if key == "" {
		return ""
	}
	return tok.ClientID + ":" + mandateID + ":" + key
}

func purchaseDescription(p *payments.Purchase) string {
	if p == nil {
		return ""
	}
	return p.Description
}

// input builds the policy input. The merchant facts come from the
// merchant's registered profile, never from the request.
func (s *Service) input(tok *authz.AccessToken, details []mandates.AuthorizationDetail, l *loaded, p *payments.ChargeParams, now time.Time) *policies.Input {
	in := &policies.Input{
		Now: now,
		Charge: policies.Charge{
			Amount: p.Amount, Currency: policyCurrency(p), PaymentMethod: p.PaymentMethod,
			Merchant: policies.Merchant{ID: l.merchant.ID, Name: l.merchant.DisplayName, MCC: l.merchant.MCC,
				Country: l.merchant.Country, Domains: l.merchant.VerifiedDomains()},
		},
		Token:    policies.Token{Sub: tok.Subject, ClientID: tok.ClientID, Act: actor(tok.Act), AuthorizationDetails: policyDetails(details)},
		Chain:    policyChain(l.chain, now),
		Agent:    policies.Agent{ClientID: l.agent.ID, Status: l.agent.Status},
		Tenant:   policies.Tenant{ID: l.tenant.ID, Status: l.tenant.Status, AllowedCountries: l.countries},
		Velocity: policies.VelocityCounts{Agent: l.agentV, Mandate: l.mandateV},
	}
	if p.Purchase != nil {
		var ctxDoc map[string]any
		if b, err := json.Marshal(p.Purchase); err == nil && json.Unmarshal(b, &ctxDoc) == nil {
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
	if len(d.Input) > 0 {
		if err := tx.RecordDecisionInput(ctx, d); err != nil {
			return err
		}
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

// refuse records a refusal in its own transaction and returns err. That
// transaction takes the request's Idempotency-Key claim when none took it
// yet (see idempotency.Claim).
func (s *Service) refuse(ctx context.Context, d *Decision, err error) error {
	if d.Result == "" || d.Result == policies.Allow {
		d.Result = policies.Deny
	}
	if d.PolicyVersion == "" {
		d.PolicyVersion = s.policy.Version()
	}
	claim := idempotency.ClaimFrom(ctx)
	rerr := s.db.InTx(ctx, func(tx Tx) error {
		if err := claim.Take(ctx, tx); err != nil {
			return err
		}
		if err := recordDecision(ctx, tx, d); err != nil {
			return err
		}
		// The refusal is the request's final answer: stored with it.
		return claim.Answer(ctx, tx, nil, err)
	})
	claim.Committed(rerr)
	if rerr != nil {
		return rerr
	}
	return err
}

// challenge asks a human: it creates an approval for this exact request
// (or returns the pending one the agent presented again).
func (s *Service) challenge(ctx context.Context, tok *authz.AccessToken, d *Decision, l *loaded, p *payments.ChargeParams, bind string, now time.Time) error {
	if a := l.approval; a != nil && a.Status == ApprovalPending && now.Before(a.ExpiresAt) {
		a.URL = s.approvalURL(a.ID)
		return s.refuse(ctx, d, &ApprovalRequiredError{Approval: a, Decision: d})
	}
	var purchase json.RawMessage
	if p.Purchase != nil {
		purchase, _ = json.Marshal(p.Purchase)
	}
	a := &Approval{
		ID: ids.New("apr"), Object: "approval", TenantID: d.TenantID, Status: ApprovalPending, MandateID: d.MandateID,
		AgentID: d.AgentID, Amount: p.Amount, Currency: policyCurrency(p), PaymentMethod: p.PaymentMethod,
		MerchantID: p.MerchantID, Purchase: purchase, Reasons: d.Reasons, Binding: bind,
		CreatedAt: now, ExpiresAt: now.Add(s.cfg.ApprovalTTL),
	}
	d.ApprovalID = a.ID
	var refused *RevokedError
	claim := idempotency.ClaimFrom(ctx)
	err := s.db.InTx(ctx, func(tx Tx) error {
		// Nobody is asked to approve for revoked credentials.
		refused = nil
		if err := claim.Take(ctx, tx); err != nil {
			return err
		}
		what, err := authz.CheckRevoked(ctx, tx, tok)
		if err != nil {
			return err
		}
		if what != "" {
			id, suspended, err := s.revokedWhom(ctx, tx, what, tok)
			if err != nil {
				return err
			}
			rd := *d
			rd.ApprovalID = ""
			refused = revoked(&rd, what, id, suspended)
			return nil
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
		return events.Emit(ctx, tx, d.TenantID, "approval.requested", a)
	})
	claim.Committed(err)
	if err != nil {
		return err
	}
	if refused != nil {
		return s.refuse(ctx, refused.Decision, refused)
	}
	a.URL = s.approvalURL(a.ID)
	return &ApprovalRequiredError{Approval: a, Decision: d}
}

func (s *Service) approvalURL(id string) string {
	return strings.TrimSuffix(s.cfg.PublicURL, "/") + "/approvals/" + id
}

// refusalReason explains a reservation a mandate refused after the policy
// allowed it (another charge took the budget in between).
func refusalReason(r *mandates.RefusedError, p *payments.ChargeParams) policies.Reason {
	amt := money.Format(p.Amount, policyCurrency(p))
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

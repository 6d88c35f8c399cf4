package payments

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/url"
	"time"
	"unicode/utf8"

	"github.com/perfectpay/perfectpay/audit"
	"github.com/perfectpay/perfectpay/events"
	"github.com/perfectpay/perfectpay/internal/apierr"
	"github.com/perfectpay/perfectpay/internal/ids"
	"github.com/perfectpay/perfectpay/internal/logging"
	"github.com/perfectpay/perfectpay/internal/money"
	"github.com/perfectpay/perfectpay/internal/page"
	"github.com/perfectpay/perfectpay/policies"
	"github.com/perfectpay/perfectpay/store"
	"github.com/perfectpay/perfectpay/vault"
)

// Config tunes the payment core.
type Config struct {
	// MaxAmount is the largest charge, in minor units of any currency.
	MaxAmount int64
	// Timeout bounds one processor call.
	Timeout time.Duration
	// Retries is how many times a call whose answer was lost is repeated
	// at once, with the same reference.
	Retries int
	// ResolveAfter is how old a pending charge or refund must be before the
	// resolver completes it (longer than a request's own attempts).
	ResolveAfter time.Duration
}

// Owner is whose objects an operation touches: a tenant in one mode.
type Owner struct {
	TenantID string
	Livemode bool
}

// paramErr is a request parameter the core refuses (HTTP 400).
func paramErr(param string, code apierr.Code, format string, args ...any) *apierr.Invalid {
	return apierr.Invalidf(param, code, format, args...)
}

// CardError is a declined charge (HTTP 402); Charge is the failed charge.
type CardError struct {
	Charge      *Charge
	Code        string
	DeclineCode string
	Message     string
}

func (e *CardError) Error() string { return e.Message }

// ErrChargeBusy is a capture or void of a charge another one is under way
// on (its claim is held): retry shortly.
var ErrChargeBusy = errors.New("payments: another capture or void of this charge is under way")

// ErrProcessor means the processor gave no answer after every retry; the
// operation did not happen and may be retried.
var ErrProcessor = errors.New("payments: the processor did not answer; retry later")

// processorDown is ErrProcessor as the caller is told it: unavailable,
// retry after a second.
func processorDown() error {
	return &apierr.Unavailable{Code: "processor_unavailable", RetryAfter: 1, Err: ErrProcessor,
		Message: "The card processor did not answer. Nothing was changed; retry the request."}
}

// Service is the payment core. Its steps (Prepare and Insert, or Open;
// Record; Claim, ApplyCapture, ApplyVoid, Unclaim; OpenRefund, RecordRefund;
// ClearReversal) run on a transaction the caller owns, so a caller with more to write in the same transaction
// (the agent charge ledger, see package charging) calls them inside its own
// InTx; its processor calls (Authorize, CallCapture, CallVoid, CallRefund)
// run outside any transaction. Create, Capture, Void, Refund and Resolve
// drive those steps on the core's own transactions: merchant charges.
type Service struct {
	db    store.Runner[Tx]
	vault *vault.Service
	proc  Processor
	cfg   Config
	log   *slog.Logger
	now   func() time.Time
	unrec unrecorded // answers an outage kept from being recorded (unrecorded.go)
}

// NewService returns the payment core.
func NewService(db store.Runner[Tx], v *vault.Service, p Processor, cfg Config, log *slog.Logger) *Service {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxAmount <= 0 || cfg.MaxAmount > money.MaxAmount {
		cfg.MaxAmount = money.MaxAmount
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.ResolveAfter <= 0 {
		cfg.ResolveAfter = time.Duration(cfg.Retries+2) * cfg.Timeout * 2
	}
	return &Service{db: db, vault: v, proc: p, cfg: cfg, log: log, now: time.Now}
}

// Vault returns the vault the core detokenizes with.
func (s *Service) Vault() *vault.Service { return s.vault }

// ResolveAfter is how old a pending charge or refund must be before a
// resolver completes it.
func (s *Service) ResolveAfter() time.Duration { return s.cfg.ResolveAfter }

// ChargeParams is a charge to create.
type ChargeParams struct {
	Owner
	Amount        int64
	Currency      string
	PaymentMethod string // tok_…
	// Capture captures at once (a sale); false only authorizes.
	Capture     bool
	Description string
	Metadata    map[string]string
	// IdempotencyKey, when set, makes the charge unique per key (see
	// Charge.IdempotencyKey): a second Create with it returns the first charge.
	IdempotencyKey string
	// LivemodeOfCard takes the charge's mode from its card token instead
	// of requiring Owner.Livemode to match (agent charges: agents have no
	// mode; the payer's card says whether it is a test or a live charge).
	LivemodeOfCard bool
	// Set by the charging package for agent charges.
	MandateID  string
	AgentID    string
	MerchantID string
	Purchase   *Purchase
	// RiskSignals are what the caller said about the charge's risk
	// (checked by fraud.CheckRiskSignals): recorded in its audit entry.
	RiskSignals []policies.RiskSignal
}

// Checked is a charge request the core validated (Check): amount bounds,
// currency (lower case), texts and purchase. It is the one value an agent
// charge carries from the HTTP boundary to the insert, unchanged.
type Checked struct{ p ChargeParams }

// Params returns a copy of the checked parameters.
func (c Checked) Params() ChargeParams { return c.p }

// Check validates p once; Open takes the result.
func (s *Service) Check(p ChargeParams) (Checked, error) {
	if err := s.validate(&p); err != nil {
		return Checked{}, err
	}
	return Checked{p: p}, nil
}

// Placed is a checked charge with who it is for: the owner, and for an
// agent charge its mandate, agent and scoped idempotency key.
func (c Checked) Placed(o Owner, livemodeOfCard bool, mandateID, agentID, idempotencyKey string) Checked {
	c.p.Owner, c.p.LivemodeOfCard = o, livemodeOfCard
	c.p.MandateID, c.p.AgentID, c.p.IdempotencyKey = mandateID, agentID, idempotencyKey
	return c
}

func (s *Service) clock() time.Time { return s.now().UTC().Truncate(time.Microsecond) }

// validate checks p and normalises its currency.
func (s *Service) validate(p *ChargeParams) error {
	switch {
	case p.Amount < 1:
		return paramErr("amount", "amount_too_small", "Amount must be at least 1 (minor units of the currency).")
	case p.Amount > s.cfg.MaxAmount:
		return paramErr("amount", "amount_too_large", "Amount must be no more than %d.", s.cfg.MaxAmount)
	}
	if p.Currency == "" {
		return paramErr("currency", apierr.ParameterMissing, "Missing required param: currency.")
	}
	cur, err := NormalizeCurrency(p.Currency)
	if err != nil {
		return paramErr("currency", "invalid_currency", "Invalid currency: %q is not a supported ISO 4217 code.", p.Currency)
	}
	p.Currency = cur
	if p.PaymentMethod == "" {
		return paramErr("payment_method", apierr.ParameterMissing, "Missing required param: payment_method (a card token, tok_…).")
	}
	if err := checkText("description", p.Description, 1000); err != nil {
		return err
	}
	if len(p.Metadata) > 50 {
		return paramErr("metadata", apierr.ParameterInvalid, "metadata can have at most 50 keys.")
	}
	for k, v := range p.Metadata {
		if k == "" || utf8.RuneCountInString(k) > 40 {
			return paramErr("metadata", apierr.ParameterInvalid, "metadata keys must be 1 to 40 characters.")
		}
		if err := checkText("metadata", k, 40); err != nil {
			return err // the key itself is not echoed: it may be what was refused
		}
		if err := checkText("metadata["+k+"]", v, 500); err != nil {
			return err
		}
	}
	for _, id := range []struct{ param, v string }{{"mandate", p.MandateID}, {"agent", p.AgentID}, {"merchant", p.MerchantID}} {
		if err := checkText(id.param, id.v, 255); err != nil {
			return err
		}
	}
	if err := ValidatePurchase(p.Purchase); err != nil {
		return err
	}
	return nil
}

// ValidatePurchase checks what an agent says about a purchase (text bounds,
// no card number in any text, order URL, line items). It returns an
// *apierr.Invalid. The charge pipeline runs it before anything is stored
// (approvals keep the purchase too).
func ValidatePurchase(pu *Purchase) error {
	if pu == nil {
		return nil
	}
	if err := checkText("description", pu.Description, 1000); err != nil {
		return err
	}
	if pu.OrderURL != "" {
		u, err := url.Parse(pu.OrderURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || len(pu.OrderURL) > 2048 {
			return paramErr("order_url", apierr.ParameterInvalid, "order_url must be an absolute http(s) URL of at most 2048 characters.")
		}
	}
	if len(pu.LineItems) > 100 {
		return paramErr("line_items", apierr.ParameterInvalid, "At most 100 line items.")
	}
	for i, li := range pu.LineItems {
		param := fmt.Sprintf("line_items[%d]", i)
		if li.Name == "" {
			return paramErr(param+".name", apierr.ParameterMissing, "Every line item needs a name.")
		}
		if err := checkText(param+".name", li.Name, 200); err != nil {
			return err
		}
		if li.Quantity < 1 || li.Quantity > 1_000_000 {
			return paramErr(param+".quantity", apierr.ParameterInvalid, "quantity must be between 1 and 1000000.")
		}
		if li.UnitAmount < 0 || li.UnitAmount > money.MaxAmount {
			return paramErr(param+".unit_amount", apierr.ParameterInvalid, "unit_amount must be between 0 and %d.", money.MaxAmount)
		}
	}
	return nil
}

// checkText bounds free text and refuses text holding a card number, so a
// careless caller cannot store one in clear through a description.
func checkText(param, s string, maxRunes int) error {
	if !utf8.ValidString(s) || utf8.RuneCountInString(s) > maxRunes {
		return paramErr(param, apierr.ParameterInvalid, "%s must be valid UTF-8 of at most %d characters.", param, maxRunes)
	}
	if logging.RedactPAN(s) != s {
		return paramErr(param, apierr.ParameterInvalid, "%s looks like it contains a card number; card numbers go only to POST /v1/tokens.", param)
	}
	return nil
}

// Open inserts a checked charge as pending in tx (Prepare, then Insert).
func (s *Service) Open(ctx context.Context, tx Tx, ck Checked) (*Charge, *vault.Card, error) {
	c, card, err := s.Prepare(ctx, tx, ck)
	if err != nil {
		return nil, nil, err
	}
	if err := s.Insert(ctx, tx, c); err != nil {
		return nil, nil, err
	}
	return c, card, nil
}

// Prepare builds the pending charge of a checked request and detokenizes
// its card (for the processor call after the commit), writing nothing: a
// caller that locks rows in the same transaction (the mandate ledger) runs
// it first, so the card's decryption is not done under those locks. It
// returns new values and touches nothing outside tx, so a transaction that
// is run again after a serialization failure may call it again.
func (s *Service) Prepare(ctx context.Context, tx Tx, ck Checked) (*Charge, *vault.Card, error) {
	p := ck.p
	// The card first: a read the charge pipeline records before it sends
	// (charging's Prefetch) then stops here, before any work is done.
	tok, card, err := s.vault.Reveal(ctx, tx, p.TenantID, p.PaymentMethod)
	switch {
	case errors.Is(err, store.ErrNotFound) || errors.Is(err, vault.ErrTokenDeleted) || (err == nil && !p.LivemodeOfCard && tok.Livemode != p.Livemode):
		return nil, nil, paramErr("payment_method", apierr.ResourceMissing, "No such token: '%s'.", p.PaymentMethod)
	case errors.Is(err, vault.ErrKeyDestroyed):
		return nil, nil, paramErr("payment_method", "token_unusable", "The card of token '%s' was erased.", p.PaymentMethod)
	case err != nil:
		return nil, nil, err
	}
	now := s.clock()
	c := &Charge{
		ID: ids.New("ch"), TenantID: p.TenantID, Livemode: p.Livemode, Status: StatusPending,
		Amount: p.Amount, Currency: p.Currency, CaptureNow: p.Capture, PaymentMethod: p.PaymentMethod,
		Description: p.Description, Metadata: maps.Clone(p.Metadata), MandateID: p.MandateID, AgentID: p.AgentID,
		MerchantID: p.MerchantID, Purchase: p.Purchase, Created: now, Updated: now, IdempotencyKey: p.IdempotencyKey,
		RiskSignals: p.RiskSignals,
	}
	if p.LivemodeOfCard {
		c.Livemode = tok.Livemode
	}
	c.Card = CardDetails{Brand: tok.Brand, Last4: tok.Last4, ExpMonth: tok.ExpMonth, ExpYear: tok.ExpYear,
		Fingerprint: tok.Fingerprint, CVCCheck: tok.CVCCheck}
	return c, card, nil
}

// Insert writes a prepared charge and its audit entry in tx.
func (s *Service) Insert(ctx context.Context, tx Tx, c *Charge) error {
	if err := tx.CreateCharge(ctx, c); err != nil {
		return err
	}
	data := map[string]any{
		"amount": c.Amount, "currency": c.Currency, "payment_method": c.PaymentMethod, "capture": c.CaptureNow,
		"mandate": c.MandateID, "agent": c.AgentID, "merchant": c.MerchantID,
	}
	if len(c.RiskSignals) > 0 {
		data["risk_signals"] = riskSignalsView(c.RiskSignals)
	}
	return audit.RecordFor(ctx, tx, c.TenantID, "charge.created", c.ID, data)
}

type riskSignalView struct {
	Type   string  `json:"type"`
	Score  float64 `json:"score"`
	Action string  `json:"action"`
}

func riskSignalsView(rs []policies.RiskSignal) []riskSignalView {
	out := make([]riskSignalView, len(rs))
	for i, r := range rs {
		out[i] = riskSignalView(r)
	}
	return out
}

// Answer is what the processor said to an authorization: Result nil when
// every attempt went unanswered; Uncertain when one may have acted unheard.
type Answer struct {
	Result    *Result
	Uncertain bool
	Attempts  int
}

// Authorize calls the processor for a pending charge (outside any
// transaction) and wipes the card. A card of nil (gone, or the resolver
// could not read it) asks for nothing and reverses what an earlier attempt
// may have done.
func (s *Service) Authorize(ctx context.Context, c *Charge, card *vault.Card) Answer {
	if c.Card.CVCCheck == vault.CVCFail {
		// The CVC failed its one verification; a real processor cannot
		// check it again (the CVC is gone), so the core declines.
		return Answer{Result: &Result{DeclineCode: DeclineIncorrectCVC}}
	}
	if card == nil {
		return Answer{Uncertain: c.Attempts > 0}
	}
	res, uncertain, attempts := s.call(ctx, func(ctx context.Context) (*Result, error) {
		return s.proc.Authorize(ctx, AuthRequest{Reference: c.ID, Amount: c.Amount, Currency: c.Currency, Card: card, Capture: c.CaptureNow})
	})
	*card = vault.Card{}
	return Answer{Result: res, Uncertain: uncertain, Attempts: attempts}
}

// Record writes the processor's answer on a pending charge in tx, with its
// audit entry and event. It returns the charge as it now is and whether
// this call changed it (false: another node recorded an answer first).
func (s *Service) Record(ctx context.Context, tx Tx, tenantID, id string, a Answer) (*Charge, bool, error) {
	c, err := tx.LockCharge(ctx, tenantID, id)
	if err != nil {
		return nil, false, err
	}
	if c.Status != StatusPending {
		return c, false, nil
	}
	now := s.clock()
	c.Attempts += a.Attempts
	c.Updated = now
	event := "charge.failed"
	res := a.Result
	switch {
	case res != nil && res.Approved:
		c.AuthCode = res.AuthCode
		c.Status = StatusRequiresCapture
		if c.CaptureNow {
			c.Status, c.AmountCaptured, c.CapturedAt = StatusSucceeded, c.Amount, &now
		}
		event = "charge.succeeded"
	case res != nil:
		code := res.DeclineCode
		if code == "" {
			code = DeclineGeneric
		}
		c.Status, c.FailureCode, c.DeclineCode, c.FailureMessage = StatusFailed, ErrorCode(code), code, declineMessage(code)
	default:
		c.Status, c.FailureCode, c.DeclineCode = StatusFailed, DeclineProcessingError, DeclineProcessingError
		c.FailureMessage = declineMessage(DeclineProcessingError)
		c.ReversalPending = a.Uncertain
	}
	if err := tx.UpdateCharge(ctx, c, StatusPending); err != nil {
		return nil, false, err
	}
	if err := audit.RecordFor(ctx, tx, c.TenantID, event, c.ID, map[string]any{
		"status": c.Status, "amount": c.Amount, "currency": c.Currency, "failure_code": c.FailureCode,
		"decline_code": c.DeclineCode, "attempts": c.Attempts, "reversal_pending": c.ReversalPending,
	}); err != nil {
		return nil, false, err
	}
	if err := emitFor(ctx, tx, c, event); err != nil {
		return nil, false, err
	}
	return c, true, nil
}

// Outcome is the answer a caller gives for a charge after Record: a failed
// charge is returned with a *CardError.
func Outcome(c *Charge) (*Charge, error) {
	c.derive()
	if c.Status == StatusFailed {
		return c, &CardError{Charge: c, Code: c.FailureCode, DeclineCode: c.DeclineCode, Message: c.FailureMessage}
	}
	return c, nil
}

// Reverse voids the reference of a charge failed without an answer, in
// case the acquirer authorized it (outside any transaction). It reports
// whether the processor confirmed; then ClearReversal records it.
func (s *Service) Reverse(ctx context.Context, c *Charge) bool {
	res, _, _ := s.call(ctx, func(ctx context.Context) (*Result, error) { return s.proc.Void(ctx, c.ID) })
	if res == nil || !res.Approved {
		s.log.WarnContext(ctx, "charge reversal not confirmed; the resolver will retry", "charge", c.ID)
		return false
	}
	return true
}

// ClearReversal records a confirmed reversal in tx.
func (s *Service) ClearReversal(ctx context.Context, tx Tx, tenantID, id string) error {
	cur, err := tx.LockCharge(ctx, tenantID, id)
	if err != nil || !cur.ReversalPending {
		return err
	}
	cur.ReversalPending = false
	cur.Updated = s.clock()
	if err := tx.UpdateCharge(ctx, cur, cur.Status); err != nil {
		return err
	}
	return audit.RecordFor(ctx, tx, cur.TenantID, "charge.reversed", cur.ID, map[string]any{"reason": "processor answer lost"})
}

// lockOwned loads and locks a charge of the owner for a state change.
func lockOwned(ctx context.Context, tx Tx, o Owner, id string) (*Charge, error) {
	c, err := tx.LockCharge(ctx, o.TenantID, id)
	if err != nil {
		return nil, err
	}
	if c.Livemode != o.Livemode {
		return nil, store.ErrNotFound
	}
	return c, nil
}

func capturable(c *Charge) error {
	switch c.Status {
	case StatusRequiresCapture:
		return nil
	case StatusSucceeded:
		return paramErr("charge", "charge_already_captured", "Charge %s has already been captured.", c.ID)
	default:
		return paramErr("charge", "charge_not_capturable", "Charge %s is %s; only an uncaptured authorization (requires_capture) can be captured or voided.", c.ID, c.Status)
	}
}

// CaptureAmount checks a capture of c (amount nil: all of it) before the
// processor is asked, and returns the amount to capture.
func CaptureAmount(c *Charge, amount *int64) (int64, error) {
	if err := capturable(c); err != nil {
		return 0, err
	}
	if amount == nil {
		return c.Amount, nil
	}
	if *amount < 1 || *amount > c.Amount {
		return 0, paramErr("amount", "amount_too_large", "The capture amount must be between 1 and the authorized amount (%d).", c.Amount)
	}
	return *amount, nil
}

// Claim takes the charge's claim for op (capture or void) in tx: the
// charge must still be capturable and no other claim live. Committed
// before the processor is called, it keeps a racing capture or void from
// reaching the processor (ErrChargeBusy). ApplyCapture and ApplyVoid clear
// it; Unclaim gives it back when the processor refused or did not answer.
func (s *Service) Claim(ctx context.Context, tx Tx, o Owner, id, op string) (*Charge, error) {
	c, err := lockOwned(ctx, tx, o, id)
	if err != nil {
		return nil, err
	}
	if err := capturable(c); err != nil {
		return nil, err
	}
	now := s.clock()
	if c.Claim != "" && c.ClaimUntil != nil && now.Before(*c.ClaimUntil) {
		return nil, ErrChargeBusy
	}
	// Longer than every attempt of the processor call it covers.
	until := now.Add(2*s.cfg.Timeout*time.Duration(s.cfg.Retries+1) + time.Second)
	c.Claim, c.ClaimUntil, c.Updated = op, &until, now
	if err := tx.UpdateCharge(ctx, c, c.Status); err != nil {
		return nil, err
	}
	return c, nil
}

// Unclaim gives back a claim taken by Claim (the processor refused the
// operation or did not answer).
func (s *Service) Unclaim(ctx context.Context, tx Tx, o Owner, id, op string) error {
	c, err := lockOwned(ctx, tx, o, id)
	if err != nil || c.Claim != op {
		return err
	}
	c.Claim, c.ClaimUntil, c.Updated = "", nil, s.clock()
	return tx.UpdateCharge(ctx, c, c.Status)
}

// CallCapture asks the processor to capture amt of c (outside any transaction).
func (s *Service) CallCapture(ctx context.Context, c *Charge, amt int64) error {
	res, _, _ := s.call(ctx, func(ctx context.Context) (*Result, error) { return s.proc.Capture(ctx, c.ID, amt) })
	return refusal(c, res, "capture")
}

// CallVoid asks the processor to void c (outside any transaction).
func (s *Service) CallVoid(ctx context.Context, c *Charge) error {
	res, _, _ := s.call(ctx, func(ctx context.Context) (*Result, error) { return s.proc.Void(ctx, c.ID) })
	return refusal(c, res, "void")
}

func refusal(c *Charge, res *Result, what string) error {
	if res == nil {
		return processorDown()
	}
	if !res.Approved {
		cc := *c
		cc.derive()
		return &CardError{Charge: &cc, Code: DeclineProcessingError, DeclineCode: res.DeclineCode, Message: "The processor refused the " + what + "."}
	}
	return nil
}

// ApplyCapture records a capture the processor made, in tx.
func (s *Service) ApplyCapture(ctx context.Context, tx Tx, o Owner, id string, amt int64) (*Charge, error) {
	return s.transition(ctx, tx, o, id, "charge.captured", func(c *Charge, now time.Time) {
		c.Status, c.AmountCaptured, c.CapturedAt = StatusSucceeded, amt, &now
	})
}

// ApplyVoid records a void the processor made, in tx.
func (s *Service) ApplyVoid(ctx context.Context, tx Tx, o Owner, id string) (*Charge, error) {
	return s.transition(ctx, tx, o, id, "charge.canceled", func(c *Charge, now time.Time) {
		c.Status, c.CanceledAt = StatusCanceled, &now
	})
}

// transition applies change to a charge still requiring capture, with the
// audit entry and the event, in tx.
func (s *Service) transition(ctx context.Context, tx Tx, o Owner, id, event string, change func(c *Charge, now time.Time)) (*Charge, error) {
	c, err := lockOwned(ctx, tx, o, id)
	if err != nil {
		return nil, err
	}
	if c.Status != StatusRequiresCapture {
		return nil, capturable(c)
	}
	now := s.clock()
	change(c, now)
	c.Updated, c.Claim, c.ClaimUntil = now, "", nil
	if err := tx.UpdateCharge(ctx, c, StatusRequiresCapture); err != nil {
		return nil, err
	}
	if err := audit.RecordFor(ctx, tx, c.TenantID, event, c.ID, map[string]any{
		"status": c.Status, "amount_captured": c.AmountCaptured, "amount": c.Amount,
	}); err != nil {
		return nil, err
	}
	if err := emitFor(ctx, tx, c, event); err != nil {
		return nil, err
	}
	return c, nil
}

// RefundParams is a refund to create.
type RefundParams struct {
	Owner
	ChargeID string
	// Amount nil refunds what is left of the captured amount.
	Amount *int64
	Reason string
}

// CheckRefund validates a refund's own fields.
func CheckRefund(p RefundParams) error {
	if p.ChargeID == "" {
		return paramErr("charge", apierr.ParameterMissing, "Missing required param: charge.")
	}
	switch p.Reason {
	case "", "duplicate", "fraudulent", "requested_by_customer":
	default:
		return paramErr("reason", apierr.ParameterInvalid, "reason must be duplicate, fraudulent or requested_by_customer.")
	}
	return nil
}

// OpenRefund creates a pending refund in tx and reserves its amount on the
// charge (amount_refunded counts pending refunds), so concurrent refunds
// never exceed the captured amount. That reservation is the refund's claim,
// committed before the processor is asked.
func (s *Service) OpenRefund(ctx context.Context, tx Tx, p RefundParams) (*Refund, error) {
	if err := CheckRefund(p); err != nil {
		return nil, err
	}
	now := s.clock()
	c, err := lockOwned(ctx, tx, p.Owner, p.ChargeID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, paramErr("charge", apierr.ResourceMissing, "No such charge: '%s'.", p.ChargeID)
	}
	if err != nil {
		return nil, err
	}
	if c.Status != StatusSucceeded {
		return nil, paramErr("charge", "charge_not_refundable", "Charge %s is %s; only a captured charge can be refunded (void an uncaptured one).", c.ID, c.Status)
	}
	left := c.AmountCaptured - c.AmountRefunded
	if left <= 0 {
		return nil, paramErr("charge", "charge_already_refunded", "Charge %s has already been refunded.", c.ID)
	}
	r := &Refund{ID: ids.New("re"), Object: "refund", TenantID: p.TenantID, Livemode: p.Livemode, ChargeID: p.ChargeID,
		Status: RefundPending, Reason: p.Reason, Amount: left, Currency: c.Currency, Created: now, Updated: now}
	if p.Amount != nil {
		if *p.Amount < 1 {
			return nil, paramErr("amount", "amount_too_small", "Refund amount must be at least 1.")
		}
		if *p.Amount > left {
			return nil, paramErr("amount", "amount_too_large", "Refund amount (%d) is greater than the unrefunded amount on the charge (%d).", *p.Amount, left)
		}
		r.Amount = *p.Amount
	}
	if err := tx.CreateRefund(ctx, r); err != nil {
		return nil, err
	}
	c.AmountRefunded += r.Amount
	c.Updated = now
	if err := tx.UpdateCharge(ctx, c, StatusSucceeded); err != nil {
		return nil, err
	}
	if err := audit.RecordFor(ctx, tx, c.TenantID, "refund.created", r.ID, map[string]any{"charge": c.ID, "amount": r.Amount, "currency": r.Currency}); err != nil {
		return nil, err
	}
	return r, nil
}

// CallRefund asks the processor for a refund (outside any transaction);
// nil when it did not answer (the refund stays pending).
func (s *Service) CallRefund(ctx context.Context, r *Refund) *Result {
	res, _, _ := s.call(ctx, func(ctx context.Context) (*Result, error) {
		return s.proc.Refund(ctx, r.ChargeID, r.ID, r.Amount)
	})
	if res == nil {
		s.log.WarnContext(ctx, "refund left pending: the processor did not answer", "refund", r.ID)
	}
	return res
}

// RecordRefund writes the processor's answer on a pending refund in tx: a
// failed refund gives its amount back to the charge. It returns the refund
// and its charge as they now are, and whether this call changed them
// (false: another node recorded an answer first).
func (s *Service) RecordRefund(ctx context.Context, tx Tx, tenantID, id string, res *Result) (*Refund, *Charge, bool, error) {
	cur, err := tx.GetRefund(ctx, tenantID, id)
	if err != nil {
		return nil, nil, false, err
	}
	c, err := tx.LockCharge(ctx, cur.TenantID, cur.ChargeID)
	if err != nil {
		return nil, nil, false, err
	}
	if cur, err = tx.GetRefund(ctx, tenantID, id); err != nil { // read again under the charge's lock
		return nil, nil, false, err
	}
	if cur.Status != RefundPending {
		return cur, c, false, nil
	}
	now := s.clock()
	cur.Updated, c.Updated = now, now
	event, action := "charge.refunded", "refund.succeeded"
	if res.Approved {
		cur.Status = RefundSucceeded
	} else {
		cur.Status, cur.FailureCode = RefundFailed, res.DeclineCode
		c.AmountRefunded -= cur.Amount
		event, action = "refund.failed", "refund.failed"
	}
	if err := tx.UpdateRefund(ctx, cur, RefundPending); err != nil {
		return nil, nil, false, err
	}
	if err := tx.UpdateCharge(ctx, c, c.Status); err != nil {
		return nil, nil, false, err
	}
	if err := audit.RecordFor(ctx, tx, cur.TenantID, action, cur.ID, map[string]any{
		"charge": c.ID, "amount": cur.Amount, "failure_code": cur.FailureCode,
	}); err != nil {
		return nil, nil, false, err
	}
	if res.Approved {
		err = emitFor(ctx, tx, c, event)
	} else {
		err = events.Emit(ctx, tx, cur.TenantID, event, cur)
	}
	if err != nil {
		return nil, nil, false, err
	}
	return cur, c, true, nil
}

// Unresolved lists charges and refunds left unresolved (pending past
// ResolveAfter, or failed with a reversal pending), for a resolver.
func (s *Service) Unresolved(ctx context.Context, tx Tx, limit int) ([]Charge, []Refund, error) {
	before := s.clock().Add(-s.cfg.ResolveAfter)
	charges, err := tx.ChargesToResolve(ctx, before, limit)
	if err != nil {
		return nil, nil, err
	}
	refunds, err := tx.RefundsToResolve(ctx, before, limit)
	return charges, refunds, err
}

// RevealFor reads the card of a pending charge for a resolver (nil when it
// is gone: the charge is then failed and reversed).
func (s *Service) RevealFor(ctx context.Context, tx Tx, c *Charge) *vault.Card {
	_, card, err := s.vault.Reveal(ctx, tx, c.TenantID, c.PaymentMethod)
	if err != nil {
		s.log.WarnContext(ctx, "resolver: card of a pending charge unavailable", "charge", c.ID, "err", err)
		return nil
	}
	return card
}

// call runs a processor call with the per-call timeout, repeating it (same
// reference, inside fn) while its answer is lost. uncertain reports whether
// any attempt may have acted without our hearing of it.
func (s *Service) call(ctx context.Context, fn func(ctx context.Context) (*Result, error)) (res *Result, uncertain bool, attempts int) {
	for attempt := 0; attempt <= s.cfg.Retries; attempt++ {
		if attempt > 0 {
			time.Sleep(time.Duration(attempt) * 20 * time.Millisecond)
		}
		cctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
		r, err := fn(cctx)
		cancel()
		attempts++
		if err == nil && r != nil {
			return r, uncertain, attempts
		}
		if !errors.Is(err, ErrUnavailable) {
			uncertain = true // a time-out or an unknown error: it may have acted
		}
		s.log.WarnContext(ctx, "processor call failed", "attempt", attempt+1, "err", err)
	}
	return nil, uncertain, attempts
}

var declineMessages = map[string]string{
	DeclineInsufficientFunds: "Your card has insufficient funds.",
	DeclineExpiredCard:       "Your card has expired.",
	DeclineIncorrectCVC:      "Your card's security code is incorrect.",
	DeclineProcessingError:   "An error occurred while processing your card. Try again in a little bit.",
}

func declineMessage(code string) string {
	if m, ok := declineMessages[code]; ok {
		return m
	}
	return "Your card was declined."
}

func emitFor(ctx context.Context, tx events.Outbox, c *Charge, typ string) error {
	c.derive()
	return events.Emit(ctx, tx, c.TenantID, typ, c)
}

// Create makes a merchant charge: validates, inserts it as pending (Open)
// in one transaction, calls the processor, and records the outcome in a
// second. A declined charge is returned with a *CardError.
func (s *Service) Create(ctx context.Context, p ChargeParams) (*Charge, error) {
	ck, err := s.Check(p)
	if err != nil {
		return nil, err
	}
	var c *Charge
	var card *vault.Card
	err = s.db.InTx(ctx, func(tx Tx) error {
		var err error
		c, card, err = s.Open(ctx, tx, ck)
		return err
	})
	if errors.Is(err, store.ErrConflict) && p.IdempotencyKey != "" {
		return s.Existing(ctx, p.TenantID, p.IdempotencyKey)
	}
	if err != nil {
		return nil, err
	}
	// From here on the charge exists: finish it even if the client goes away.
	ctx = context.WithoutCancel(ctx)
	return s.own().Complete(ctx, c, s.Authorize(ctx, c, card))
}

// FinishReversal voids a charge failed without an answer (Reverse) and,
// once the processor confirms, records it in a transaction of its own
// (ClearReversal) and clears c.ReversalPending. An unconfirmed or
// unrecorded reversal is left for the resolver.
func (s *Service) FinishReversal(ctx context.Context, c *Charge) {
	if !s.Reverse(ctx, c) {
		return
	}
	if err := s.db.InTx(ctx, func(tx Tx) error { return s.ClearReversal(ctx, tx, c.TenantID, c.ID) }); err != nil {
		s.log.ErrorContext(ctx, "recording a charge reversal failed", "charge", c.ID, "err", err)
		return
	}
	c.ReversalPending = false
}

// Existing returns the charge made under a scoped idempotency key (see
// Charge.IdempotencyKey), with a *CardError when it failed.
func (s *Service) Existing(ctx context.Context, tenantID, key string) (*Charge, error) {
	var c *Charge
	err := s.db.Autocommit(ctx, func(tx Tx) error {
		var err error
		c, err = tx.ChargeByIdempotencyKey(ctx, tenantID, key)
		return err
	})
	if err != nil {
		return nil, err
	}
	return Outcome(c)
}

// Get returns a charge of the owner.
func (s *Service) Get(ctx context.Context, o Owner, id string) (*Charge, error) {
	var c *Charge
	err := s.db.Autocommit(ctx, func(tx Tx) error {
		var err error
		c, err = tx.GetCharge(ctx, o.TenantID, id)
		return err
	})
	if err != nil {
		return nil, err
	}
	if c.Livemode != o.Livemode {
		return nil, store.ErrNotFound
	}
	c.derive()
	return c, nil
}

// List returns a page of the owner's charges, newest first, and whether
// more follow.
func (s *Service) List(ctx context.Context, o Owner, p page.Page) ([]Charge, bool, error) {
	return s.list(ctx, o.TenantID, ListFilter{Livemode: o.Livemode, Limit: p.Limit, StartingAfter: p.StartingAfter})
}

// ListForMerchant returns a page of the charges made to a merchant account
// (agent charges of any payer naming it), newest first, in one mode.
func (s *Service) ListForMerchant(ctx context.Context, merchantID string, livemode bool, p page.Page) ([]Charge, bool, error) {
	return s.list(ctx, "", ListFilter{MerchantID: merchantID, Livemode: livemode, Limit: p.Limit, StartingAfter: p.StartingAfter})
}

func (s *Service) list(ctx context.Context, tenantID string, f ListFilter) ([]Charge, bool, error) {
	limit, startingAfter := f.Limit, f.StartingAfter
	if err := page.Check(limit); err != nil {
		return nil, false, err
	}
	f.Limit = page.Fetch(limit)
	var out []Charge
	err := s.db.Autocommit(ctx, func(tx Tx) error {
		var err error
		out, err = tx.ListCharges(ctx, tenantID, f)
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		return nil, false, paramErr("starting_after", apierr.ResourceMissing, "No such charge: '%s'.", startingAfter)
	}
	if err != nil {
		return nil, false, err
	}
	out, more := page.Trim(out, limit)
	for i := range out {
		out[i].derive()
	}
	return out, more, nil
}

// Capture captures an authorized merchant charge, fully or partly (amount
// nil: the whole authorized amount).
func (s *Service) Capture(ctx context.Context, o Owner, id string, amount *int64) (*Charge, error) {
	return s.own().Capture(ctx, o, id, amount)
}

// Void cancels an uncaptured merchant charge.
func (s *Service) Void(ctx context.Context, o Owner, id string) (*Charge, error) {
	return s.own().Void(ctx, o, id)
}

// Refund returns money of a captured merchant charge. A refund whose
// answer was lost stays pending; the resolver retries it with the same
// reference.
func (s *Service) Refund(ctx context.Context, p RefundParams) (*Refund, error) {
	return s.own().Refund(ctx, p)
}

// GetRefund returns a refund of the owner.
func (s *Service) GetRefund(ctx context.Context, o Owner, id string) (*Refund, error) {
	var r *Refund
	err := s.db.Autocommit(ctx, func(tx Tx) error {
		var err error
		r, err = tx.GetRefund(ctx, o.TenantID, id)
		return err
	})
	if err != nil {
		return nil, err
	}
	if r.Livemode != o.Livemode {
		return nil, store.ErrNotFound
	}
	return r, nil
}

// Completion records what the resolver learned about a charge or a
// refund, each in a transaction of its own: the core's for merchant
// charges (Resolve), the agent charge ledger's for agent charges, which
// keeps mandate budgets in step in the same transactions (package
// charging).
type Completion interface {
	// Complete records the processor's answer on a pending charge; a
	// charge failed without an answer is then reversed. A decline comes
	// back as a *CardError.
	Complete(ctx context.Context, c *Charge, a Answer) (*Charge, error)
	// CompleteRefund sends a pending refund again with the same
	// reference and records the answer.
	CompleteRefund(ctx context.Context, r *Refund) (*Refund, error)
}

// Resolve completes merchant charges and refunds left unresolved (see
// ResolveWith) on the core's own transactions. (A node that makes agent
// charges runs the charging package's resolver instead, which keeps
// mandate budgets in step in the same transactions.)
func (s *Service) Resolve(ctx context.Context, limit int) (int, error) {
	return s.ResolveWith(ctx, limit, s.own())
}

// ResolveWith completes charges and refunds left unresolved, recording
// through done: answers this node kept during an outage are recorded
// first; pending charges (their node died mid-call) are authorized again
// with the same reference; failed charges with a reversal pending are
// voided; pending refunds are sent again with the same reference. It
// returns how many objects it looked at.
func (s *Service) ResolveWith(ctx context.Context, limit int, done Completion) (int, error) {
	if err := s.ResolveUnrecorded(ctx, func(ctx context.Context, c *Charge, a Answer) error {
		_, err := done.Complete(ctx, c, a)
		return err
	}); err != nil {
		return 0, err
	}
	var charges []Charge
	var refunds []Refund
	err := s.db.InTx(ctx, func(tx Tx) error {
		var err error
		charges, refunds, err = s.Unresolved(ctx, tx, limit)
		return err
	})
	if err != nil {
		return 0, err
	}
	for i := range charges {
		c := &charges[i]
		if c.Status != StatusPending {
			s.FinishReversal(ctx, c)
			continue
		}
		var card *vault.Card
		if err := s.db.InTx(ctx, func(tx Tx) error { card = s.RevealFor(ctx, tx, c); return nil }); err != nil {
			return 0, err
		}
		c.Attempts++ // it may have reached the processor before the node stopped
		if _, err := done.Complete(ctx, c, s.Authorize(ctx, c, card)); err != nil {
			var ce *CardError
			if !errors.As(err, &ce) {
				s.log.ErrorContext(ctx, "resolver: completing a charge failed", "charge", c.ID, "err", err)
			}
		}
	}
	for i := range refunds {
		if _, err := done.CompleteRefund(ctx, &refunds[i]); err != nil {
			s.log.ErrorContext(ctx, "resolver: completing a refund failed", "refund", refunds[i].ID, "err", err)
		}
	}
	return len(charges) + len(refunds), nil
}

// Resolver backoff while the store is unreachable or answers wait.
const (
	resolveBackoffMin = 250 * time.Millisecond
	resolveBackoffMax = 2 * time.Second
)

// RunResolver runs the merchant charges' resolver (RunResolverWith on the
// core's own transactions) until ctx ends.
func (s *Service) RunResolver(ctx context.Context, every time.Duration) {
	s.RunResolverWith(ctx, every, s.own())
}

// RunResolverWith calls ResolveWith(done) every interval until ctx ends.
// While the store is unreachable, or answers kept during an outage wait to
// be recorded, it retries with a short backoff instead, so charges an
// outage left pending are recorded within seconds of the store coming
// back.
func (s *Service) RunResolverWith(ctx context.Context, every time.Duration, done Completion) {
	wait := every
	backoff := resolveBackoffMin
	t := time.NewTimer(wait)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.UnrecordedWake():
			t.Stop()
		}
		_, err := s.ResolveWith(ctx, 100, done)
		if err != nil && ctx.Err() == nil && !errors.Is(err, store.ErrUnavailable) {
			s.log.ErrorContext(ctx, "payments resolver failed", "err", err)
		}
		if errors.Is(err, store.ErrUnavailable) || s.Unrecorded() > 0 {
			wait, backoff = backoff, min(2*backoff, resolveBackoffMax)
		} else {
			wait, backoff = every, resolveBackoffMin
		}
		t.Reset(wait)
	}
}

package payments

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"time"
	"unicode/utf8"

	"github.com/perfectpay/perfectpay/audit"
	"github.com/perfectpay/perfectpay/internal/ids"
	"github.com/perfectpay/perfectpay/internal/logging"
	"github.com/perfectpay/perfectpay/internal/money"
	"github.com/perfectpay/perfectpay/store"
	"github.com/perfectpay/perfectpay/vault"
	"github.com/perfectpay/perfectpay/webhooks"
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

// ParamError is a request parameter the core refuses (HTTP 400).
type ParamError struct {
	Param   string
	Code    string
	Message string
}

func (e *ParamError) Error() string { return e.Message }

func paramErr(param, code, format string, args ...any) *ParamError {
	return &ParamError{Param: param, Code: code, Message: fmt.Sprintf(format, args...)}
}

// CardError is a declined charge (HTTP 402); Charge is the failed charge.
type CardError struct {
	Charge      *Charge
	Code        string
	DeclineCode string
	Message     string
}

func (e *CardError) Error() string { return e.Message }

// ErrProcessor means the processor gave no answer after every retry; the
// operation did not happen and may be retried.
var ErrProcessor = errors.New("payments: the processor did not answer; retry later")

// Hooks let a caller run its own work inside the core's transactions. T
// is the caller's transaction type, so a caller whose transaction has more
// repositories (the mandates pipeline) reaches them with compile-time
// types. Hooks must derive what they do from the charge alone: Settled may
// run later, on another node, when the resolver completes a charge.
type Hooks[T any] struct {
	// Reserve runs in the transaction that inserts the charge, before the
	// insert (the charge is pending and has its id). An error aborts the
	// charge: nothing is written and the processor is not called.
	Reserve func(ctx context.Context, tx T, c *Charge) error
	// Settled runs in every transaction that records a processor outcome:
	// the authorization result (requires_capture, succeeded or failed), a
	// capture, a void and a refund's result. c is the charge after the change.
	Settled func(ctx context.Context, tx T, c *Charge) error
}

// Service is the payment core for merchant charges. It embeds the Engine
// on its own transaction type with no hooks.
type Service struct {
	*Engine[Tx]
	vault *vault.Service
	proc  Processor
	cfg   Config
	log   *slog.Logger
	now   func() time.Time
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
	s := &Service{vault: v, proc: p, cfg: cfg, log: log, now: time.Now}
	s.Engine = NewEngine(s, db, Hooks[Tx]{})
	return s
}

// Vault returns the vault the core detokenizes with.
func (s *Service) Vault() *vault.Service { return s.vault }

// Engine runs charges on transactions of type T with the caller's hooks.
// The mandates pipeline makes one on its own transaction type; every
// operation and the resolver are methods, so they all run its hooks.
type Engine[T Tx] struct {
	s  *Service
	db store.Runner[T]
	h  Hooks[T]
}

// NewEngine returns an engine of s on db with hooks h.
func NewEngine[T Tx](s *Service, db store.Runner[T], h Hooks[T]) *Engine[T] {
	return &Engine[T]{s: s, db: db, h: h}
}

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
	// Set by the mandates pipeline for agent charges.
	MandateID  string
	AgentID    string
	MerchantID string
	Purchase   *Purchase
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
		return paramErr("currency", "parameter_missing", "Missing required param: currency.")
	}
	cur, err := NormalizeCurrency(p.Currency)
	if err != nil {
		return paramErr("currency", "invalid_currency", "Invalid currency: %q is not a supported ISO 4217 code.", p.Currency)
	}
	p.Currency = cur
	if p.PaymentMethod == "" {
		return paramErr("payment_method", "parameter_missing", "Missing required param: payment_method (a card token, tok_…).")
	}
	if err := checkText("description", p.Description, 1000); err != nil {
		return err
	}
	if len(p.Metadata) > 50 {
		return paramErr("metadata", "parameter_invalid", "metadata can have at most 50 keys.")
	}
	for k, v := range p.Metadata {
		if k == "" || utf8.RuneCountInString(k) > 40 {
			return paramErr("metadata", "parameter_invalid", "metadata keys must be 1 to 40 characters.")
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
// no card number in any text, order URL, line items). It returns a
// *ParamError. The charge pipeline runs it before anything is stored
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
			return paramErr("order_url", "parameter_invalid", "order_url must be an absolute http(s) URL of at most 2048 characters.")
		}
	}
	if len(pu.LineItems) > 100 {
		return paramErr("line_items", "parameter_invalid", "At most 100 line items.")
	}
	for i, li := range pu.LineItems {
		param := fmt.Sprintf("line_items[%d]", i)
		if li.Name == "" {
			return paramErr(param+".name", "parameter_missing", "Every line item needs a name.")
		}
		if err := checkText(param+".name", li.Name, 200); err != nil {
			return err
		}
		if li.Quantity < 1 || li.Quantity > 1_000_000 {
			return paramErr(param+".quantity", "parameter_invalid", "quantity must be between 1 and 1000000.")
		}
		if li.UnitAmount < 0 || li.UnitAmount > money.MaxAmount {
			return paramErr(param+".unit_amount", "parameter_invalid", "unit_amount must be between 0 and %d.", money.MaxAmount)
		}
	}
	return nil
}

// checkText bounds free text and refuses text holding a card number, so a
// careless caller cannot store one in clear through a description.
func checkText(param, s string, maxRunes int) error {
	if !utf8.ValidString(s) || utf8.RuneCountInString(s) > maxRunes {
		return paramErr(param, "parameter_invalid", "%s must be valid UTF-8 of at most %d characters.", param, maxRunes)
	}
	if logging.RedactPAN(s) != s {
		return paramErr(param, "parameter_invalid", "%s looks like it contains a card number; card numbers go only to POST /v1/tokens.", param)
	}
	return nil
}

// Create makes a charge: validates, reveals the card and inserts the charge
// as pending (running Reserve) in one transaction, calls the processor,
// and records the outcome (running Settled). A declined charge is returned
// with a *CardError.
func (e *Engine[T]) Create(ctx context.Context, p ChargeParams) (*Charge, error) {
	if err := e.s.validate(&p); err != nil {
		return nil, err
	}
	now := e.s.clock()
	c := &Charge{
		ID: ids.New("ch"), TenantID: p.TenantID, Livemode: p.Livemode, Status: StatusPending,
		Amount: p.Amount, Currency: p.Currency, CaptureNow: p.Capture, PaymentMethod: p.PaymentMethod,
		Description: p.Description, Metadata: p.Metadata, MandateID: p.MandateID, AgentID: p.AgentID,
		MerchantID: p.MerchantID, Purchase: p.Purchase, Created: now, Updated: now, IdempotencyKey: p.IdempotencyKey,
	}
	var card *vault.Card
	err := e.db.InTx(ctx, func(tx T) error {
		tok, cd, err := e.s.vault.Reveal(ctx, tx, p.TenantID, p.PaymentMethod)
		switch {
		case errors.Is(err, store.ErrNotFound) || errors.Is(err, vault.ErrTokenDeleted) || (err == nil && !p.LivemodeOfCard && tok.Livemode != p.Livemode):
			return paramErr("payment_method", "resource_missing", "No such token: '%s'.", p.PaymentMethod)
		case errors.Is(err, vault.ErrKeyDestroyed):
			return paramErr("payment_method", "token_unusable", "The card of token '%s' was erased.", p.PaymentMethod)
		case err != nil:
			return err
		}
		if p.LivemodeOfCard {
			c.Livemode = tok.Livemode
		}
		c.Card = CardDetails{Brand: tok.Brand, Last4: tok.Last4, ExpMonth: tok.ExpMonth, ExpYear: tok.ExpYear,
			Fingerprint: tok.Fingerprint, CVCCheck: tok.CVCCheck}
		if e.h.Reserve != nil {
			if err := e.h.Reserve(ctx, tx, c); err != nil {
				return err
			}
		}
		if err := tx.CreateCharge(ctx, c); err != nil {
			return err
		}
		card = cd
		return audit.RecordFor(ctx, tx, c.TenantID, "charge.created", c.ID, map[string]any{
			"amount": c.Amount, "currency": c.Currency, "payment_method": c.PaymentMethod, "capture": c.CaptureNow,
			"mandate": c.MandateID, "agent": c.AgentID, "merchant": c.MerchantID,
		})
	})
	if errors.Is(err, store.ErrConflict) && p.IdempotencyKey != "" {
		return e.existing(ctx, p.TenantID, p.IdempotencyKey)
	}
	if err != nil {
		return nil, err
	}
	// From here on the charge exists: finish it even if the client goes away.
	return e.complete(context.WithoutCancel(ctx), c, card)
}

// existing returns the charge an earlier request with the same idempotency
// key created (its claim lapsed, so the middleware let the retry through).
func (e *Engine[T]) existing(ctx context.Context, tenantID, key string) (*Charge, error) {
	var c *Charge
	err := e.db.Autocommit(ctx, func(tx T) error {
		var err error
		c, err = tx.ChargeByIdempotencyKey(ctx, tenantID, key)
		return err
	})
	if err != nil {
		return nil, err
	}
	c.derive()
	if c.Status == StatusFailed {
		return c, &CardError{Charge: c, Code: c.FailureCode, DeclineCode: c.DeclineCode, Message: c.FailureMessage}
	}
	return c, nil
}

// complete calls the processor for a pending charge and records the answer.
func (e *Engine[T]) complete(ctx context.Context, c *Charge, card *vault.Card) (*Charge, error) {
	var res *Result
	var uncertain bool
	attempts := 0
	if c.Card.CVCCheck == vault.CVCFail {
		// The CVC failed its one verification; a real processor cannot
		// check it again (the CVC is gone), so the core declines.
		res = &Result{DeclineCode: DeclineIncorrectCVC}
	} else if card != nil {
		res, uncertain, attempts = e.s.call(ctx, func(ctx context.Context) (*Result, error) {
			return e.s.proc.Authorize(ctx, AuthRequest{Reference: c.ID, Amount: c.Amount, Currency: c.Currency, Card: card, Capture: c.CaptureNow})
		})
		*card = vault.Card{}
	} else {
		uncertain = c.Attempts > 0 // the card is gone; reverse what an earlier attempt may have done
	}
	return e.record(ctx, c.TenantID, c.ID, res, uncertain, attempts)
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

func emitFor(ctx context.Context, tx webhooks.Outbox, c *Charge, typ string) error {
	c.derive()
	return webhooks.Emit(ctx, tx, c.TenantID, typ, c)
}

// record writes the processor's answer on a pending charge (res nil: no
// answer after every retry). A charge another node resolved first is
// returned as it is.
func (e *Engine[T]) record(ctx context.Context, tenantID, id string, res *Result, uncertain bool, attempts int) (*Charge, error) {
	var out *Charge
	err := e.db.InTx(ctx, func(tx T) error {
		c, err := tx.LockCharge(ctx, tenantID, id)
		if err != nil {
			return err
		}
		out = c
		if c.Status != StatusPending {
			return nil
		}
		now := e.s.clock()
		c.Attempts += attempts
		c.Updated = now
		event := "charge.failed"
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
			c.ReversalPending = uncertain
		}
		if err := tx.UpdateCharge(ctx, c, StatusPending); err != nil {
			return err
		}
		if e.h.Settled != nil {
			if err := e.h.Settled(ctx, tx, c); err != nil {
				return err
			}
		}
		if err := audit.RecordFor(ctx, tx, c.TenantID, event, c.ID, map[string]any{
			"status": c.Status, "amount": c.Amount, "currency": c.Currency, "failure_code": c.FailureCode,
			"decline_code": c.DeclineCode, "attempts": c.Attempts, "reversal_pending": c.ReversalPending,
		}); err != nil {
			return err
		}
		return emitFor(ctx, tx, c, event)
	})
	if err != nil {
		return nil, err
	}
	if out.ReversalPending {
		e.reverse(ctx, out)
	}
	out.derive()
	if out.Status == StatusFailed {
		return out, &CardError{Charge: out, Code: out.FailureCode, DeclineCode: out.DeclineCode, Message: out.FailureMessage}
	}
	return out, nil
}

// reverse voids the reference of a charge failed without an answer, in
// case the acquirer authorized it; on success it clears ReversalPending.
func (e *Engine[T]) reverse(ctx context.Context, c *Charge) {
	res, _, _ := e.s.call(ctx, func(ctx context.Context) (*Result, error) { return e.s.proc.Void(ctx, c.ID) })
	if res == nil || !res.Approved {
		e.s.log.WarnContext(ctx, "charge reversal not confirmed; the resolver will retry", "charge", c.ID)
		return
	}
	err := e.db.InTx(ctx, func(tx T) error {
		cur, err := tx.LockCharge(ctx, c.TenantID, c.ID)
		if err != nil || !cur.ReversalPending {
			return err
		}
		cur.ReversalPending = false
		cur.Updated = e.s.clock()
		if err := tx.UpdateCharge(ctx, cur, cur.Status); err != nil {
			return err
		}
		return audit.RecordFor(ctx, tx, cur.TenantID, "charge.reversed", cur.ID, map[string]any{"reason": "processor answer lost"})
	})
	if err != nil {
		e.s.log.ErrorContext(ctx, "recording a charge reversal failed", "charge", c.ID, "err", err)
		return
	}
	c.ReversalPending = false
}

// Get returns a charge of the owner.
func (e *Engine[T]) Get(ctx context.Context, o Owner, id string) (*Charge, error) {
	var c *Charge
	err := e.db.InTx(ctx, func(tx T) error {
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
func (e *Engine[T]) List(ctx context.Context, o Owner, limit int, startingAfter string) ([]Charge, bool, error) {
	return e.list(ctx, o.TenantID, ListFilter{Livemode: o.Livemode, Limit: limit, StartingAfter: startingAfter})
}

// ListForMerchant returns a page of the charges made to a merchant account
// (agent charges of any payer naming it), newest first, in one mode.
func (e *Engine[T]) ListForMerchant(ctx context.Context, merchantID string, livemode bool, limit int, startingAfter string) ([]Charge, bool, error) {
	return e.list(ctx, "", ListFilter{MerchantID: merchantID, Livemode: livemode, Limit: limit, StartingAfter: startingAfter})
}

func (e *Engine[T]) list(ctx context.Context, tenantID string, f ListFilter) ([]Charge, bool, error) {
	limit, startingAfter := f.Limit, f.StartingAfter
	if limit < 1 || limit > 100 {
		return nil, false, paramErr("limit", "parameter_invalid", "limit must be between 1 and 100.")
	}
	f.Limit = limit + 1
	var out []Charge
	err := e.db.Autocommit(ctx, func(tx T) error {
		var err error
		out, err = tx.ListCharges(ctx, tenantID, f)
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		return nil, false, paramErr("starting_after", "resource_missing", "No such charge: '%s'.", startingAfter)
	}
	if err != nil {
		return nil, false, err
	}
	more := len(out) > limit
	if more {
		out = out[:limit]
	}
	for i := range out {
		out[i].derive()
	}
	return out, more, nil
}

// lockOwned loads and locks a charge of the owner for a state change.
func lockOwned[T Tx](ctx context.Context, tx T, o Owner, id string) (*Charge, error) {
	c, err := tx.LockCharge(ctx, o.TenantID, id)
	if err != nil {
		return nil, err
	}
	if c.Livemode != o.Livemode {
		return nil, store.ErrNotFound
	}
	return c, nil
}

// Capture captures an authorized charge, fully or partly (amount nil:
// the whole authorized amount).
func (e *Engine[T]) Capture(ctx context.Context, o Owner, id string, amount *int64) (*Charge, error) {
	c, err := e.Get(ctx, o, id)
	if err != nil {
		return nil, err
	}
	if err := capturable(c); err != nil {
		return nil, err
	}
	amt := c.Amount
	if amount != nil {
		if *amount < 1 || *amount > c.Amount {
			return nil, paramErr("amount", "amount_too_large", "The capture amount must be between 1 and the authorized amount (%d).", c.Amount)
		}
		amt = *amount
	}
	ctx = context.WithoutCancel(ctx)
	res, _, _ := e.s.call(ctx, func(ctx context.Context) (*Result, error) { return e.s.proc.Capture(ctx, c.ID, amt) })
	if res == nil {
		return nil, ErrProcessor
	}
	if !res.Approved {
		c.derive()
		return nil, &CardError{Charge: c, Code: DeclineProcessingError, DeclineCode: res.DeclineCode, Message: "The processor refused the capture."}
	}
	return e.transition(ctx, o, id, StatusRequiresCapture, "charge.captured", func(c *Charge, now time.Time) {
		c.Status, c.AmountCaptured, c.CapturedAt = StatusSucceeded, amt, &now
	})
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

// Void cancels an uncaptured charge.
func (e *Engine[T]) Void(ctx context.Context, o Owner, id string) (*Charge, error) {
	c, err := e.Get(ctx, o, id)
	if err != nil {
		return nil, err
	}
	if err := capturable(c); err != nil {
		return nil, err
	}
	ctx = context.WithoutCancel(ctx)
	res, _, _ := e.s.call(ctx, func(ctx context.Context) (*Result, error) { return e.s.proc.Void(ctx, c.ID) })
	if res == nil {
		return nil, ErrProcessor
	}
	if !res.Approved {
		c.derive()
		return nil, &CardError{Charge: c, Code: DeclineProcessingError, DeclineCode: res.DeclineCode, Message: "The processor refused the void."}
	}
	return e.transition(ctx, o, id, StatusRequiresCapture, "charge.canceled", func(c *Charge, now time.Time) {
		c.Status, c.CanceledAt = StatusCanceled, &now
	})
}

// transition applies change to a charge still in status from, with the
// Settled hook, the audit entry and the event, in one transaction.
func (e *Engine[T]) transition(ctx context.Context, o Owner, id, from, event string, change func(c *Charge, now time.Time)) (*Charge, error) {
	var out *Charge
	err := e.db.InTx(ctx, func(tx T) error {
		c, err := lockOwned(ctx, tx, o, id)
		if err != nil {
			return err
		}
		if c.Status != from {
			return capturable(c)
		}
		now := e.s.clock()
		change(c, now)
		c.Updated = now
		if err := tx.UpdateCharge(ctx, c, from); err != nil {
			return err
		}
		if e.h.Settled != nil {
			if err := e.h.Settled(ctx, tx, c); err != nil {
				return err
			}
		}
		if err := audit.RecordFor(ctx, tx, c.TenantID, event, c.ID, map[string]any{
			"status": c.Status, "amount_captured": c.AmountCaptured, "amount": c.Amount,
		}); err != nil {
			return err
		}
		out = c
		return emitFor(ctx, tx, c, event)
	})
	if err != nil {
		return nil, err
	}
	out.derive()
	return out, nil
}

// RefundParams is a refund to create.
type RefundParams struct {
	Owner
	ChargeID string
	// Amount nil refunds what is left of the captured amount.
	Amount *int64
	Reason string
}

// Refund returns money of a captured charge. The amount is reserved on the
// charge (amount_refunded) in the transaction that creates the refund, so
// concurrent refunds never exceed the captured amount; a failed refund
// releases it. A refund whose answer was lost stays pending; the resolver
// retries it with the same reference.
func (e *Engine[T]) Refund(ctx context.Context, p RefundParams) (*Refund, error) {
	if p.ChargeID == "" {
		return nil, paramErr("charge", "parameter_missing", "Missing required param: charge.")
	}
	switch p.Reason {
	case "", "duplicate", "fraudulent", "requested_by_customer":
	default:
		return nil, paramErr("reason", "parameter_invalid", "reason must be duplicate, fraudulent or requested_by_customer.")
	}
	now := e.s.clock()
	r := &Refund{ID: ids.New("re"), Object: "refund", TenantID: p.TenantID, Livemode: p.Livemode, ChargeID: p.ChargeID,
		Status: RefundPending, Reason: p.Reason, Created: now, Updated: now}
	err := e.db.InTx(ctx, func(tx T) error {
		c, err := lockOwned(ctx, tx, p.Owner, p.ChargeID)
		if errors.Is(err, store.ErrNotFound) {
			return paramErr("charge", "resource_missing", "No such charge: '%s'.", p.ChargeID)
		}
		if err != nil {
			return err
		}
		if c.Status != StatusSucceeded {
			return paramErr("charge", "charge_not_refundable", "Charge %s is %s; only a captured charge can be refunded (void an uncaptured one).", c.ID, c.Status)
		}
		left := c.AmountCaptured - c.AmountRefunded
		if left <= 0 {
			return paramErr("charge", "charge_already_refunded", "Charge %s has already been refunded.", c.ID)
		}
		r.Amount = left
		if p.Amount != nil {
			if *p.Amount < 1 {
				return paramErr("amount", "amount_too_small", "Refund amount must be at least 1.")
			}
			if *p.Amount > left {
				return paramErr("amount", "amount_too_large", "Refund amount (%d) is greater than the unrefunded amount on the charge (%d).", *p.Amount, left)
			}
			r.Amount = *p.Amount
		}
		r.Currency = c.Currency
		if err := tx.CreateRefund(ctx, r); err != nil {
			return err
		}
		c.AmountRefunded += r.Amount
		c.Updated = now
		if err := tx.UpdateCharge(ctx, c, StatusSucceeded); err != nil {
			return err
		}
		return audit.RecordFor(ctx, tx, c.TenantID, "refund.created", r.ID, map[string]any{"charge": c.ID, "amount": r.Amount, "currency": r.Currency})
	})
	if err != nil {
		return nil, err
	}
	return e.completeRefund(context.WithoutCancel(ctx), r)
}

func (e *Engine[T]) completeRefund(ctx context.Context, r *Refund) (*Refund, error) {
	res, _, _ := e.s.call(ctx, func(ctx context.Context) (*Result, error) {
		return e.s.proc.Refund(ctx, r.ChargeID, r.ID, r.Amount)
	})
	if res == nil {
		e.s.log.WarnContext(ctx, "refund left pending: the processor did not answer", "refund", r.ID)
		return r, nil
	}
	var out *Refund
	err := e.db.InTx(ctx, func(tx T) error {
		cur, err := tx.GetRefund(ctx, r.TenantID, r.ID)
		if err != nil {
			return err
		}
		out = cur
		if cur.Status != RefundPending {
			return nil
		}
		c, err := tx.LockCharge(ctx, cur.TenantID, cur.ChargeID)
		if err != nil {
			return err
		}
		now := e.s.clock()
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
			return err
		}
		if err := tx.UpdateCharge(ctx, c, c.Status); err != nil {
			return err
		}
		if e.h.Settled != nil {
			if err := e.h.Settled(ctx, tx, c); err != nil {
				return err
			}
		}
		if err := audit.RecordFor(ctx, tx, cur.TenantID, action, cur.ID, map[string]any{
			"charge": c.ID, "amount": cur.Amount, "failure_code": cur.FailureCode,
		}); err != nil {
			return err
		}
		if res.Approved {
			return emitFor(ctx, tx, c, event)
		}
		return webhooks.Emit(ctx, tx, cur.TenantID, event, cur)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// GetRefund returns a refund of the owner.
func (e *Engine[T]) GetRefund(ctx context.Context, o Owner, id string) (*Refund, error) {
	var r *Refund
	err := e.db.InTx(ctx, func(tx T) error {
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

// Resolve completes charges and refunds left unresolved: pending charges
// (their node died mid-call) are authorized again with the same reference
// and recorded; failed charges with a reversal pending are voided; pending
// refunds are sent again with the same reference. It returns how many
// objects it looked at.
func (e *Engine[T]) Resolve(ctx context.Context, limit int) (int, error) {
	before := e.s.clock().Add(-e.s.cfg.ResolveAfter)
	var charges []Charge
	var refunds []Refund
	err := e.db.InTx(ctx, func(tx T) error {
		var err error
		if charges, err = tx.ChargesToResolve(ctx, before, limit); err != nil {
			return err
		}
		refunds, err = tx.RefundsToResolve(ctx, before, limit)
		return err
	})
	if err != nil {
		return 0, err
	}
	for i := range charges {
		c := &charges[i]
		if c.Status != StatusPending {
			e.reverse(ctx, c)
			continue
		}
		var card *vault.Card
		err := e.db.InTx(ctx, func(tx T) error {
			_, cd, err := e.s.vault.Reveal(ctx, tx, c.TenantID, c.PaymentMethod)
			card = cd
			if err != nil {
				e.s.log.WarnContext(ctx, "resolver: card of a pending charge unavailable", "charge", c.ID, "err", err)
			}
			return nil
		})
		if err != nil {
			return 0, err
		}
		c.Attempts++ // it may have reached the processor before the node stopped
		if _, err := e.complete(ctx, c, card); err != nil {
			var ce *CardError
			if !errors.As(err, &ce) {
				e.s.log.ErrorContext(ctx, "resolver: completing a charge failed", "charge", c.ID, "err", err)
			}
		}
	}
	for i := range refunds {
		if _, err := e.completeRefund(ctx, &refunds[i]); err != nil {
			e.s.log.ErrorContext(ctx, "resolver: completing a refund failed", "refund", refunds[i].ID, "err", err)
		}
	}
	return len(charges) + len(refunds), nil
}

// RunResolver calls Resolve every interval until ctx ends.
func (e *Engine[T]) RunResolver(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if _, err := e.Resolve(ctx, 100); err != nil && ctx.Err() == nil {
			e.s.log.ErrorContext(ctx, "payments resolver failed", "err", err)
		}
	}
}

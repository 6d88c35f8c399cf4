package payments

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/perfectpay/perfectpay/audit"
	"github.com/perfectpay/perfectpay/internal/ids"
	"github.com/perfectpay/perfectpay/store"
	"github.com/perfectpay/perfectpay/vault"
)

// Simulated acquirer operations, as named in fault injection.
const (
	OpAuthorize = "authorize"
	OpCapture   = "capture"
	OpVoid      = "void"
	OpRefund    = "refund"
	OpVerify    = "verify"
)

// Fault kinds.
const (
	// FaultTimeout: the acquirer acts but the answer is lost (ErrTimeout),
	// the worst case for the core.
	FaultTimeout = "timeout"
	// FaultError: the acquirer refuses before acting (ErrUnavailable).
	FaultError = "error"
	// FaultDecline: the acquirer declines a new authorization or refund
	// (processing_error); a reference it already answered keeps its answer.
	FaultDecline = "decline"
)

// TestCards maps the simulated acquirer's test card numbers to their
// decline codes. Any other valid card number is approved.
var TestCards = map[string]string{
	"4000000000000002": DeclineGeneric,
	"4000000000009995": DeclineInsufficientFunds,
	"4000000000009987": DeclineLostCard,
	"4000000000009979": DeclineStolenCard,
	"4000000000000069": DeclineExpiredCard,
	"4000000000000127": DeclineIncorrectCVC,
	"4000000000000119": DeclineProcessingError,
	"4100000000000019": DeclineFraudulent,
}

// SimulatedConfig tunes the simulated acquirer.
type SimulatedConfig struct {
	// Latency is added to every call.
	Latency time.Duration
	// FaultPercent of calls (0–100), chosen at random, fail with FaultKind.
	FaultPercent int
	FaultKind    string
}

// Simulated is the built-in acquirer: deterministic answers per test card,
// idempotent per reference, with configurable latency and injected faults.
// Its ledger (authorizations, captures, voids, refunds) lives in the store,
// shared by every node as a real acquirer's is, so any node can capture,
// void or refund an authorization another node made. Latency, injected
// faults and call counts belong to the node that makes the calls.
type Simulated struct {
	cfg SimulatedConfig
	db  store.Runner[AcquirerRepo]

	mu     sync.Mutex
	queued map[string][]string // op -> fault kinds to apply to the next calls
	calls  map[string]int
}

// SimAuth is the acquirer's record of an authorization.
type SimAuth struct {
	Result   Result
	Amount   int64
	Captured int64
	Refunded int64
	Voided   bool
}

// SimRefund is the acquirer's record of a refund.
type SimRefund struct {
	ChargeRef string
	Amount    int64
	Result    Result
}

// AcquirerRepo is the simulated acquirer's ledger in the store, keyed by
// the payment core's references.
type AcquirerRepo interface {
	// SimAuthorization returns the authorization ref, locked until the
	// transaction ends; store.ErrNotFound when there is none.
	SimAuthorization(ctx context.Context, ref string) (*SimAuth, error)
	// CreateSimAuthorization records a new authorization; store.ErrConflict
	// when ref exists (a racing call made it first).
	CreateSimAuthorization(ctx context.Context, ref string, a SimAuth) error
	// UpdateSimAuthorization stores what changed on authorization ref
	// (captured, refunded, voided); store.ErrNotFound when there is none.
	UpdateSimAuthorization(ctx context.Context, ref string, a SimAuth) error
	// SimRefund returns refund ref; store.ErrNotFound when there is none.
	SimRefund(ctx context.Context, ref string) (*SimRefund, error)
	// CreateSimRefund records refund ref; store.ErrConflict when it exists.
	CreateSimRefund(ctx context.Context, ref string, r SimRefund) error
}

var _ Processor = (*Simulated)(nil)

// NewSimulated returns a simulated acquirer keeping its ledger in db.
func NewSimulated(cfg SimulatedConfig, db store.Runner[AcquirerRepo]) *Simulated {
	if cfg.FaultKind == "" {
		cfg.FaultKind = FaultTimeout
	}
	return &Simulated{cfg: cfg, db: db, queued: map[string][]string{}, calls: map[string]int{}}
}

// InjectFault makes the next n calls of op (from this node) fail with kind.
func (s *Simulated) InjectFault(op, kind string, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.queued[op] = append(s.queued[op], kind)
	}
}

// Calls counts the calls of op this node made so far.
func (s *Simulated) Calls(op string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[op]
}

// Authorization returns a copy of the acquirer's record for ref.
func (s *Simulated) Authorization(ref string) (SimAuth, bool) {
	ctx := context.Background()
	var a *SimAuth
	err := s.db.InTx(ctx, func(tx AcquirerRepo) error {
		var err error
		a, err = tx.SimAuthorization(ctx, ref)
		return err
	})
	if err != nil {
		return SimAuth{}, false
	}
	return *a, true
}

// begin waits the latency and draws a fault for one call of op.
func (s *Simulated) begin(ctx context.Context, op string) (string, error) {
	if s.cfg.Latency > 0 {
		t := time.NewTimer(s.cfg.Latency)
		select {
		case <-ctx.Done():
			t.Stop()
			return "", fmt.Errorf("%w: %v", ErrTimeout, ctx.Err())
		case <-t.C:
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls[op]++
	if q := s.queued[op]; len(q) > 0 {
		s.queued[op] = q[1:]
		return q[0], nil
	}
	if s.cfg.FaultPercent > 0 && rand.IntN(100) < s.cfg.FaultPercent { //nolint:gosec // G404: simulated faults, not a secret
		return s.cfg.FaultKind, nil
	}
	return "", nil
}

// end applies the fault drawn by begin to an operation's outcome.
func end(fault string, res *Result) (*Result, error) {
	switch fault {
	case FaultTimeout:
		return nil, ErrTimeout
	case FaultError:
		return nil, ErrUnavailable
	}
	return res, nil
}

// ledger runs one change of the acquirer's ledger in a transaction. A
// racing call that created the same record first (store.ErrConflict) makes
// it run again, now finding that record. When the ledger cannot be reached
// the acquirer is unavailable: it did not act, and a retry is safe.
func (s *Simulated) ledger(ctx context.Context, fn func(tx AcquirerRepo) (Result, error)) (*Result, error) {
	var res Result
	var err error
	for range 3 {
		err = s.db.InTx(ctx, func(tx AcquirerRepo) error {
			var err error
			res, err = fn(tx)
			return err
		})
		if !errors.Is(err, store.ErrConflict) && !errors.Is(err, store.ErrSerialization) {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("%w: simulated acquirer ledger: %w", ErrUnavailable, err)
	}
	return &res, nil
}

func decide(c *vault.Card) Result {
	if code, ok := TestCards[c.Number]; ok {
		return Result{DeclineCode: code}
	}
	return Result{Approved: true, AuthCode: ids.Random(6)}
}

// Authorize implements Processor.
func (s *Simulated) Authorize(ctx context.Context, req AuthRequest) (*Result, error) {
	ctx = acquirerContext(ctx)
	fault, err := s.begin(ctx, OpAuthorize)
	if err != nil {
		return nil, err
	}
	if fault == FaultError {
		return nil, ErrUnavailable
	}
	n := SimAuth{Result: decide(req.Card), Amount: req.Amount}
	if fault == FaultDecline {
		n.Result = Result{DeclineCode: DeclineProcessingError}
	}
	if n.Result.Approved && req.Capture {
		n.Captured = req.Amount
	}
	// A reference is new on all but a repeated call: one statement records
	// it, and only when a call with the same reference got there first is
	// its answer read back, as the acquirer answers a repeated call.
	err = s.db.Autocommit(ctx, func(tx AcquirerRepo) error {
		return tx.CreateSimAuthorization(ctx, req.Reference, n)
	})
	if err == nil {
		return end(fault, &n.Result)
	}
	if !errors.Is(err, store.ErrConflict) {
		return nil, fmt.Errorf("%w: simulated acquirer ledger: %w", ErrUnavailable, err)
	}
	res, err := s.ledger(ctx, func(tx AcquirerRepo) (Result, error) {
		a, err := tx.SimAuthorization(ctx, req.Reference)
		if err != nil {
			return Result{}, err
		}
		return a.Result, nil
	})
	if err != nil {
		return nil, err
	}
	return end(fault, res)
}

// Capture implements Processor.
func (s *Simulated) Capture(ctx context.Context, ref string, amount int64) (*Result, error) {
	ctx = acquirerContext(ctx)
	fault, err := s.begin(ctx, OpCapture)
	if err != nil {
		return nil, err
	}
	if fault == FaultError {
		return nil, ErrUnavailable
	}
	res, err := s.ledger(ctx, func(tx AcquirerRepo) (Result, error) {
		a, err := tx.SimAuthorization(ctx, ref)
		if errors.Is(err, store.ErrNotFound) {
			return Result{DeclineCode: DeclineProcessingError}, nil
		}
		if err != nil {
			return Result{}, err
		}
		if !a.Result.Approved || a.Voided {
			return Result{DeclineCode: DeclineProcessingError}, nil
		}
		switch {
		case a.Captured == amount:
			return Result{Approved: true, AuthCode: a.Result.AuthCode}, nil // a retried capture
		case a.Captured == 0 && amount > 0 && amount <= a.Amount:
			a.Captured = amount
			return Result{Approved: true, AuthCode: a.Result.AuthCode}, tx.UpdateSimAuthorization(ctx, ref, *a)
		}
		return Result{DeclineCode: DeclineProcessingError}, nil
	})
	if err != nil {
		return nil, err
	}
	return end(fault, res)
}

// Void implements Processor. It reverses an authorization, or a sale that
// has no refund yet (the core voids only uncaptured charges, and reverses
// sales whose answer it lost). Voiding an unknown reference succeeds and
// blocks a late authorization with that reference.
func (s *Simulated) Void(ctx context.Context, ref string) (*Result, error) {
	ctx = acquirerContext(ctx)
	fault, err := s.begin(ctx, OpVoid)
	if err != nil {
		return nil, err
	}
	if fault == FaultError {
		return nil, ErrUnavailable
	}
	res, err := s.ledger(ctx, func(tx AcquirerRepo) (Result, error) {
		a, err := tx.SimAuthorization(ctx, ref)
		if errors.Is(err, store.ErrNotFound) {
			return Result{Approved: true}, tx.CreateSimAuthorization(ctx, ref,
				SimAuth{Voided: true, Result: Result{DeclineCode: DeclineProcessingError}})
		}
		if err != nil {
			return Result{}, err
		}
		if a.Refunded > 0 {
			return Result{DeclineCode: DeclineProcessingError}, nil
		}
		a.Voided, a.Captured = true, 0 // a same-day reversal also cancels a sale
		return Result{Approved: true}, tx.UpdateSimAuthorization(ctx, ref, *a)
	})
	if err != nil {
		return nil, err
	}
	return end(fault, res)
}

// Refund implements Processor.
func (s *Simulated) Refund(ctx context.Context, chargeRef, refundRef string, amount int64) (*Result, error) {
	ctx = acquirerContext(ctx)
	fault, err := s.begin(ctx, OpRefund)
	if err != nil {
		return nil, err
	}
	if fault == FaultError {
		return nil, ErrUnavailable
	}
	res, err := s.ledger(ctx, func(tx AcquirerRepo) (Result, error) {
		r, err := tx.SimRefund(ctx, refundRef)
		if err == nil {
			return r.Result, nil
		}
		if !errors.Is(err, store.ErrNotFound) {
			return Result{}, err
		}
		res := Result{DeclineCode: DeclineProcessingError}
		a, err := tx.SimAuthorization(ctx, chargeRef)
		switch {
		case errors.Is(err, store.ErrNotFound):
		case err != nil:
			return Result{}, err
		case fault == FaultDecline:
		case amount > 0 && a.Refunded+amount <= a.Captured:
			a.Refunded += amount
			if err := tx.UpdateSimAuthorization(ctx, chargeRef, *a); err != nil {
				return Result{}, err
			}
			res = Result{Approved: true}
		}
		return res, tx.CreateSimRefund(ctx, refundRef, SimRefund{ChargeRef: chargeRef, Amount: amount, Result: res})
	})
	if err != nil {
		return nil, err
	}
	return end(fault, res)
}

// Verify implements Processor: the CVC check fails for the incorrect_cvc
// test card and passes for every other card.
func (s *Simulated) Verify(ctx context.Context, c *vault.Card) (*Result, error) {
	fault, err := s.begin(ctx, OpVerify)
	if err != nil {
		return nil, err
	}
	if fault == FaultError {
		return nil, ErrUnavailable
	}
	res := &Result{Approved: true, CVCCheck: vault.CVCPass}
	if TestCards[c.Number] == DeclineIncorrectCVC {
		res = &Result{DeclineCode: DeclineIncorrectCVC, CVCCheck: vault.CVCFail}
	}
	return end(fault, res)
}

// acquirerContext marks the acquirer's ledger work as its own: the
// acquirer stands for another company's system, so its statements are not
// the request's (a test counting a request's statements leaves them out).
func acquirerContext(ctx context.Context) context.Context {
	return audit.WithActor(ctx, audit.Actor{Type: audit.ActorSystem, ID: "simulated-acquirer"})
}

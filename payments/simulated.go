package payments

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/perfectpay/perfectpay/internal/ids"
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
// Its ledger lives in the process (each node has its own).
type Simulated struct {
	cfg SimulatedConfig

	mu      sync.Mutex
	auths   map[string]*SimAuth
	refunds map[string]*Result
	queued  map[string][]string // op -> fault kinds to apply to the next calls
	calls   map[string]int
}

// SimAuth is the acquirer's record of an authorization.
type SimAuth struct {
	Result   Result
	Amount   int64
	Captured int64
	Refunded int64
	Voided   bool
}

var _ Processor = (*Simulated)(nil)

// NewSimulated returns a simulated acquirer.
func NewSimulated(cfg SimulatedConfig) *Simulated {
	if cfg.FaultKind == "" {
		cfg.FaultKind = FaultTimeout
	}
	return &Simulated{cfg: cfg, auths: map[string]*SimAuth{}, refunds: map[string]*Result{},
		queued: map[string][]string{}, calls: map[string]int{}}
}

// InjectFault makes the next n calls of op fail with kind.
func (s *Simulated) InjectFault(op, kind string, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.queued[op] = append(s.queued[op], kind)
	}
}

// Calls counts the calls of op so far.
func (s *Simulated) Calls(op string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[op]
}

// Authorization returns a copy of the acquirer's record for ref.
func (s *Simulated) Authorization(ref string) (SimAuth, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.auths[ref]
	if !ok {
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
	if s.cfg.FaultPercent > 0 && rand.IntN(100) < s.cfg.FaultPercent {
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

func decide(c *vault.Card) Result {
	if code, ok := TestCards[c.Number]; ok {
		return Result{DeclineCode: code}
	}
	return Result{Approved: true, AuthCode: ids.Random(6)}
}

// Authorize implements Processor.
func (s *Simulated) Authorize(ctx context.Context, req AuthRequest) (*Result, error) {
	fault, err := s.begin(ctx, OpAuthorize)
	if err != nil {
		return nil, err
	}
	if fault == FaultError {
		return nil, ErrUnavailable
	}
	s.mu.Lock()
	a, ok := s.auths[req.Reference]
	if !ok {
		a = &SimAuth{Result: decide(req.Card), Amount: req.Amount}
		if a.Result.Approved && req.Capture {
			a.Captured = req.Amount
		}
		s.auths[req.Reference] = a
	}
	res := a.Result
	s.mu.Unlock()
	return end(fault, &res)
}

// Capture implements Processor.
func (s *Simulated) Capture(ctx context.Context, ref string, amount int64) (*Result, error) {
	fault, err := s.begin(ctx, OpCapture)
	if err != nil {
		return nil, err
	}
	if fault == FaultError {
		return nil, ErrUnavailable
	}
	s.mu.Lock()
	res := Result{DeclineCode: DeclineProcessingError}
	if a, ok := s.auths[ref]; ok && a.Result.Approved && !a.Voided {
		switch {
		case a.Captured == amount:
			res = Result{Approved: true, AuthCode: a.Result.AuthCode} // a retried capture
		case a.Captured == 0 && amount > 0 && amount <= a.Amount:
			a.Captured = amount
			res = Result{Approved: true, AuthCode: a.Result.AuthCode}
		}
	}
	s.mu.Unlock()
	return end(fault, &res)
}

// Void implements Processor. It reverses an authorization, or a sale that
// has no refund yet (the core voids only uncaptured charges, and reverses
// sales whose answer it lost). Voiding an unknown reference succeeds and
// blocks a late authorization with that reference.
func (s *Simulated) Void(ctx context.Context, ref string) (*Result, error) {
	fault, err := s.begin(ctx, OpVoid)
	if err != nil {
		return nil, err
	}
	if fault == FaultError {
		return nil, ErrUnavailable
	}
	s.mu.Lock()
	res := Result{Approved: true}
	if a, ok := s.auths[ref]; ok {
		if a.Refunded > 0 {
			res = Result{DeclineCode: DeclineProcessingError}
		} else {
			a.Voided, a.Captured = true, 0 // a same-day reversal also cancels a sale
		}
	} else {
		s.auths[ref] = &SimAuth{Voided: true, Result: Result{DeclineCode: DeclineProcessingError}}
	}
	s.mu.Unlock()
	return end(fault, &res)
}

// Refund implements Processor.
func (s *Simulated) Refund(ctx context.Context, chargeRef, refundRef string, amount int64) (*Result, error) {
	fault, err := s.begin(ctx, OpRefund)
	if err != nil {
		return nil, err
	}
	if fault == FaultError {
		return nil, ErrUnavailable
	}
	s.mu.Lock()
	res, ok := s.refunds[refundRef]
	if !ok {
		res = &Result{DeclineCode: DeclineProcessingError}
		if a, found := s.auths[chargeRef]; found && amount > 0 && a.Refunded+amount <= a.Captured {
			a.Refunded += amount
			res = &Result{Approved: true}
		}
		s.refunds[refundRef] = res
	}
	out := *res
	s.mu.Unlock()
	return end(fault, &out)
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

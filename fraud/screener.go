package fraud

import (
	"context"
	"errors"
	"time"

	"github.com/perfectpay/perfectpay/policies"
)

// Decisions a screener gives.
const (
	Accept      = "accept"
	Review      = "review"
	Reject      = "reject"
	Unavailable = "unavailable" // no answer in time, or an error
)

// Charge is a charge as a screener sees it: who, what, where, and the
// velocity the windows hold. No card data beyond the fingerprint, brand
// and last four digits.
type Charge struct {
	// Reference is unique per charge attempt (the decision id or the
	// charge's), for the vendor's order id.
	Reference  string
	TenantID   string
	AgentID    string
	MandateID  string
	Amount     int64
	Currency   string
	Merchant   policies.Merchant
	Card       Card
	At         time.Time
	Velocity   Velocities
	RiskSignal []policies.RiskSignal
}

// Velocities are a charge's window totals per scope (before the charge).
type Velocities struct {
	Agent, Mandate, Card, Merchant Stats
}

// Card is what a screener may know of the card.
type Card struct {
	Fingerprint, Brand, Last4 string
}

// Result is a screener's answer: a score from 0 (no risk) to 100 and a
// decision (accept, review, reject), with the vendor's reasons.
type Result struct {
	Score    int
	Decision string
	Reasons  []string
}

// Screener scores a charge before it is made.
type Screener interface {
	Name() string
	Screen(ctx context.Context, c *Charge) (Result, error)
}

// ErrBadAnswer is a vendor answer that could not be read.
var ErrBadAnswer = errors.New("fraud: the screener's answer could not be read")

// Screen runs s on c within timeout. No answer in time, or an error,
// gives decision "unavailable"; failClosed says whether the policy then
// denies (the tenant's choice).
// A screener that answers at once without I/O (the built-in rules) runs
// on the caller's goroutine, without a timer.
func Screen(ctx context.Context, s Screener, c *Charge, timeout time.Duration, failClosed bool) (*policies.Screening, error) {
	if _, ok := s.(inline); ok {
		r, err := s.Screen(ctx, c)
		return screening(s, failClosed, r, err)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	type answer struct {
		r   Result
		err error
	}
	ch := make(chan answer, 1)
	go func() {
		r, err := s.Screen(ctx, c)
		ch <- answer{r, err}
	}()
	select {
	case a := <-ch:
		return screening(s, failClosed, a.r, a.err)
	case <-ctx.Done():
		return &policies.Screening{Screener: s.Name(), FailClosed: failClosed, Decision: Unavailable}, ctx.Err()
	}
}

// inline marks a screener that answers at once without I/O.
type inline interface{ inline() }

func screening(s Screener, failClosed bool, r Result, err error) (*policies.Screening, error) {
	out := &policies.Screening{Screener: s.Name(), FailClosed: failClosed}
	if err != nil {
		out.Decision = Unavailable
		return out, err
	}
	out.Decision, out.Score, out.Reasons = r.Decision, min(100, max(0, r.Score)), r.Reasons
	switch out.Decision {
	case Accept, Review, Reject:
	default:
		out.Decision = Unavailable
		return out, ErrBadAnswer
	}
	return out, nil
}

// scoreDecision maps a score to a decision with thresholds review and
// reject (a score at or past a threshold takes its decision).
func scoreDecision(score, review, reject int) string {
	switch {
	case reject > 0 && score >= reject:
		return Reject
	case review > 0 && score >= review:
		return Review
	}
	return Accept
}

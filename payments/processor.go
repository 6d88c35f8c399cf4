package payments

import (
	"context"
	"errors"
	"time"

	"github.com/perfectpay/perfectpay/vault"
)

// Processor is the acquirer the payment core talks to. Every call carries
// the core's reference (the charge or refund id); a processor must treat a
// repeated call with the same reference as the same operation, so the core
// can retry a call whose answer was lost without charging twice.
type Processor interface {
	// Authorize asks for amount on the card; with Capture the funds are
	// captured at once (a sale).
	Authorize(ctx context.Context, req AuthRequest) (*Result, error)
	// Capture captures amount (≤ the authorized amount) of an authorization.
	Capture(ctx context.Context, ref string, amount int64) (*Result, error)
	// Void cancels an uncaptured authorization (also used to reverse an
	// authorization whose answer the core never received).
	Void(ctx context.Context, ref string) (*Result, error)
	// Refund returns amount of a captured charge; refundRef identifies the refund.
	Refund(ctx context.Context, chargeRef, refundRef string, amount int64) (*Result, error)
	// Verify is a zero-amount card verification; it is the only call that
	// sees the CVC.
	Verify(ctx context.Context, card *vault.Card) (*Result, error)
}

// AuthRequest is an authorization.
type AuthRequest struct {
	Reference string
	Amount    int64
	Currency  string
	Card      *vault.Card
	Capture   bool
}

// Result is the processor's answer to a call that reached it.
type Result struct {
	Approved bool
	// AuthCode is the issuer's approval code.
	AuthCode string
	// DeclineCode says why it was declined (generic_decline,
	// insufficient_funds, lost_card, stolen_card, expired_card,
	// incorrect_cvc, processing_error, fraudulent, …).
	DeclineCode string
	// CVCCheck is set by Verify: pass or fail.
	CVCCheck string
}

// ErrTimeout means the call's outcome is unknown: the processor may or may
// not have acted. The core retries with the same reference.
var ErrTimeout = errors.New("payments: processor timed out")

// ErrUnavailable means the processor refused the call before acting (a
// connection error, a 5xx): nothing happened and a retry is safe.
var ErrUnavailable = errors.New("payments: processor unavailable")

// CardVerifier adapts a Processor to the vault's verification at
// tokenization; a verification slower than timeout counts as unavailable.
func CardVerifier(p Processor, timeout time.Duration) vault.Verifier { return verifier{p, timeout} }

type verifier struct {
	p       Processor
	timeout time.Duration
}

func (v verifier) VerifyCard(ctx context.Context, c *vault.Card) string {
	if v.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, v.timeout)
		defer cancel()
	}
	res, err := v.p.Verify(ctx, c)
	if err != nil || res == nil {
		return vault.CVCUnavailable
	}
	if res.CVCCheck == vault.CVCFail || res.DeclineCode == DeclineIncorrectCVC {
		return vault.CVCFail
	}
	if res.CVCCheck == "" {
		return vault.CVCUnavailable
	}
	return res.CVCCheck
}

// Decline codes the simulated acquirer gives and the API reports.
const (
	DeclineGeneric           = "generic_decline"
	DeclineInsufficientFunds = "insufficient_funds"
	DeclineLostCard          = "lost_card"
	DeclineStolenCard        = "stolen_card"
	DeclineExpiredCard       = "expired_card"
	DeclineIncorrectCVC      = "incorrect_cvc"
	DeclineProcessingError   = "processing_error"
	DeclineFraudulent        = "fraudulent"
)

// ErrorCode is the top-level error code of a decline, as Stripe reports it:
// a few decline reasons have their own code, the rest are card_declined.
func ErrorCode(declineCode string) string {
	switch declineCode {
	case DeclineExpiredCard, DeclineIncorrectCVC, DeclineProcessingError:
		return declineCode
	}
	return "card_declined"
}

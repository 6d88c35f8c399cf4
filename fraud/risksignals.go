package fraud

import (
	"context"
	"fmt"
	"math"
	"strconv"

	"github.com/perfectpay/perfectpay/internal/logging"
	"github.com/perfectpay/perfectpay/policies"
)

// MaxRiskSignals bounds the risk signals one charge may carry.
const MaxRiskSignals = 20

// RiskSignalError is a refused risk signal: Param names it
// (risk_signals[2].score), Message says what is accepted.
type RiskSignalError struct{ Param, Message string }

func (e *RiskSignalError) Error() string { return e.Message }

// CheckRiskSignals validates the risk signals a caller sent with a
// charge ([{type, score, action}], the shape agentic checkout protocols
// use), whatever the route: at most MaxRiskSignals; type a short token
// (1 to 64 letters, digits, '_', '-', '.' or ':') that is not a card
// number; score a number from 0 to 100; action allow, review or block.
// Valid signals are recorded; where a policy decides they can only ask
// for review or deny ("allow" changes nothing).
func CheckRiskSignals(rs []policies.RiskSignal) error {
	if len(rs) > MaxRiskSignals {
		return &RiskSignalError{"risk_signals", fmt.Sprintf("At most %d risk signals may be sent.", MaxRiskSignals)}
	}
	for i, s := range rs {
		p := "risk_signals[" + strconv.Itoa(i) + "]"
		if !signalToken(s.Type) || logging.RedactPAN(s.Type) != s.Type {
			return &RiskSignalError{p + ".type", p + ".type must be 1 to 64 letters, digits, '_', '-', '.' or ':'."}
		}
		if math.IsNaN(s.Score) || s.Score < 0 || s.Score > 100 {
			return &RiskSignalError{p + ".score", p + ".score must be a number from 0 to 100."}
		}
		if s.Action != "allow" && s.Action != "review" && s.Action != "block" {
			return &RiskSignalError{p + ".action", p + ".action must be allow, review or block."}
		}
	}
	return nil
}

func signalToken(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.' || c == ':') {
			return false
		}
	}
	return true
}

type riskSignalsKey struct{}

// WithRiskSignals returns ctx carrying the checked risk signals sent with
// a charge; Assess puts them into the policy input.
func WithRiskSignals(ctx context.Context, rs []policies.RiskSignal) context.Context {
	return context.WithValue(ctx, riskSignalsKey{}, rs)
}

// RiskSignalsFrom returns the risk signals ctx carries (WithRiskSignals).
func RiskSignalsFrom(ctx context.Context) []policies.RiskSignal {
	rs, _ := ctx.Value(riskSignalsKey{}).([]policies.RiskSignal)
	return rs
}

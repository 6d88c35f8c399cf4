package charging

import (
	"context"

	"github.com/perfectpay/perfectpay/payments"
	"github.com/perfectpay/perfectpay/policies"
)

// FraudSignals are the fraud defences as the pipeline sees them: Assess
// fills the policy input's fraud document (velocity, anomaly, screener)
// before the policy decides, within its own strict time bound; Observe
// hears the outcome of every charge made. Implementations never fail a
// charge themselves: what they find, the policy weighs.
type FraudSignals interface {
	Assess(ctx context.Context, in *policies.Input)
	Observe(ctx context.Context, in *policies.Input, declined bool)
}

// SetFraudSignals turns the fraud defences on (nil turns them off).
func (s *Service) SetFraudSignals(f FraudSignals) { s.fraud = f }

func (s *Service) assessFraud(ctx context.Context, in *policies.Input) {
	if s.fraud != nil {
		s.fraud.Assess(ctx, in)
	}
}

// observeFraud counts a charge that was made (a decline too; a charge
// still pending counts as made).
func (s *Service) observeFraud(ctx context.Context, in *policies.Input, ch *payments.Charge) {
	if s.fraud != nil && ch != nil {
		s.fraud.Observe(ctx, in, ch.Status == payments.StatusFailed)
	}
}

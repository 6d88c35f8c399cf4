package charging

import (
	"context"

	"github.com/perfectpay/perfectpay/authz"
	"github.com/perfectpay/perfectpay/fraud"
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

// AnomalyReader reads an agent's standing anomaly flag (fraud.Repo).
type AnomalyReader interface {
	GetAnomaly(ctx context.Context, tenantID, agentID string) (*fraud.Flag, error)
}

// standingReader is FraudSignals whose Assess reads the agent's stored
// anomaly flag (fraud.Assessor on a store). The pipeline reads it with the
// charge's other reads, in their round trip, and hands it over with
// fraud.WithStanding: the defences cost no round trip of their own.
type standingReader interface{ ReadsStanding() bool }

// readsStanding reports whether the load reads the agent's flag.
func (s *Service) readsStanding() bool {
	r, ok := s.fraud.(standingReader)
	return ok && r.ReadsStanding()
}

func (s *Service) assessFraud(ctx context.Context, tok *authz.AccessToken, l *loaded, in *policies.Input) {
	if s.fraud == nil {
		return
	}
	if l.readStanding {
		ctx = fraud.WithStanding(ctx, tok.TenantID, tok.ClientID, l.standing, l.standingErr)
	}
	s.fraud.Assess(ctx, in)
}

// observeFraud counts a charge that was made (a decline too; a charge
// still pending counts as made).
func (s *Service) observeFraud(ctx context.Context, in *policies.Input, ch *payments.Charge) {
	if s.fraud != nil && ch != nil {
		s.fraud.Observe(ctx, in, ch.Status == payments.StatusFailed)
	}
}

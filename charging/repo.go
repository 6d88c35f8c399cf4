package charging

import (
	"context"
	"encoding/json"
	"time"

	"github.com/perfectpay/perfectpay/mandates"
	"github.com/perfectpay/perfectpay/policies"
)

// Approval statuses.
const (
	ApprovalPending  = "pending"
	ApprovalApproved = "approved"
	ApprovalDenied   = "denied"
	ApprovalUsed     = "used"
)

// Approval is a step-up: a human's yes or no to one exact charge request
// that the policy challenged. It is single-use and expires.
type Approval struct {
	ID            string            `json:"id"`
	Object        string            `json:"object"`
	TenantID      string            `json:"-"`
	Status        string            `json:"status"`
	MandateID     string            `json:"mandate"`
	AgentID       string            `json:"agent"`
	Amount        int64             `json:"amount"`
	Currency      string            `json:"currency"`
	PaymentMethod string            `json:"payment_method"`
	MerchantID    string            `json:"merchant"`
	Purchase      json.RawMessage   `json:"purchase,omitempty"`
	Reasons       []policies.Reason `json:"reasons"`
	// Binding is a digest of the exact request (mandate, agent, amount,
	// currency, card, merchant, idempotency key) the approval is for.
	Binding    string     `json:"-"`
	CreatedAt  time.Time  `json:"created"`
	ExpiresAt  time.Time  `json:"expires_at"`
	ResolvedAt *time.Time `json:"resolved_at"`
	ResolvedBy string     `json:"resolved_by,omitempty"`
	ChargeID   string     `json:"charge,omitempty"`
	URL        string     `json:"url,omitempty"`
}

// Decision is the record of one policy decision, allowed or not.
type Decision struct {
	ID            string            `json:"id"`
	TenantID      string            `json:"-"`
	MandateID     string            `json:"mandate"`
	AgentID       string            `json:"agent"`
	ChargeID      string            `json:"charge,omitempty"`
	ApprovalID    string            `json:"approval,omitempty"`
	Result        string            `json:"result"`
	Reasons       []policies.Reason `json:"reasons"`
	PolicyVersion string            `json:"policy_version"`
	InputDigest   string            `json:"input_digest"`
	LatencyMicros int64             `json:"latency_us"`
	// Outcome is the processor's answer for an allowed charge: succeeded,
	// requires_capture, failed (empty until known).
	Outcome   string    `json:"outcome,omitempty"`
	CreatedAt time.Time `json:"created"`
	// Input is the exact policy input (canonical JSON) when the policy
	// decided; it is kept beside the record (RecordDecisionInput) for
	// evidence and replay, and holds the token claims the agent presented.
	Input json.RawMessage `json:"-"`
}

// Hold is the budget an agent charge holds on its mandate chain: reserved
// when the charge is inserted, given back as the charge fails, is voided,
// partially captured or refunded.
type Hold struct {
	ChargeID    string
	TenantID    string
	Reservation mandates.Reservation
	// Held is the amount still held (starts at Reservation.Amount).
	Held int64
	// Counted is whether the charge still counts against max_charges.
	Counted bool
}

// Counts are decisions in a window: allowed charges and declines (policy
// denials and processor declines).
type Counts = policies.Counts

// VelocityQuery says which velocity counts a decision needs. A cap is the
// most a count need reach (limit + 1: enough to tell it is over); 0 skips
// that count, so with every limit off nothing is read.
type VelocityQuery struct {
	Since                                                        time.Time
	AgentCharges, AgentDeclines, MandateCharges, MandateDeclines int
}

// Needed reports whether any count is asked for.
func (q VelocityQuery) Needed() bool {
	return q.AgentCharges > 0 || q.AgentDeclines > 0 || q.MandateCharges > 0 || q.MandateDeclines > 0
}

// Repo is the storage the pipeline adds to the mandates, payments and
// issuer repositories.
type Repo interface {
	CreateApproval(ctx context.Context, a *Approval) error
	GetApproval(ctx context.Context, tenantID, id string) (*Approval, error)
	// UpdateApproval writes a's status, resolution and charge, but only if
	// the stored status is from: store.ErrConflict otherwise.
	UpdateApproval(ctx context.Context, a *Approval, from string) error

	CreateDecision(ctx context.Context, d *Decision) error
	// RecordDecisionInput keeps d.Input beside the decision record d.
	RecordDecisionInput(ctx context.Context, d *Decision) error
	// SetDecisionOutcome records the processor's answer on the decision of chargeID.
	SetDecisionOutcome(ctx context.Context, tenantID, chargeID, outcome string) error
	// Velocity counts the decisions since q.Since for the agent and for
	// the mandate; each count stops at its cap (0: not counted at all).
	Velocity(ctx context.Context, tenantID, agentID, mandateID string, q VelocityQuery) (agent, mandate Counts, err error)

	CreateHold(ctx context.Context, h *Hold) error
	// LockHold returns the hold of a charge, locked until the transaction
	// ends (store.ErrNotFound for charges without one: merchant charges).
	LockHold(ctx context.Context, tenantID, chargeID string) (*Hold, error)
	UpdateHold(ctx context.Context, h *Hold) error

	// DecisionOfCharge returns the decision that allowed chargeID.
	DecisionOfCharge(ctx context.Context, tenantID, chargeID string) (*Decision, error)
	// Prefetch runs reads (each sends at most one statement, whose text
	// and arguments do not depend on another read's result) in one round
	// trip where the store can, and returns the first error one returned.
	// A read that handles its own errors keeps them and returns nil.
	Prefetch(ctx context.Context, reads ...func(tx Tx) error) error
	// Savepoint runs fn inside the transaction so that a failure of fn
	// undoes what fn wrote and nothing else: the transaction goes on with
	// what came before. When fn returns nil its writes are sent and
	// checked before Savepoint returns (a write that fails then fails fn,
	// undone the same way). A group of charges runs each of its members
	// in one (see group.go).
	Savepoint(ctx context.Context, fn func() error) error

	// LedgerSnapshot reads every mandate, agent charge and refund of one
	// of them, of the tenant ("" for every tenant), for CheckLedger.
	LedgerSnapshot(ctx context.Context, tenantID string) (*LedgerSnapshot, error)
}

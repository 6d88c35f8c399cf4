package fraud

import (
	"context"
	"time"

	"github.com/perfectpay/perfectpay/policies"
)

// Flag is an agent's standing anomaly flag: raised by the node that saw
// the anomaly, stored so that every node steps the agent up and a restart
// keeps it, until a person clears it (the row is then deleted; the audit
// trail keeps its history).
type Flag struct {
	TenantID string
	AgentID  string
	policies.Anomaly
	RaisedAt time.Time
}

// Repo stores the standing flags: at most one per agent of a tenant.
type Repo interface {
	// RaiseAnomaly stores f; store.ErrConflict when the agent already has
	// a standing flag (which is left as it is), store.ErrNotFound when the
	// tenant does not exist.
	RaiseAnomaly(ctx context.Context, f *Flag) error
	// GetAnomaly returns the agent's standing flag; store.ErrNotFound when
	// it has none.
	GetAnomaly(ctx context.Context, tenantID, agentID string) (*Flag, error)
	// ClearAnomaly deletes the agent's standing flag and returns it;
	// store.ErrNotFound when it had none.
	ClearAnomaly(ctx context.Context, tenantID, agentID string) (*Flag, error)
}

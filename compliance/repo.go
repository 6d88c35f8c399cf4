package compliance

import (
	"context"
	"time"

	"github.com/perfectpay/perfectpay/accounts"
	"github.com/perfectpay/perfectpay/charging"
)

// PolicyVersion is a kept policy version: its modules by file name, named
// by their digest (policies.VersionOf).
type PolicyVersion struct {
	Version   string            `json:"version"`
	Modules   map[string]string `json:"modules"`
	CreatedAt time.Time         `json:"created"`
}

// DecisionFilter selects decision records in time order: a tenant's ("" for
// every tenant), after the cursor (AfterTime, AfterID), created in
// [Since, Until).
type DecisionFilter struct {
	TenantID  string
	AfterTime time.Time
	AfterID   string
	Since     time.Time
	Until     time.Time
	Limit     int
}

// Repo is the storage the compliance domain reads and writes. It holds
// the tenants' business verifications too (accounts.Verifications) and
// what erasing a customer changes, so every store keeps them.
type Repo interface {
	accounts.VerificationRepo
	accounts.ErasureRepo

	// PutPolicyVersion keeps v; a version already kept stays as it is.
	PutPolicyVersion(ctx context.Context, v *PolicyVersion) error
	// GetPolicyVersion returns a kept version (store.ErrNotFound).
	GetPolicyVersion(ctx context.Context, version string) (*PolicyVersion, error)
	// DecisionRecords returns up to f.Limit decisions by (created, id)
	// with their kept inputs (Input nil when the policy never saw one).
	DecisionRecords(ctx context.Context, f DecisionFilter) ([]charging.Decision, error)
	// DecisionRecord returns one decision of a tenant with its input
	// (store.ErrNotFound).
	DecisionRecord(ctx context.Context, tenantID, id string) (*charging.Decision, error)
}

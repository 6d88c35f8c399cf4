// Package idempotency stores the outcome of mutating requests so a retried
// request with the same Idempotency-Key gets the same answer and causes one
// effect. The claim is a row, so it holds across nodes.
package idempotency

import (
	"context"
	"time"
)

// States of a record.
const (
	StateInProgress = "in_progress"
	StateDone       = "done"
)

// Record is one claimed key.
type Record struct {
	TenantID     string
	CredentialID string
	Key          string
	Method       string
	Path         string
	RequestHash  []byte
	State        string
	Status       int
	Header       map[string]string
	Body         []byte
	CreatedAt    time.Time
	LockedUntil  time.Time // an in-progress claim older than this may be taken over
	ExpiresAt    time.Time
}

// Repo is the storage idempotency needs.
type Repo interface {
	// ClaimIdempotency inserts r as in progress. When a record with the same
	// (tenant, credential, key) exists it returns that record and
	// store.ErrConflict, unless that record is an in-progress claim whose
	// lock expired, which r then replaces.
	ClaimIdempotency(ctx context.Context, r *Record) (*Record, error)
	// CompleteIdempotency stores the response of a claimed key.
	CompleteIdempotency(ctx context.Context, r *Record) error
	// ReleaseIdempotency deletes a claim (for responses that are not stored).
	ReleaseIdempotency(ctx context.Context, tenantID, credentialID, key string) error
	// PruneIdempotency deletes records that expired before t.
	PruneIdempotency(ctx context.Context, before time.Time) (int, error)
}

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
	// Owner is the node session that holds an in-progress claim, set by the
	// store when it records the claim (callers leave it empty). A claim
	// whose session has ended (its node died, or the node lost the store and
	// reconnected under a new session) may be taken over at once, before
	// LockedUntil. Empty: no session known, only LockedUntil applies.
	Owner string
}

// Repo is the storage idempotency needs.
type Repo interface {
	// ClaimIdempotency inserts r as in progress, owned by this node's
	// current session. When a record with the same (tenant, credential, key)
	// exists it returns that record and store.ErrConflict, unless that
	// record is an in-progress claim whose lock expired or whose owning
	// session has ended, which r then replaces.
	ClaimIdempotency(ctx context.Context, r *Record) (*Record, error)
	// CompleteIdempotency stores the response of a claimed key.
	CompleteIdempotency(ctx context.Context, r *Record) error
	// AnswerIdempotency stores r's response (state, status, header, body,
	// expiry) on the key's claim, but only while that claim is in progress
	// and was made for r's request (same request hash); otherwise it does
	// nothing. It is sent with the transaction's next round trip, so the
	// answer commits with the change it answers for.
	AnswerIdempotency(ctx context.Context, r *Record) error
	// ReleaseIdempotency deletes a claim (for responses that are not stored).
	ReleaseIdempotency(ctx context.Context, tenantID, credentialID, key string) error
	// AbandonIdempotency deletes r's claim only while it is still the
	// in-progress claim r made (same CreatedAt and request hash), so a late
	// release never removes a claim another request took over since.
	AbandonIdempotency(ctx context.Context, r *Record) error
	// PruneIdempotency deletes records that expired before t.
	PruneIdempotency(ctx context.Context, before time.Time) (int, error)
}

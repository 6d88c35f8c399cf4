package idempotency

import (
	"context"
	"errors"
	"fmt"

	"github.com/perfectpay/perfectpay/store"
)

// Claim is an Idempotency-Key claim that the request's own transaction
// takes (Take), so a charge pays no transaction of its own for it: the
// HTTP layer puts it in the context (WithClaim) instead of claiming first,
// and takes it afterwards only if no transaction of the handler did.
//
// Until the transaction that took it commits, the claim is an uncommitted
// row: a concurrent request with the same key waits on it, then finds it
// taken, exactly as if it had been committed first. A Claim belongs to
// one request and is not safe for concurrent use.
type Claim struct {
	Record *Record
	// Old is the record found when the key was already claimed or
	// answered (Take then failed with a *ClaimedError).
	Old *Record

	pending bool // taken in the current transaction
	held    bool // taken in a transaction that committed
}

// ClaimedError is a claim that found the key claimed or answered by
// another request (Old).
type ClaimedError struct{ Old *Record }

func (e *ClaimedError) Error() string {
	return fmt.Sprintf("idempotency: the key %q is already claimed (%s)", e.Old.Key, e.Old.State)
}

type claimKey struct{}

// WithClaim returns ctx carrying c.
func WithClaim(ctx context.Context, c *Claim) context.Context {
	return context.WithValue(ctx, claimKey{}, c)
}

// ClaimFrom returns the claim ctx carries (nil: none; every method of a
// nil Claim does nothing).
func ClaimFrom(ctx context.Context) *Claim {
	c, _ := ctx.Value(claimKey{}).(*Claim)
	return c
}

// Take claims the key in tx, unless a committed transaction already took
// it. It fails with a *ClaimedError when another request holds or
// answered the key; the caller returns that error so tx rolls back.
// Call Committed with the transaction's result.
func (c *Claim) Take(ctx context.Context, tx Repo) error {
	if c == nil || c.held {
		return nil
	}
	old, err := tx.ClaimIdempotency(ctx, c.Record)
	if errors.Is(err, store.ErrConflict) && old != nil {
		c.Old = old
		return &ClaimedError{Old: old}
	}
	if err != nil {
		return err
	}
	c.pending = true
	return nil
}

// Committed records the result of the transaction that called Take: the
// claim is held once that transaction committed (err nil).
func (c *Claim) Committed(err error) {
	if c == nil {
		return
	}
	if err == nil && c.pending {
		c.held = true
	}
	c.pending = false
}

// Held reports whether a committed transaction took the claim.
func (c *Claim) Held() bool { return c != nil && c.held }

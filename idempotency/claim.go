package idempotency

import (
	"context"
	"crypto/subtle"
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

	// Render, set by the HTTP layer, renders the response a result of
	// the request makes (the value and error its handler would answer
	// with); ok false: that response is not stored for replay.
	Render func(result any, err error) (a Answer, ok bool)

	pending   bool // taken in the current transaction
	held      bool // taken in a transaction that committed
	answering bool // answered in the current transaction
	answered  bool // answered in a transaction that committed
}

// Answer is a response as the idempotency store keeps it.
type Answer struct {
	Status int
	Header map[string]string
	Body   []byte
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

// Adopt takes the claim in tx like Take, and also takes over an
// in-progress claim made for this very request (same request hash) by an
// earlier attempt that never stored its answer. Only a request whose
// effect is already recorded, and whose answer it now rebuilds from that
// record (Answer, in tx), may adopt: the earlier attempt's answer can
// only be that one.
func (c *Claim) Adopt(ctx context.Context, tx Repo) error {
	err := c.Take(ctx, tx)
	var ce *ClaimedError
	if errors.As(err, &ce) && ce.Old.State == StateInProgress &&
		subtle.ConstantTimeCompare(ce.Old.RequestHash, c.Record.RequestHash) == 1 {
		c.Old = nil
		c.pending = true
		return nil
	}
	return err
}

// Answer stores the response result and err make (Render) on the claim in
// tx, the transaction that records the effect it answers for, so a claim
// whose effect committed never stays without its answer. It does nothing
// when the claim was not taken or the response is not stored for replay.
func (c *Claim) Answer(ctx context.Context, tx Repo, result any, err error) error {
	if c == nil || c.Render == nil || !(c.held || c.pending) {
		return nil
	}
	a, ok := c.Render(result, err)
	if !ok {
		return nil
	}
	done := *c.Record
	done.State, done.Status, done.Header, done.Body = StateDone, a.Status, a.Header, a.Body
	if err := tx.AnswerIdempotency(ctx, &done); err != nil {
		return err
	}
	c.answering = true
	return nil
}

// Committed records the result of the transaction that called Take (or
// Answer): the claim is held, and answered, once that transaction
// committed (err nil).
func (c *Claim) Committed(err error) {
	if c == nil {
		return
	}
	if err == nil && c.pending {
		c.held = true
	}
	if err == nil && c.answering {
		c.answered = true
	}
	c.pending, c.answering = false, false
}

// Answered reports whether a committed transaction stored the answer.
func (c *Claim) Answered() bool { return c != nil && c.answered }

// Held reports whether a committed transaction took the claim.
func (c *Claim) Held() bool { return c != nil && c.held }

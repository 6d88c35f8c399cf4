// Package retention deletes data past its retention period, one data class
// at a time, in bounded batches. Every batch is deleted in one transaction
// with one audit entry saying what went (class, count, cut-off), so nothing
// is deleted without its entry and millions of rows never make millions of
// entries. Sweeps are safe on every node at once: the store hands each row
// to one sweep (PostgreSQL skips rows another sweep has locked; the memory
// store sweeps under its lock).
package retention

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/perfectpay/perfectpay/audit"
	"github.com/perfectpay/perfectpay/store"
)

// ClassDecisions is the policy's decision records with their stored inputs.
const ClassDecisions = "decisions"

// ClassSessions is people's sessions past their absolute limit: they can
// no longer sign anyone in, so they go as soon as they end.
const ClassSessions = "sessions"

// ClassCardTokens is vault tokens unused (no charge) since the cut-off and
// on no live mandate: their data key and ciphertext are erased, as
// DELETE /v1/tokens/{id} does; brand, last4 and fingerprint stay for the
// charges that name them.
const ClassCardTokens = "card_tokens"

// CardTokensFloor is the shortest card token retention: a card kept on
// file for an annual renewal is unused for a year at a time.
const CardTokensFloor = 400 * 24 * time.Hour

// DefaultCardTokens is the default retention of unused card tokens.
const DefaultCardTokens = 540 * 24 * time.Hour

// ClassCharges is settled charges: past retention their free text
// (description, metadata, purchase, failure message) is scrubbed; ids,
// amounts, currency, status, card summary, codes and times stay for the
// ledger, refunds and disputes. Refunds hold no free text (their reason
// is one of three codes, their failure a code), so nothing of them needs
// scrubbing.
const ClassCharges = "charges"

// ClassIdempotency is stored idempotent answers past their expiry (each
// record expires idempotency.retention after it was made): they may hold
// a response body naming a customer, so they go in audited batches like
// every other class.
const ClassIdempotency = "idempotency"

// ChargesFloor is the shortest charge retention: a charge's description
// and purchase are what a merchant answers a dispute with, and card
// networks allow some disputes up to 540 days after the transaction.
const ChargesFloor = 540 * 24 * time.Hour

// DefaultCharges is the default retention of charges' free text.
const DefaultCharges = 730 * 24 * time.Hour

// ClassLoginMarks is the marks of devices people signed in from: a mark
// forgotten makes the next sign-in from that device look new (a notice).
const ClassLoginMarks = "login_marks"

// LoginMarksFloor is the shortest login mark retention: under it, people
// who sign in monthly would be told of a new device every time.
const LoginMarksFloor = 90 * 24 * time.Hour

// DefaultLoginMarks is the default retention of login marks.
const DefaultLoginMarks = 400 * 24 * time.Hour

// ActionDelete is the audit action of one deletion batch.
const ActionDelete = "retention.deleted"

// DecisionsFloor is the shortest retention of decision records: a decision
// explains a charge for as long as the charge can be disputed (card
// networks allow up to 540 days from the transaction for some reasons), and
// velocity limits read the recent ones.
const DecisionsFloor = 540 * 24 * time.Hour

// DefaultDecisions is the default retention of decision records.
const DefaultDecisions = 730 * 24 * time.Hour

// DefaultBatch is how many rows one batch deletes.
const DefaultBatch = 500

// Repo is what a sweep needs of one transaction.
type Repo interface {
	audit.Writer
	// PruneDecisions deletes at most limit decision records (and their
	// stored inputs) created before before, skipping rows another
	// transaction holds, and returns how many it deleted.
	PruneDecisions(ctx context.Context, before time.Time, limit int) (int, error)
	// PruneSessions deletes at most limit people's sessions created before
	// before, skipping rows another transaction holds.
	PruneSessions(ctx context.Context, before time.Time, limit int) (int, error)
	// ShredUnusedTokens erases at most limit card tokens created before
	// before, not deleted, that no charge used since before and no mandate
	// pending approval, active or suspended names, stamping them deleted
	// at before's sweep time; it skips rows another transaction holds.
	ShredUnusedTokens(ctx context.Context, before, at time.Time, limit int) (int, error)
	// ScrubCharges empties the free text of at most limit settled charges
	// (succeeded, canceled or failed, no operation under way) last changed
	// before before that still have some, skipping rows another
	// transaction holds.
	ScrubCharges(ctx context.Context, before time.Time, limit int) (int, error)
	// PruneLoginMarks deletes at most limit login marks first seen before
	// before, skipping rows another transaction holds.
	PruneLoginMarks(ctx context.Context, before time.Time, limit int) (int, error)
	// PruneExpiredIdempotency deletes at most limit idempotency records
	// that expired before before, oldest expiry first, skipping rows
	// another transaction holds.
	PruneExpiredIdempotency(ctx context.Context, before time.Time, limit int) (int, error)
}

// Policy is the retention of each class; 0 keeps the class forever.
type Policy struct {
	Decisions time.Duration
	// Sessions is people's absolute session limit.
	Sessions time.Duration
	// CardTokens is how long a card token may go unused.
	CardTokens time.Duration
	// Charges is how long a settled charge keeps its free text.
	Charges time.Duration
	// LoginMarks is how long a login mark is kept.
	LoginMarks time.Duration
	// Idempotency sweeps idempotency records once they expire (their
	// expiry is set when they are stored); false leaves them.
	Idempotency bool
}

// Batch is one deletion batch, as its audit entry records it.
type Batch struct {
	Class  string    `json:"class"`
	Count  int       `json:"count"`
	Before time.Time `json:"cutoff"`
}

// Service sweeps expired data.
type Service struct {
	db     store.Runner[Repo]
	policy Policy
	log    *slog.Logger
	// Now is the clock (time.Now by default; tests set a fake one).
	Now func() time.Time
	// BatchSize bounds one deletion batch (DefaultBatch by default).
	BatchSize int
}

// New returns the retention service.
func New(db store.Runner[Repo], p Policy, log *slog.Logger) *Service {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Service{db: db, policy: p, log: log, Now: time.Now, BatchSize: DefaultBatch}
}

// Sweep deletes everything past its retention, batch by batch, and returns
// how many rows of each class it deleted.
func (s *Service) Sweep(ctx context.Context) (map[string]int, error) {
	out := map[string]int{}
	now := s.Now()
	idem := time.Duration(0)
	if s.policy.Idempotency {
		idem = time.Nanosecond // expired records: the cut-off is now
	}
	for _, c := range []struct {
		class string
		keep  time.Duration
		prune func(Repo, context.Context, time.Time, int) (int, error)
	}{
		{ClassIdempotency, idem, Repo.PruneExpiredIdempotency},
		{ClassDecisions, s.policy.Decisions, Repo.PruneDecisions},
		{ClassSessions, s.policy.Sessions, Repo.PruneSessions},
		{ClassCharges, s.policy.Charges, Repo.ScrubCharges},
		{ClassLoginMarks, s.policy.LoginMarks, Repo.PruneLoginMarks},
		{ClassCardTokens, s.policy.CardTokens, func(tx Repo, ctx context.Context, before time.Time, limit int) (int, error) {
			return tx.ShredUnusedTokens(ctx, before, now.UTC().Truncate(time.Microsecond), limit)
		}},
	} {
		if c.keep <= 0 {
			continue
		}
		n, err := s.sweep(ctx, c.class, now.Add(-c.keep), c.prune)
		out[c.class] = n
		if err != nil {
			return out, err
		}
	}
	return out, nil
}

func (s *Service) sweep(ctx context.Context, class string, before time.Time,
	prune func(Repo, context.Context, time.Time, int) (int, error)) (int, error) {
	limit := s.BatchSize
	if limit <= 0 {
		limit = DefaultBatch
	}
	before = before.UTC().Truncate(time.Microsecond)
	total := 0
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		var n int
		err := s.db.InTx(ctx, func(tx Repo) error {
			var err error
			if n, err = prune(tx, ctx, before, limit); err != nil || n == 0 {
				return err
			}
			return audit.Record(ctx, tx, ActionDelete, class, Batch{Class: class, Count: n, Before: before})
		})
		if err != nil {
			return total, fmt.Errorf("retention %s: %w", class, err)
		}
		total += n
		if n < limit {
			return total, nil
		}
	}
}

// Run sweeps every interval until ctx ends.
func (s *Service) Run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		n, err := s.Sweep(ctx)
		if err != nil && ctx.Err() == nil {
			s.log.Error("retention sweep failed", "err", err)
		}
		for class, c := range n {
			if c > 0 {
				s.log.Info("retention deleted", "class", class, "count", c)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

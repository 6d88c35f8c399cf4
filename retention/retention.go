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
}

// Policy is the retention of each class; 0 keeps the class forever.
type Policy struct {
	Decisions time.Duration
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
	if s.policy.Decisions > 0 {
		n, err := s.sweep(ctx, ClassDecisions, s.Now().Add(-s.policy.Decisions), Repo.PruneDecisions)
		out[ClassDecisions] = n
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

package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/perfectpay/perfectpay/store"
)

// Service seals, verifies and prunes the audit chain.
type Service struct {
	db        store.Runner[Repo]
	retention time.Duration
	log       *slog.Logger
}

// NewService returns the audit service. retention 0 keeps entries forever.
func NewService(db store.Runner[Repo], retention time.Duration, log *slog.Logger) *Service {
	return &Service{db: db, retention: retention, log: log}
}

// Seal links up to batch unsealed entries into the chain and returns how
// many it sealed. Concurrent sealers are safe: backends serialize SealAudit
// on the chain head and one of two racing sealers gets store.ErrConflict.
func (s *Service) Seal(ctx context.Context, batch int) (int, error) {
	n := 0
	err := s.db.InTx(ctx, func(tx Repo) error {
		head, err := tx.AuditHead(ctx)
		if err != nil {
			return err
		}
		entries, err := tx.UnsealedAudit(ctx, batch)
		if err != nil || len(entries) == 0 {
			return err
		}
		seals := make([]Seal, len(entries))
		prev, pos := head.Hash, head.ChainPos
		for i := range entries {
			pos++
			h := LinkHash(prev, entries[i].ContentHash, pos)
			seals[i] = Seal{Seq: entries[i].Seq, ChainPos: pos, PrevHash: prev, Hash: h}
			prev = h
		}
		n = len(seals)
		return tx.SealAudit(ctx, seals)
	})
	return n, err
}

// SealAll seals until nothing is left.
func (s *Service) SealAll(ctx context.Context) (int, error) {
	total := 0
	for {
		n, err := s.Seal(ctx, 1000)
		if errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrSerialization) {
			continue // another sealer moved the head; go again
		}
		total += n
		if err != nil || n == 0 {
			return total, err
		}
	}
}

// RunSealer seals every interval until ctx ends, and prunes once an hour.
func (s *Service) RunSealer(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	lastPrune := time.Time{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if _, err := s.SealAll(ctx); err != nil && ctx.Err() == nil {
			s.log.Error("audit seal failed", "err", err)
		}
		if s.retention > 0 && time.Since(lastPrune) > time.Hour {
			lastPrune = time.Now()
			if n, err := s.Prune(ctx, time.Now()); err != nil && ctx.Err() == nil {
				s.log.Error("audit prune failed", "err", err)
			} else if n > 0 {
				s.log.Info("audit entries pruned", "count", n)
			}
		}
	}
}

// VerifyResult is the outcome of a verification.
type VerifyResult struct {
	OK       bool   `json:"ok"`
	Checked  int64  `json:"checked"`
	Unsealed int    `json:"unsealed"`
	BadPos   int64  `json:"bad_chain_pos,omitempty"`
	BadID    string `json:"bad_entry_id,omitempty"`
	Problem  string `json:"problem,omitempty"`
}

// Verify walks the sealed chain from the anchor and recomputes every hash.
// It names the first entry that does not verify.
func (s *Service) Verify(ctx context.Context) (VerifyResult, error) {
	var res VerifyResult
	var anchor Anchor
	if err := s.db.InTx(ctx, func(tx Repo) error {
		var err error
		anchor, err = tx.AuditAnchor(ctx)
		return err
	}); err != nil {
		return res, err
	}
	prev, pos := anchor.Hash, anchor.ChainPos
	for {
		var page []Entry
		if err := s.db.InTx(ctx, func(tx Repo) error {
			var err error
			page, err = tx.AuditChain(ctx, pos, 2000)
			return err
		}); err != nil {
			return res, err
		}
		for i := range page {
			e := &page[i]
			fail := func(problem string) (VerifyResult, error) {
				res.BadPos, res.BadID, res.Problem = e.ChainPos, e.ID, problem
				return res, nil
			}
			switch {
			case e.ChainPos != pos+1:
				res.BadPos, res.Problem = pos+1, fmt.Sprintf("entry at chain position %d is missing (next present is %d, id %s)", pos+1, e.ChainPos, e.ID)
				res.BadID = e.ID
				return res, nil
			case !bytes.Equal(ContentHash(e), e.ContentHash):
				return fail("content does not match its hash (entry edited)")
			case !bytes.Equal(e.PrevHash, prev):
				return fail("prev_hash does not match the previous link")
			case !bytes.Equal(LinkHash(prev, e.ContentHash, e.ChainPos), e.Hash):
				return fail("link hash does not verify")
			}
			prev, pos = e.Hash, e.ChainPos
			res.Checked++
		}
		if len(page) == 0 {
			break
		}
	}
	// The head must be where the walk ended: a deleted tail shows up here.
	var head Anchor
	var unsealed []Entry
	if err := s.db.InTx(ctx, func(tx Repo) error {
		var err error
		if head, err = tx.AuditHead(ctx); err != nil {
			return err
		}
		unsealed, err = tx.UnsealedAudit(ctx, 1_000_000)
		return err
	}); err != nil {
		return res, err
	}
	res.Unsealed = len(unsealed)
	if head.ChainPos != pos {
		res.BadPos, res.Problem = pos+1, fmt.Sprintf("chain ends at %d but the head records %d (entries deleted)", pos, head.ChainPos)
		return res, nil
	}
	for i := range unsealed {
		if !bytes.Equal(ContentHash(&unsealed[i]), unsealed[i].ContentHash) {
			res.BadID, res.Problem = unsealed[i].ID, "unsealed entry does not match its content hash (entry edited)"
			return res, nil
		}
	}
	res.OK = true
	return res, nil
}

// Prune deletes sealed entries older than the retention window. The last
// deleted link becomes the anchor, so what remains still verifies from it.
func (s *Service) Prune(ctx context.Context, now time.Time) (int, error) {
	if s.retention <= 0 {
		return 0, nil
	}
	cutoff := now.Add(-s.retention)
	n := 0
	err := s.db.InTx(ctx, func(tx Repo) error {
		anchor, err := tx.AuditAnchor(ctx)
		if err != nil {
			return err
		}
		// Find the last contiguous sealed link older than the cutoff.
		last := anchor
		for {
			page, err := tx.AuditChain(ctx, last.ChainPos, 2000)
			if err != nil {
				return err
			}
			stop := false
			for i := range page {
				if !page[i].CreatedAt.Before(cutoff) {
					stop = true
					break
				}
				last = Anchor{ChainPos: page[i].ChainPos, Hash: page[i].Hash}
			}
			if stop || len(page) == 0 {
				break
			}
		}
		if last.ChainPos == anchor.ChainPos {
			return nil
		}
		n, err = tx.PruneAudit(ctx, last)
		return err
	})
	return n, err
}

// List returns entries matching f (newest last), for auditors.
func (s *Service) List(ctx context.Context, f Filter) ([]Entry, error) {
	var out []Entry
	err := s.db.InTx(ctx, func(tx Repo) error {
		var err error
		out, err = tx.ListAudit(ctx, f)
		return err
	})
	return out, err
}

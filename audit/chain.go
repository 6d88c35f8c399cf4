package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/perfectpay/perfectpay/store"
)

// DefaultCheckpointInterval is how often the sealer signs the chain head
// when the head moved.
const DefaultCheckpointInterval = time.Second

// RetentionFloor is the shortest audit retention: entries are kept at
// least a year (0 keeps them forever).
const RetentionFloor = 365 * 24 * time.Hour

// Service seals, checkpoints, verifies and prunes the audit chain.
type Service struct {
	db        store.Runner[Repo]
	retention time.Duration
	log       *slog.Logger
	now       func() time.Time

	mu              sync.Mutex
	signer          *signer
	checkpointEvery time.Duration
}

// NewService returns the audit service. retention 0 keeps entries forever.
// It signs nothing until UseKeys gives it the audit signing key.
func NewService(db store.Runner[Repo], retention time.Duration, log *slog.Logger) *Service {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Service{db: db, retention: retention, log: log, now: time.Now, checkpointEvery: DefaultCheckpointInterval}
}

// SetCheckpointInterval sets how often RunSealer signs the head (> 0).
func (s *Service) SetCheckpointInterval(d time.Duration) {
	if d > 0 {
		s.mu.Lock()
		s.checkpointEvery = d
		s.mu.Unlock()
	}
}

// SetClock replaces the service's clock (tests).
func (s *Service) SetClock(now func() time.Time) { s.now = now }

func isNotFound(err error) bool { return errors.Is(err, store.ErrNotFound) }

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
		entries, err := tx.PendingAudit(ctx, batch)
		if err != nil || len(entries) == 0 {
			return err
		}
		seals := make([]Seal, len(entries))
		prev, pos := head.Hash, head.ChainPos
		for i, e := range entries {
			pos++
			h := e.LinkHash(prev, pos)
			seals[i] = Seal{Seq: e.Seq, ChainPos: pos, PrevHash: prev, Hash: h}
			prev = h
		}
		n = len(seals)
		return tx.SealAudit(ctx, seals)
	})
	return n, err
}

// SealAll seals until nothing is left.
func (s *Service) SealAll(ctx context.Context) (int, error) {
	return s.sealFor(ctx, 0)
}

// sealFor seals until nothing is left or, when budget > 0, until budget
// has passed, so a busy log still gets its checkpoints on time.
func (s *Service) sealFor(ctx context.Context, budget time.Duration) (int, error) {
	total := 0
	start := time.Now()
	for {
		n, err := s.Seal(ctx, 1000)
		if errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrSerialization) {
			continue // another sealer moved the head; go again
		}
		total += n
		if err != nil || n == 0 || (budget > 0 && time.Since(start) >= budget) {
			return total, err
		}
	}
}

// RunSealer seals every interval until ctx ends, signs a checkpoint when
// the checkpoint interval has passed and the head moved, and prunes once an
// hour.
func (s *Service) RunSealer(ctx context.Context, interval time.Duration) {
	s.mu.Lock()
	every := s.checkpointEvery
	s.mu.Unlock()
	// Seal for at most half the checkpoint interval per round, so a busy
	// log still gets a checkpoint about every interval.
	t := time.NewTicker(min(interval, every/2))
	defer t.Stop()
	lastPrune, lastCheckpoint := time.Time{}, time.Time{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if _, err := s.sealFor(ctx, every/2); err != nil && ctx.Err() == nil {
			s.log.Error("audit seal failed", "err", err)
		}
		if s.currentSigner() != nil && time.Since(lastCheckpoint) >= every {
			lastCheckpoint = time.Now()
			if _, err := s.Checkpoint(ctx, false); err != nil && ctx.Err() == nil {
				s.log.Error("audit checkpoint failed", "err", err)
			}
		}
		if s.retention > 0 && time.Since(lastPrune) > time.Hour {
			lastPrune = time.Now()
			if n, err := s.Prune(ctx, s.now()); err != nil && ctx.Err() == nil {
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

	// TrustedKeys says where the keys that verified signatures came from:
	// "checkpoint file" (held outside the database) or "database".
	TrustedKeys string `json:"trusted_keys"`
	// CheckpointPos is the position of the checkpoint file's checkpoint.
	CheckpointPos int64 `json:"checkpoint_chain_pos,omitempty"`
	// Checkpoints and Retentions count the stored signed checkpoints and
	// retention records that verified.
	Checkpoints int `json:"checkpoints_verified"`
	Retentions  int `json:"retention_records_verified"`
}

// VerifyOptions are the inputs of a verification held outside the
// database.
type VerifyOptions struct {
	// Checkpoint is a compact checkpoint JWS kept outside the database
	// (from ExportCheckpoint); empty for none.
	Checkpoint string
	// Keys are the trusted audit public keys. Nil trusts the keys stored in
	// the database, which a database writer can replace: only a checkpoint
	// and keys held outside the database prove anything against one.
	Keys *KeySet
}

// Verify walks the chain with the keys stored in the database and no
// checkpoint held outside it. See VerifyWith.
func (s *Service) Verify(ctx context.Context) (VerifyResult, error) {
	return s.VerifyWith(ctx, VerifyOptions{})
}

type signedCheckpoint struct {
	stored *Checkpoint // nil for the checkpoint file
	claims CheckpointClaims
}

func (c signedCheckpoint) name() string {
	if c.stored == nil {
		return fmt.Sprintf("the checkpoint file's checkpoint (position %d, %s)", c.claims.ChainPos, c.claims.Time.Format(time.RFC3339))
	}
	return fmt.Sprintf("stored checkpoint %d (position %d, %s)", c.stored.ID, c.claims.ChainPos, c.claims.Time.Format(time.RFC3339))
}

// verifier is the state of one verification.
type verifier struct {
	s       *Service
	ctx     context.Context
	keys    *KeySet
	res     VerifyResult
	stripes map[int]Stripe
	expect  map[int]int64 // next number each stripe must show
	anchor  Anchor
	// checkpoints verified so far, not yet reached by the walk
	pending []signedCheckpoint
	// the highest counter any checkpoint signed, per stripe
	counters  map[string]counterClaim
	cpAfter   int64
	cpLast    int64 // the latest checkpoint when verification began
	cpDone    bool
	lastCPPos int64 // last position a signed checkpoint confirmed
}

type counterClaim struct {
	n    int64
	from signedCheckpoint
}

func (v *verifier) addCounters(c signedCheckpoint) {
	for k, n := range c.claims.Counters {
		if cur, ok := v.counters[k]; !ok || n > cur.n {
			v.counters[k] = counterClaim{n: n, from: c}
		}
	}
}

func (v *verifier) fail(pos int64, id, problem string, args ...any) {
	v.res.BadPos, v.res.BadID, v.res.Problem = pos, id, fmt.Sprintf(problem, args...)
}

// VerifyWith walks the chain from the anchor and recomputes every hash,
// checks the numbering of every stripe, every signed retention record and
// stored checkpoint, and (when given) that the chain still extends the
// checkpoint held outside the database. It names the first problem.
//
// It verifies the log as it stood when it began (head, counters, latest
// checkpoint), so nodes may keep appending, sealing and signing meanwhile;
// a prune that moves the anchor during the walk makes it start over.
func (s *Service) VerifyWith(ctx context.Context, opts VerifyOptions) (VerifyResult, error) {
	keys := opts.Keys
	trusted := "checkpoint file"
	if keys == nil {
		trusted = "database"
		ks, err := s.Keys(ctx)
		if err != nil {
			return VerifyResult{}, err
		}
		keys = ks
	}
	for attempt := 0; ; attempt++ {
		v := &verifier{s: s, ctx: ctx, keys: keys, expect: map[int]int64{}, stripes: map[int]Stripe{},
			counters: map[string]counterClaim{}}
		v.res.TrustedKeys = trusted
		res, err := v.run(opts.Checkpoint)
		if err != nil || res.OK || attempt == 2 {
			return res, err
		}
		var now Anchor
		if err := s.db.InTx(ctx, func(tx Repo) error {
			var err error
			now, err = tx.AuditAnchor(ctx)
			return err
		}); err != nil {
			return res, err
		}
		if now.ChainPos == v.anchor.ChainPos {
			return res, nil
		}
	}
}

func (v *verifier) run(checkpoint string) (VerifyResult, error) {
	ctx, s := v.ctx, v.s
	var ext *signedCheckpoint
	if checkpoint != "" {
		c, err := verifyCheckpoint(v.keys, checkpoint)
		if err != nil {
			v.fail(0, "", "checkpoint file: %v", err)
			return v.res, nil
		}
		ext = &signedCheckpoint{claims: c}
		v.res.CheckpointPos = c.ChainPos
		v.addCounters(*ext)
	}

	// The starting point, read in this order because each only grows:
	// the latest checkpoint signed a head and counters no later than the
	// head and counters read after it.
	var anchor, head Anchor
	var retentions []Retention
	var stripes []Stripe
	if err := s.db.InTx(ctx, func(tx Repo) error {
		var err error
		switch last, err := tx.LatestAuditCheckpoint(ctx); {
		case err == nil:
			v.cpLast = last.ID
		case !isNotFound(err):
			return err
		}
		if anchor, err = tx.AuditAnchor(ctx); err != nil {
			return err
		}
		if retentions, err = tx.AuditRetentions(ctx); err != nil {
			return err
		}
		if head, err = tx.AuditHead(ctx); err != nil {
			return err
		}
		stripes, err = tx.AuditStripes(ctx)
		return err
	}); err != nil {
		return v.res, err
	}
	v.anchor = anchor
	for _, st := range stripes {
		v.stripes[st.ID] = st
		v.expect[st.ID] = st.Floor + 1
	}
	if !v.checkRetention(anchor, retentions) {
		return v.res, nil
	}
	if ext != nil && ext.claims.ChainPos <= anchor.ChainPos {
		// Retention removed the checkpoint's position under a signed
		// record; at the anchor itself the hash is still known.
		if ext.claims.ChainPos == anchor.ChainPos && !bytes.Equal(ext.claims.Hash, anchor.Hash) {
			v.fail(anchor.ChainPos, "", "rewritten: the anchor at position %d does not have the hash signed in %s", anchor.ChainPos, ext.name())
			return v.res, nil
		}
		ext = nil
	}
	if ext != nil {
		v.pending = append(v.pending, *ext)
	}
	v.lastCPPos = anchor.ChainPos

	prev, pos := anchor.Hash, anchor.ChainPos
walk:
	for pos < head.ChainPos {
		var page []Entry
		if err := s.db.InTx(ctx, func(tx Repo) error {
			var err error
			page, err = tx.AuditChain(ctx, pos, 2000)
			return err
		}); err != nil {
			return v.res, err
		}
		if len(page) == 0 {
			break
		}
		for i := range page {
			e := &page[i]
			if pos == head.ChainPos {
				break walk // sealed after verification began
			}
			switch {
			case e.ChainPos != pos+1:
				v.fail(pos+1, e.ID, "entry at chain position %d is missing (next present is %d, id %s)", pos+1, e.ChainPos, e.ID)
				return v.res, nil
			case !contentOK(e):
				v.fail(e.ChainPos, e.ID, "content does not match its hash (entry edited)")
				return v.res, nil
			case !bytes.Equal(e.PrevHash, prev):
				v.fail(e.ChainPos, e.ID, "prev_hash does not match the previous link")
				return v.res, nil
			case !bytes.Equal(EntryLinkHash(prev, e, e.ChainPos), e.Hash):
				v.fail(e.ChainPos, e.ID, "link hash does not verify")
				return v.res, nil
			}
			if !v.checkNumber(e, "sealed at position "+strconv.FormatInt(e.ChainPos, 10)) {
				return v.res, nil
			}
			ok, err := v.checkpointsAt(e.ChainPos, e.Hash, e.ID)
			if err != nil || !ok {
				return v.res, err
			}
			prev, pos = e.Hash, e.ChainPos
			v.res.Checked++
		}
	}
	// Checkpoints beyond the end of the chain: the tail was cut off.
	if err := v.loadCheckpoints(1 << 62); err != nil || v.res.Problem != "" {
		return v.res, err
	}
	for _, c := range v.pending {
		if c.claims.ChainPos > pos {
			v.fail(pos+1, "", "truncated: the chain ends at position %d, but %s signed position %d (entries deleted)", pos, c.name(), c.claims.ChainPos)
			return v.res, nil
		}
	}
	// The head must be where the walk ended: a deleted tail shows up here.
	if head.ChainPos != pos {
		v.fail(pos+1, "", "chain ends at %d but the head records %d (entries deleted)", pos, head.ChainPos)
		return v.res, nil
	}
	var unsealed []Entry
	if err := s.db.InTx(ctx, func(tx Repo) error {
		var err error
		unsealed, err = tx.UnsealedAudit(ctx, 1_000_000)
		return err
	}); err != nil {
		return v.res, err
	}
	v.res.Unsealed = len(unsealed)
	for i := range unsealed {
		e := &unsealed[i]
		if !contentOK(e) {
			v.fail(0, e.ID, "unsealed entry does not match its content hash (entry edited)")
			return v.res, nil
		}
	}
	// Every entry counted when verification began and not in the walked
	// chain is unsealed or was sealed since: it must still be there.
	if ok, err := v.checkRest(); err != nil || !ok {
		return v.res, err
	}
	if !v.checkCounters() {
		return v.res, nil
	}
	v.res.OK = true
	return v.res, nil
}

// checkRest looks up, by number, the entries of every stripe after those
// the walk saw, up to the counter read when verification began.
func (v *verifier) checkRest() (bool, error) {
	for _, id := range slices.Sorted(maps.Keys(v.stripes)) {
		for v.expect[id] <= v.stripes[id].Next {
			var page []Entry
			from, to := v.expect[id], min(v.stripes[id].Next, v.expect[id]+4999)
			if err := v.s.db.InTx(v.ctx, func(tx Repo) error {
				var err error
				page, err = tx.AuditNumbered(v.ctx, id, from, to)
				return err
			}); err != nil {
				return false, err
			}
			if len(page) == 0 {
				break
			}
			for i := range page {
				e := &page[i]
				where := "not yet sealed"
				if e.ChainPos != 0 {
					where = "sealed at position " + strconv.FormatInt(e.ChainPos, 10) + " since verification began"
				}
				if !contentOK(e) {
					v.fail(e.ChainPos, e.ID, "entry %s (%s) does not match its content hash (entry edited)", e.ID, where)
					return false, nil
				}
				if !v.checkNumber(e, where) {
					return false, nil
				}
			}
		}
	}
	return true, nil
}

// checkRetention verifies the signed retention records and that they
// account for the anchor and the stripes' floors.
func (v *verifier) checkRetention(anchor Anchor, retentions []Retention) bool {
	var to int64
	var last []byte
	floors := map[int]int64{}
	for i := range retentions {
		r := &retentions[i]
		c, err := verifyRetention(v.keys, r.JWS)
		if err != nil {
			v.fail(r.ToPos, "", "retention record %d (positions %d-%d): %v", r.ID, r.FromPos, r.ToPos, err)
			return false
		}
		if c.FromPos != to+1 {
			v.fail(c.FromPos, "", "retention record %d removed positions %d-%d, but the previous record ended at %d", r.ID, c.FromPos, c.ToPos, to)
			return false
		}
		to, last = c.ToPos, c.LastHash
		for k, f := range c.Floors {
			id, err := strconv.Atoi(k)
			if err != nil {
				v.fail(c.ToPos, "", "retention record %d names stripe %q", r.ID, k)
				return false
			}
			floors[id] = f
		}
		v.res.Retentions++
	}
	if anchor.ChainPos != to || !bytes.Equal(anchor.Hash, last) {
		if to == 0 {
			v.fail(anchor.ChainPos, "", "prefix deleted: the chain starts after position %d, but no signed retention record removed those entries (anchor moved)", anchor.ChainPos)
		} else {
			v.fail(anchor.ChainPos, "", "prefix deleted: the chain starts after position %d, but signed retention records removed entries up to position %d only (anchor moved)", anchor.ChainPos, to)
		}
		return false
	}
	for _, id := range slices.Sorted(maps.Keys(v.stripes)) {
		if st := v.stripes[id]; st.Floor != floors[id] {
			v.fail(anchor.ChainPos, "", "prefix deleted: stripe %d starts after entry %d, but signed retention records removed its entries up to %d", id, st.Floor, floors[id])
			return false
		}
	}
	return true
}

// checkNumber checks that e carries the next number of its stripe.
func (v *verifier) checkNumber(e *Entry, where string) bool {
	if e.StripeSeq == 0 {
		return true // written before numbering
	}
	want, ok := v.expect[e.Stripe]
	switch {
	case !ok:
		v.fail(e.ChainPos, e.ID, "entry %s (%s) is numbered in stripe %d, which does not exist", e.ID, where, e.Stripe)
		return false
	case e.StripeSeq > want:
		v.fail(e.ChainPos, e.ID, "fresh entry deleted: entry %d of stripe %d is missing before entry %s (%s), deleted before it was sealed", want, e.Stripe, e.ID, where)
		return false
	case e.StripeSeq < want:
		v.fail(e.ChainPos, e.ID, "entry %s (%s) repeats number %d of stripe %d", e.ID, where, e.StripeSeq, e.Stripe)
		return false
	}
	v.expect[e.Stripe] = want + 1
	return true
}

// checkCounters checks that every stripe's entries end at its counter,
// and that no counter went back below what a checkpoint signed.
func (v *verifier) checkCounters() bool {
	for _, id := range slices.Sorted(maps.Keys(v.stripes)) {
		if got := v.expect[id] - 1; got != v.stripes[id].Next {
			v.fail(0, "", "fresh entry deleted: stripe %d counts %d entries, but the last one present is %d (deleted before it was sealed)", id, v.stripes[id].Next, got)
			return false
		}
	}
	for _, k := range slices.Sorted(maps.Keys(v.counters)) {
		c := v.counters[k]
		id, err := strconv.Atoi(k)
		st, ok := v.stripes[id]
		switch {
		case err != nil || !ok:
			v.fail(0, "", "stripe %s, signed in %s, no longer exists (entries deleted)", k, c.from.name())
			return false
		case st.Next < c.n:
			v.fail(0, "", "fresh entry deleted: stripe %d counts %d entries, fewer than the %d signed in %s (entries deleted, counter rolled back)", id, st.Next, c.n, c.from.name())
			return false
		}
	}
	return true
}

// loadCheckpoints verifies and queues stored checkpoints until one beyond
// upTo is queued (or none is left).
func (v *verifier) loadCheckpoints(upTo int64) error {
	for !v.cpDone && v.res.Problem == "" {
		if n := len(v.pending); n > 0 && v.pending[n-1].claims.ChainPos > upTo {
			return nil
		}
		var page []Checkpoint
		if err := v.s.db.InTx(v.ctx, func(tx Repo) error {
			var err error
			page, err = tx.AuditCheckpoints(v.ctx, v.cpAfter, 1000)
			return err
		}); err != nil {
			return err
		}
		if len(page) == 0 || v.cpAfter >= v.cpLast {
			v.cpDone = true
			break
		}
		for i := range page {
			cp := page[i]
			if cp.ID > v.cpLast {
				v.cpDone = true // signed after verification began
				break
			}
			v.cpAfter = cp.ID
			c, err := verifyCheckpoint(v.keys, cp.JWS)
			if err != nil {
				v.fail(cp.ChainPos, "", "stored checkpoint %d (position %d): %v", cp.ID, cp.ChainPos, err)
				return nil
			}
			sc := signedCheckpoint{stored: &cp, claims: c}
			v.addCounters(sc)
			v.res.Checkpoints++
			switch {
			case c.ChainPos > v.anchor.ChainPos:
				v.insertPending(sc)
			case c.ChainPos == v.anchor.ChainPos && !bytes.Equal(c.Hash, v.anchor.Hash):
				v.fail(c.ChainPos, "", "rewritten: the anchor at position %d does not have the hash signed in %s", c.ChainPos, sc.name())
				return nil
			}
		}
	}
	return nil
}

func (v *verifier) insertPending(c signedCheckpoint) {
	i := sort.Search(len(v.pending), func(i int) bool { return v.pending[i].claims.ChainPos > c.claims.ChainPos })
	v.pending = append(v.pending, signedCheckpoint{})
	copy(v.pending[i+1:], v.pending[i:])
	v.pending[i] = c
}

// checkpointsAt compares the link at pos with every checkpoint that
// signed pos.
func (v *verifier) checkpointsAt(pos int64, hash []byte, id string) (bool, error) {
	if err := v.loadCheckpoints(pos); err != nil || v.res.Problem != "" {
		return false, err
	}
	for len(v.pending) > 0 && v.pending[0].claims.ChainPos <= pos {
		c := v.pending[0]
		v.pending = v.pending[1:]
		if !bytes.Equal(c.claims.Hash, hash) {
			v.fail(pos, id, "rewritten: the link at position %d no longer has the hash signed in %s: entries after position %d up to %d were rewritten and relinked",
				pos, c.name(), v.lastCPPos, pos)
			return false, nil
		}
		v.lastCPPos = pos
	}
	return true, nil
}

// Prune deletes sealed entries older than the retention window, after
// checking their links, and signs a retention record naming what it
// removed. The last deleted link becomes the anchor, so what remains still
// verifies from it. It needs the audit signing key.
func (s *Service) Prune(ctx context.Context, now time.Time) (int, error) {
	if s.retention <= 0 {
		return 0, nil
	}
	if s.currentSigner() == nil {
		return 0, ErrNoKey
	}
	cutoff := now.Add(-s.retention)
	n := 0
	err := s.db.InTx(ctx, func(tx Repo) error {
		if err := tx.LockAuditState(ctx); err != nil {
			return err
		}
		anchor, err := tx.AuditAnchor(ctx)
		if err != nil {
			return err
		}
		stripes, err := tx.AuditStripes(ctx)
		if err != nil {
			return err
		}
		floors := map[int]int64{}
		for _, st := range stripes {
			floors[st.ID] = st.Floor
		}
		// Find the last contiguous sealed link older than the cutoff,
		// checking every link on the way: retention never signs a
		// rewritten history.
		last := anchor
		count := 0
		for {
			page, err := tx.AuditChain(ctx, last.ChainPos, 2000)
			if err != nil {
				return err
			}
			stop := false
			for i := range page {
				e := &page[i]
				if !e.CreatedAt.Before(cutoff) {
					stop = true
					break
				}
				if e.ChainPos != last.ChainPos+1 || !contentOK(e) ||
					!bytes.Equal(EntryLinkHash(last.Hash, e, e.ChainPos), e.Hash) {
					return fmt.Errorf("audit: retention refused: the chain does not verify at position %d", last.ChainPos+1)
				}
				if e.StripeSeq > 0 {
					floors[e.Stripe] = max(floors[e.Stripe], e.StripeSeq)
				}
				last = Anchor{ChainPos: e.ChainPos, Hash: e.Hash}
				count++
			}
			if stop || len(page) == 0 {
				break
			}
		}
		if last.ChainPos == anchor.ChainPos {
			return nil
		}
		claims := RetentionClaims{FromPos: anchor.ChainPos + 1, ToPos: last.ChainPos, LastHash: last.Hash, Removed: count,
			Floors: map[string]int64{}, Time: s.now().UTC().Truncate(time.Microsecond)}
		for id, f := range floors {
			if f > 0 {
				claims.Floors[strconv.Itoa(id)] = f
			}
		}
		jws, kid, err := s.signRetention(claims)
		if err != nil {
			return err
		}
		r := &Retention{FromPos: claims.FromPos, ToPos: claims.ToPos, LastHash: claims.LastHash, KID: kid, JWS: jws, CreatedAt: claims.Time}
		n, err = tx.PruneAudit(ctx, last, floors, r)
		if err != nil {
			return err
		}
		return Record(ctx, tx, "audit.pruned", "", map[string]any{"from_pos": claims.FromPos, "to_pos": claims.ToPos, "removed": n})
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

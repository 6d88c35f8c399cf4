package memory

import (
	"cmp"
	"context"
	"slices"
	"sort"
	"time"

	"github.com/perfectpay/perfectpay/audit"
	"github.com/perfectpay/perfectpay/store"
)

var _ audit.Repo = (*Tx)(nil)

// memStripe is the memory store's one numbering stripe: its transactions
// run one at a time, so appends never contend for it.
const memStripe = 1

// auditData is the audit log's state besides the entries.
type auditData struct {
	stripeNext   int64
	stripeFloor  int64
	keys         []audit.Key
	checkpoints  []audit.Checkpoint
	checkpointID int64
	retentions   []audit.Retention
	retentionID  int64
	// unsealed are the seqs of entries appended and not yet sealed, in
	// order: the sealer's work list, so sealing costs what is new, not the
	// whole log.
	unsealed []int64
	// order holds every entry's seq, ascending, and chain the sealed
	// entries' seqs by chain position: a page of the log or of the chain
	// reads what it returns, not the whole log, while it holds the store.
	// Either may hold the seq of an entry deleted since; readers skip it.
	order, chain []int64
	// personal lists the entries an erasure may select, by person
	// (audit_personal.go).
	personal personalIndex
}

func (tx *Tx) AppendAudit(_ context.Context, e *audit.Entry) error {
	setVar(tx, &tx.d.auditSeq, tx.d.auditSeq+1)
	setVar(tx, &tx.d.auditLog.stripeNext, tx.d.auditLog.stripeNext+1)
	e.Seq = tx.d.auditSeq
	e.Stripe, e.StripeSeq = memStripe, tx.d.auditLog.stripeNext
	put(tx, tx.d.auditEntries, e.Seq, packAudit(e))
	appendUndo(tx, &tx.d.auditLog.unsealed, e.Seq)
	appendUndo(tx, &tx.d.auditLog.order, e.Seq)
	tx.notePersonal(e)
	return nil
}

// auditAfter returns the entries with a seq above after that keep
// selects, in seq order, stopping at limit (none when limit <= 0). keep
// sees an entry without its byte fields; the entries returned have them.
func (tx *Tx) auditAfter(after int64, limit int, keep func(*audit.Entry) bool) []audit.Entry {
	order := tx.d.auditLog.order
	i, _ := slices.BinarySearch(order, after+1)
	var out []audit.Entry
	for _, seq := range order[i:] {
		r, ok := tx.d.auditEntries[seq]
		if !ok {
			continue
		}
		if e := r.entry(seq, false); keep(&e) {
			out = append(out, r.entry(seq, true))
			if len(out) == limit {
				break
			}
		}
	}
	return out
}

func (tx *Tx) ListAudit(_ context.Context, f audit.Filter) ([]audit.Entry, error) {
	return tx.auditAfter(f.AfterSeq, f.Limit, func(e *audit.Entry) bool {
		return (f.TenantID == "" || e.TenantID == f.TenantID) &&
			(f.Action == "" || e.Action == f.Action) &&
			(f.Target == "" || e.Target == f.Target) &&
			(f.Since.IsZero() || !e.CreatedAt.Before(f.Since)) &&
			(f.Until.IsZero() || e.CreatedAt.Before(f.Until))
	}), nil
}

func (tx *Tx) UnsealedAudit(_ context.Context, limit int) ([]audit.Entry, error) {
	return unsealed(tx, limit, func(r auditRec, seq int64) audit.Entry { return r.entry(seq, true) }), nil
}

func (tx *Tx) PendingAudit(_ context.Context, limit int) ([]audit.Pending, error) {
	return unsealed(tx, limit, auditRec.pending), nil
}

// unsealed reads up to limit entries of the sealer's work list with read.
func unsealed[T any](tx *Tx, limit int, read func(auditRec, int64) T) []T {
	var out []T
	for _, seq := range tx.d.auditLog.unsealed {
		if len(out) == limit {
			break
		}
		// An entry deleted behind the chain's back (TamperAuditTables) or sealed
		// already is no longer pending.
		if r, ok := tx.d.auditEntries[seq]; ok && r.chainPos() == 0 {
			out = append(out, read(r, seq))
		}
	}
	return out
}

// dropSealed takes the sealed entries off the front of the work list.
func (tx *Tx) dropSealed() {
	q := tx.d.auditLog.unsealed
	n := 0
	for n < len(q) {
		if r, ok := tx.d.auditEntries[q[n]]; ok && r.chainPos() == 0 {
			break
		}
		n++
	}
	if n > 0 {
		// A copy, so the sealed prefix's memory goes and a rollback keeps
		// the old list intact.
		setVar(tx, &tx.d.auditLog.unsealed, slices.Clone(q[n:]))
	}
}

func (tx *Tx) AuditHead(context.Context) (audit.Anchor, error) {
	if tx.d.auditHead.ChainPos == 0 {
		return tx.d.auditAnchor, nil
	}
	return tx.d.auditHead, nil
}

func (tx *Tx) SealAudit(_ context.Context, seals []audit.Seal) error {
	for _, s := range seals {
		r, ok := tx.d.auditEntries[s.Seq]
		if !ok {
			return store.ErrNotFound
		}
		if r.chainPos() != 0 {
			return store.ErrConflict
		}
		e := r.entry(s.Seq, true)
		e.ChainPos, e.PrevHash, e.Hash = s.ChainPos, s.PrevHash, s.Hash
		put(tx, tx.d.auditEntries, s.Seq, packAudit(&e))
		setVar(tx, &tx.d.auditHead, audit.Anchor{ChainPos: s.ChainPos, Hash: s.Hash})
		appendUndo(tx, &tx.d.auditLog.chain, s.Seq)
	}
	tx.dropSealed()
	return nil
}

func (tx *Tx) AuditChain(_ context.Context, after int64, limit int) ([]audit.Entry, error) {
	chain := tx.d.auditLog.chain
	var out []audit.Entry
	for _, seq := range chain[tx.chainAfter(after):] {
		if len(out) >= limit {
			break
		}
		if r, ok := tx.d.auditEntries[seq]; ok {
			out = append(out, r.entry(seq, true))
		}
	}
	return out, nil
}

// chainAfter is the index in the chain list of the first entry sealed at
// a position above pos. The list holds existing entries in chain order
// (pruning cuts its front, tampering rebuilds it), so the search holds.
func (tx *Tx) chainAfter(pos int64) int {
	chain := tx.d.auditLog.chain
	return sort.Search(len(chain), func(i int) bool {
		r, ok := tx.d.auditEntries[chain[i]]
		return !ok || r.chainPos() > pos
	})
}

func (tx *Tx) AuditAnchor(context.Context) (audit.Anchor, error) {
	return tx.d.auditAnchor, nil
}

func (tx *Tx) PruneAudit(_ context.Context, anchor audit.Anchor, floors map[int]int64, r *audit.Retention) (int, error) {
	l := &tx.d.auditLog
	k := tx.chainAfter(anchor.ChainPos)
	n := 0
	people := map[personKey]bool{}
	for _, seq := range l.chain[:k] {
		if r, ok := tx.d.auditEntries[seq]; ok {
			if r.mayBePersonal() {
				e := r.entry(seq, true)
				for _, p := range listedUnder(&e) {
					people[p] = true
				}
			}
			del(tx, tx.d.auditEntries, seq)
			n++
		}
	}
	tx.unlistPersonal(people)
	setVar(tx, &l.chain, l.chain[k:])
	// The entries pruned are the oldest: drop them from the front of the
	// seq order too (an entry deleted further in is skipped by readers).
	i := 0
	for i < len(l.order) {
		if _, ok := tx.d.auditEntries[l.order[i]]; ok {
			break
		}
		i++
	}
	setVar(tx, &l.order, l.order[i:])
	setVar(tx, &tx.d.auditAnchor, anchor)
	kept := []audit.Checkpoint{}
	for _, c := range l.checkpoints {
		if c.ChainPos >= anchor.ChainPos {
			kept = append(kept, c)
		}
	}
	setVar(tx, &l.checkpoints, kept)
	setVar(tx, &l.stripeFloor, floors[memStripe])
	setVar(tx, &l.retentionID, l.retentionID+1)
	r.ID = l.retentionID
	c := *r
	c.LastHash = slices.Clone(r.LastHash)
	appendUndo(tx, &l.retentions, c)
	return n, nil
}

func (tx *Tx) AuditNumbered(_ context.Context, stripe int, from, to int64) ([]audit.Entry, error) {
	out := tx.auditAfter(0, 0, func(e *audit.Entry) bool {
		return e.Stripe == stripe && e.StripeSeq >= from && e.StripeSeq <= to
	})
	slices.SortFunc(out, func(a, b audit.Entry) int { return int(a.StripeSeq - b.StripeSeq) })
	return out, nil
}

func (tx *Tx) AuditStripes(context.Context) ([]audit.Stripe, error) {
	return []audit.Stripe{{ID: memStripe, Next: tx.d.auditLog.stripeNext, Floor: tx.d.auditLog.stripeFloor}}, nil
}

// LockAuditState is a no-op: memory transactions run one at a time.
func (tx *Tx) LockAuditState(context.Context) error { return nil }

func (tx *Tx) AuditKeys(context.Context) ([]audit.Key, error) {
	out := slices.Clone(tx.d.auditLog.keys)
	slices.Reverse(out) // newest first
	return out, nil
}

func (tx *Tx) CreateAuditKey(_ context.Context, k *audit.Key) error {
	for _, o := range tx.d.auditLog.keys {
		if o.KID == k.KID {
			return store.ErrConflict
		}
	}
	c := *k
	c.PublicJWK, c.PrivateEnc = slices.Clone(k.PublicJWK), slices.Clone(k.PrivateEnc)
	appendUndo(tx, &tx.d.auditLog.keys, c)
	return nil
}

func (tx *Tx) RetireAuditKey(_ context.Context, kid string, at time.Time) error {
	for i, o := range tx.d.auditLog.keys {
		if o.KID == kid && o.RetiredAt == nil {
			keys := slices.Clone(tx.d.auditLog.keys)
			keys[i].RetiredAt = &at
			setVar(tx, &tx.d.auditLog.keys, keys)
			return nil
		}
	}
	return store.ErrNotFound
}

func (tx *Tx) AddAuditCheckpoint(_ context.Context, c *audit.Checkpoint) error {
	l := &tx.d.auditLog
	setVar(tx, &l.checkpointID, l.checkpointID+1)
	c.ID = l.checkpointID
	cp := *c
	cp.Hash = slices.Clone(c.Hash)
	appendUndo(tx, &l.checkpoints, cp)
	return nil
}

func (tx *Tx) AuditCheckpoints(_ context.Context, after int64, limit int) ([]audit.Checkpoint, error) {
	var out []audit.Checkpoint
	for _, c := range tx.d.auditLog.checkpoints {
		if c.ID > after && len(out) < limit {
			out = append(out, c)
		}
	}
	return out, nil
}

func (tx *Tx) LatestAuditCheckpoint(context.Context) (audit.Checkpoint, error) {
	cps := tx.d.auditLog.checkpoints
	if len(cps) == 0 {
		return audit.Checkpoint{}, store.ErrNotFound
	}
	return cps[len(cps)-1], nil
}

func (tx *Tx) AuditRetentions(context.Context) ([]audit.Retention, error) {
	return slices.Clone(tx.d.auditLog.retentions), nil
}

// reindexAudit rebuilds the sealer's work list, the seq order and the
// chain order after a test edited the entries behind the store's back.
func (s *Store) reindexAudit() {
	var q, order, chain []int64
	for seq, r := range s.d.auditEntries {
		order = append(order, seq)
		if r.chainPos() == 0 {
			q = append(q, seq)
		} else {
			chain = append(chain, seq)
		}
	}
	slices.Sort(q)
	slices.Sort(order)
	slices.SortFunc(chain, func(a, b int64) int {
		return cmp.Compare(s.d.auditEntries[a].chainPos(), s.d.auditEntries[b].chainPos())
	})
	l := &s.d.auditLog
	l.unsealed, l.order, l.chain = q, order, chain
	s.reindexPersonal()
}

// AuditTables is the memory store's audit log laid bare, for tests that
// do to it what a database writer could do to PostgreSQL's tables.
type AuditTables struct {
	Entries      map[int64]audit.Entry // by seq
	Head, Anchor *audit.Anchor
	// StripeNext and StripeFloor are stripe 1's counter and floor.
	StripeNext, StripeFloor *int64
	Checkpoints             *[]audit.Checkpoint
	Retentions              *[]audit.Retention
}

// TamperAuditTables runs fn on the audit tables behind the chain's back:
// the entries unpacked into a map, whatever fn leaves in it stored again.
func (s *Store) TamperAuditTables(fn func(t AuditTables)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	defer s.reindexAudit()
	entries := make(map[int64]audit.Entry, len(s.d.auditEntries))
	for seq, r := range s.d.auditEntries {
		entries[seq] = r.entry(seq, true)
	}
	l := &s.d.auditLog
	fn(AuditTables{Entries: entries, Head: &s.d.auditHead, Anchor: &s.d.auditAnchor,
		StripeNext: &l.stripeNext, StripeFloor: &l.stripeFloor, Checkpoints: &l.checkpoints, Retentions: &l.retentions})
	clear(s.d.auditEntries)
	for seq, e := range entries {
		s.d.auditEntries[seq] = packAudit(&e)
	}
}

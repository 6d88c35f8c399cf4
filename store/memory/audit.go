package memory

import (
	"context"
	"slices"
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
}

func (tx *Tx) AppendAudit(_ context.Context, e *audit.Entry) error {
	setVar(tx, &tx.d.auditSeq, tx.d.auditSeq+1)
	setVar(tx, &tx.d.auditLog.stripeNext, tx.d.auditLog.stripeNext+1)
	e.Seq = tx.d.auditSeq
	e.Stripe, e.StripeSeq = memStripe, tx.d.auditLog.stripeNext
	put(tx, tx.d.auditEntries, e.Seq, packAudit(e))
	appendUndo(tx, &tx.d.auditLog.unsealed, e.Seq)
	return nil
}

// sortedAudit returns the entries keep selects, in seq order. keep sees an
// entry without its byte fields; the entries returned have them.
func (tx *Tx) sortedAudit(keep func(*audit.Entry) bool) []audit.Entry {
	var out []audit.Entry
	for seq, r := range tx.d.auditEntries {
		if e := r.entry(seq, false); keep(&e) {
			out = append(out, r.entry(seq, true))
		}
	}
	slices.SortFunc(out, func(a, b audit.Entry) int { return int(a.Seq - b.Seq) })
	return out
}

func (tx *Tx) ListAudit(_ context.Context, f audit.Filter) ([]audit.Entry, error) {
	out := tx.sortedAudit(func(e *audit.Entry) bool {
		return (f.TenantID == "" || e.TenantID == f.TenantID) &&
			(f.Action == "" || e.Action == f.Action) &&
			(f.Target == "" || e.Target == f.Target) &&
			(f.Since.IsZero() || !e.CreatedAt.Before(f.Since)) &&
			(f.Until.IsZero() || e.CreatedAt.Before(f.Until)) &&
			e.Seq > f.AfterSeq
	})
	if f.Limit > 0 && len(out) > f.Limit {
		out = out[:f.Limit]
	}
	return out, nil
}

func (tx *Tx) UnsealedAudit(_ context.Context, limit int) ([]audit.Entry, error) {
	var out []audit.Entry
	for _, seq := range tx.d.auditLog.unsealed {
		if len(out) == limit {
			break
		}
		// An entry deleted behind the chain's back (TamperAuditTables) or sealed
		// already is no longer pending.
		if r, ok := tx.d.auditEntries[seq]; ok && r.chainPos() == 0 {
			out = append(out, r.entry(seq, true))
		}
	}
	return out, nil
}

func (tx *Tx) PendingAudit(_ context.Context, limit int) ([]audit.Pending, error) {
	var out []audit.Pending
	for _, seq := range tx.d.auditLog.unsealed {
		if len(out) == limit {
			break
		}
		if r, ok := tx.d.auditEntries[seq]; ok && r.chainPos() == 0 {
			out = append(out, r.pending(seq))
		}
	}
	return out, nil
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
	}
	tx.dropSealed()
	return nil
}

func (tx *Tx) AuditChain(_ context.Context, after int64, limit int) ([]audit.Entry, error) {
	out := tx.sortedAudit(func(e *audit.Entry) bool { return e.ChainPos > after })
	slices.SortFunc(out, func(a, b audit.Entry) int { return int(a.ChainPos - b.ChainPos) })
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

func (tx *Tx) AuditAnchor(context.Context) (audit.Anchor, error) {
	return tx.d.auditAnchor, nil
}

func (tx *Tx) PruneAudit(_ context.Context, anchor audit.Anchor, floors map[int]int64, r *audit.Retention) (int, error) {
	n := 0
	for seq, r := range tx.d.auditEntries {
		if pos := r.chainPos(); pos != 0 && pos <= anchor.ChainPos {
			del(tx, tx.d.auditEntries, seq)
			n++
		}
	}
	setVar(tx, &tx.d.auditAnchor, anchor)
	l := &tx.d.auditLog
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
	out := tx.sortedAudit(func(e *audit.Entry) bool {
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

// reindexUnsealed rebuilds the sealer's work list after a test edited the
// entries behind the store's back.
func (s *Store) reindexUnsealed() {
	var q []int64
	for seq, r := range s.d.auditEntries {
		if r.chainPos() == 0 {
			q = append(q, seq)
		}
	}
	slices.Sort(q)
	s.d.auditLog.unsealed = q
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
	defer s.reindexUnsealed()
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

package memory

import (
	"context"
	"slices"

	"github.com/perfectpay/perfectpay/audit"
	"github.com/perfectpay/perfectpay/store"
)

var _ audit.Repo = (*Tx)(nil)

func (tx *Tx) AppendAudit(_ context.Context, e *audit.Entry) error {
	setVar(tx, &tx.d.auditSeq, tx.d.auditSeq+1)
	e.Seq = tx.d.auditSeq
	c := *e
	c.Data = slices.Clone(e.Data)
	put(tx, tx.d.auditEntries, c.Seq, c)
	return nil
}

func (tx *Tx) sortedAudit(keep func(*audit.Entry) bool) []audit.Entry {
	var out []audit.Entry
	for _, e := range tx.d.auditEntries {
		if keep(&e) {
			out = append(out, e)
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
	out := tx.sortedAudit(func(e *audit.Entry) bool { return e.ChainPos == 0 })
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

func (tx *Tx) AuditHead(context.Context) (audit.Anchor, error) {
	if tx.d.auditHead.ChainPos == 0 {
		return tx.d.auditAnchor, nil
	}
	return tx.d.auditHead, nil
}

func (tx *Tx) SealAudit(_ context.Context, seals []audit.Seal) error {
	for _, s := range seals {
		e, ok := tx.d.auditEntries[s.Seq]
		if !ok {
			return store.ErrNotFound
		}
		if e.ChainPos != 0 {
			return store.ErrConflict
		}
		e.ChainPos, e.PrevHash, e.Hash = s.ChainPos, s.PrevHash, s.Hash
		put(tx, tx.d.auditEntries, s.Seq, e)
		setVar(tx, &tx.d.auditHead, audit.Anchor{ChainPos: s.ChainPos, Hash: s.Hash})
	}
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

func (tx *Tx) PruneAudit(_ context.Context, anchor audit.Anchor) (int, error) {
	n := 0
	for seq, e := range tx.d.auditEntries {
		if e.ChainPos != 0 && e.ChainPos <= anchor.ChainPos {
			del(tx, tx.d.auditEntries, seq)
			n++
		}
	}
	setVar(tx, &tx.d.auditAnchor, anchor)
	return n, nil
}

// TamperAudit lets tests edit an entry behind the chain's back.
func (s *Store) TamperAudit(seq int64, fn func(e *audit.Entry)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.d.auditEntries[seq]
	fn(&e)
	if e.Seq == 0 {
		delete(s.d.auditEntries, seq)
		return
	}
	s.d.auditEntries[seq] = e
}

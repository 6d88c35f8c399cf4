package memory

import (
	"context"
	"time"

	"github.com/perfectpay/perfectpay/retention"
)

var _ retention.Repo = (*Tx)(nil)

// PruneDecisions deletes the oldest decision records created before before,
// at most limit of them, oldest then id first, with their inputs and their
// charge index. It walks the decisions by age from the oldest and stops at
// its limit. The store lock makes concurrent sweeps take turns.
func (tx *Tx) PruneDecisions(_ context.Context, before time.Time, limit int) (int, error) {
	p := &tx.d.pipeline
	old := firstBefore(p.byAge, before, limit)
	for _, k := range old {
		d := p.decisions[k.id]
		p.byAge.drop(tx, k)
		p.byTenant.drop(tx, tenantTimed{d.TenantID, k})
		if d.ChargeID != "" {
			ck := d.TenantID + "/" + d.ChargeID
			if p.byCharge[ck] == d.ID {
				del(tx, p.byCharge, ck)
			}
		}
		del(tx, p.decisions, d.ID)
	}
	return len(old), nil
}

// PruneSessions deletes the oldest people's sessions created before before,
// at most limit of them, oldest then ref first. It walks the sessions by
// age from the oldest and stops at its limit.
func (tx *Tx) PruneSessions(_ context.Context, before time.Time, limit int) (int, error) {
	p := tx.people()
	var old []string
	if limit > 0 {
		cut := stampOf(before)
		p.sessionsByAge.walk(func(s sessionAge) bool {
			if s.at.compare(cut) >= 0 {
				return false
			}
			old = append(old, s.hash)
			return len(old) < limit
		})
	}
	for _, k := range old {
		tx.delSession(k)
	}
	return len(old), nil
}

// ShredUnusedTokens erases the oldest tokens created before before that no
// charge used since and no live mandate names, at most limit of them,
// oldest then id first. It walks the shred index (shred.go), in that
// order, through the subtrees that hold a token neither created nor
// charged since before, and stops at its limit.
func (tx *Tx) ShredUnusedTokens(_ context.Context, before, at time.Time, limit int) (int, error) {
	v := tx.d.vault
	var old []string
	if limit > 0 {
		// due < before, to the nanosecond a stamp keeps.
		v.shreddable.walkDue(stampOf(before.Add(-1)), func(k shredKey) bool {
			old = append(old, k.id)
			return len(old) < limit
		})
	}
	for _, id := range old {
		t := v.tokens[id]
		when := at
		t.WrappedDEK, t.Ciphertext, t.DeletedAt = nil, nil, &when
		tx.putToken(t)
	}
	return len(old), nil
}

// ScrubCharges empties the free text of the oldest settled charges last
// changed before before, at most limit of them, oldest update then id
// first. It walks the scrub's index from its start, which holds exactly
// the charges it may scrub, and stops at its limit.
func (tx *Tx) ScrubCharges(_ context.Context, before time.Time, limit int) (int, error) {
	p := tx.d.payments
	old := firstBefore(p.scrubbable, before, limit)
	for _, k := range old {
		c := p.charges[k.id]
		c.Description, c.Metadata, c.Purchase, c.FailureMessage = "", map[string]string{}, nil, ""
		tx.putCharge(c)
	}
	return len(old), nil
}

// firstBefore reads the keys of x, in order, whose time is before before,
// at most limit of them.
func firstBefore(x *ordered[timedKey], before time.Time, limit int) []timedKey {
	var out []timedKey
	if limit <= 0 {
		return nil
	}
	cut := stampOf(before)
	x.walk(func(k timedKey) bool {
		if k.at.compare(cut) >= 0 {
			return false
		}
		out = append(out, k)
		return len(out) < limit
	})
	return out
}

// PruneLoginMarks deletes the oldest login marks first seen before before,
// at most limit of them, oldest then key first. It walks the marks by age
// from the oldest and stops at its limit.
func (tx *Tx) PruneLoginMarks(_ context.Context, before time.Time, limit int) (int, error) {
	old := firstBefore(tx.people().marksByAge, before, limit)
	for _, m := range old {
		tx.delMark(m.id)
	}
	return len(old), nil
}

// PruneExpiredIdempotency deletes the idempotency records that expired
// first, before before, at most limit of them, by expiry then key. It pops
// their expiry index (evict.go), which comes out in that order, and stops
// at its limit. An entry whose record is gone or now expires at another
// time (which has an entry of its own) is dropped on the way; each is
// popped once. Pops are undone with the transaction.
func (tx *Tx) PruneExpiredIdempotency(_ context.Context, before time.Time, limit int) (int, error) {
	x := &tx.exp.idem
	n, cut := 0, unixNano(before)
	for n < limit && x.len() > 0 && x.h[0].at < cut {
		e := x.pop()
		tx.undo = append(tx.undo, func() { x.pushAt(e.at, e.key) })
		if r, ok := tx.d.idem[e.key]; ok && unixNano(r.ExpiresAt) == e.at {
			del(tx, tx.d.idem, e.key)
			n++
		}
	}
	return n, nil
}

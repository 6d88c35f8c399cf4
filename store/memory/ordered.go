package memory

import (
	"cmp"
	"time"
)

// A background job that scans a whole table holds the store, and every
// transaction of the node, for the length of the scan. The tables such a
// job reads (mandates due to expire, rows due for retention) keep an
// ordered index of the rows it may touch, maintained by the writes that
// change those rows and undone with their transaction: the job walks the
// index from its start and stops at its limit.

// stamp is an instant as two integers: it orders exactly as time.Time
// does (time.Compare), in 16 bytes instead of 24 with no location pointer.
type stamp struct {
	sec  int64
	nsec int32
}

func stampOf(t time.Time) stamp { return stamp{t.Unix(), int32(t.Nanosecond())} }

func (a stamp) compare(b stamp) int {
	return cmp.Or(cmp.Compare(a.sec, b.sec), cmp.Compare(a.nsec, b.nsec))
}

// timedKey is a row's key in an index ordered by a time, then the key.
type timedKey struct {
	at stamp
	id string
}

func compareTimed(a, b timedKey) int { return cmp.Or(a.at.compare(b.at), cmp.Compare(a.id, b.id)) }

// tenantTimed is a row's key in an index ordered by tenant, then time,
// then key.
type tenantTimed struct {
	tenantID string
	timedKey
}

func compareTenantTimed(a, b tenantTimed) int {
	return cmp.Or(cmp.Compare(a.tenantID, b.tenantID), compareTimed(a.timedKey, b.timedKey))
}

// ordered is a set of keys in the order of cmp: a treap (a binary search
// tree kept balanced by random heap priorities), so that adding and
// removing a key cost O(log n) and a walk from the smallest key costs
// O(log n) plus one step per key it reads. When due is set every node also
// keeps the earliest due stamp of its subtree, and walkDue skips the
// subtrees with nothing due. Like the tables, it is guarded by Store.mu;
// add and drop record their undo in the transaction.
type ordered[K any] struct {
	root *onode[K]
	cmp  func(a, b K) int
	due  func(K) stamp
	rnd  uint32
	n    int
}

type onode[K any] struct {
	key     K
	minSec  int64 // the earliest due stamp of the subtree, when due is set
	minNsec int32
	prio    uint32
	l, r    *onode[K]
}

func newOrdered[K any](cmp func(a, b K) int, due func(K) stamp) *ordered[K] {
	return &ordered[K]{cmp: cmp, due: due, rnd: 0x9e3779b9}
}

func (x *ordered[K]) len() int { return x.n }

// add puts k in the set (k must not be in it) and records its removal as
// the undo.
func (x *ordered[K]) add(tx *Tx, k K) {
	x.insert(k)
	tx.undo = append(tx.undo, func() { x.remove(k) })
}

// drop removes the key equal to k, if any, and records putting it back as
// the undo.
func (x *ordered[K]) drop(tx *Tx, k K) {
	if old, ok := x.remove(k); ok {
		tx.undo = append(tx.undo, func() { x.insert(old) })
	}
}

func (x *ordered[K]) insert(k K) {
	x.rnd ^= x.rnd << 13 // xorshift32
	x.rnd ^= x.rnd >> 17
	x.rnd ^= x.rnd << 5
	x.root = x.ins(x.root, &onode[K]{key: k, prio: x.rnd})
	x.n++
}

func (x *ordered[K]) ins(t, n *onode[K]) *onode[K] {
	if t == nil {
		x.fix(n)
		return n
	}
	if n.prio > t.prio {
		n.l, n.r = x.split(t, n.key)
		x.fix(n)
		return n
	}
	if x.cmp(n.key, t.key) < 0 {
		t.l = x.ins(t.l, n)
	} else {
		t.r = x.ins(t.r, n)
	}
	x.fix(t)
	return t
}

// split cuts t into the keys before k and the others.
func (x *ordered[K]) split(t *onode[K], k K) (l, r *onode[K]) {
	if t == nil {
		return nil, nil
	}
	if x.cmp(t.key, k) < 0 {
		t.r, r = x.split(t.r, k)
		x.fix(t)
		return t, r
	}
	l, t.l = x.split(t.l, k)
	x.fix(t)
	return l, t
}

func (x *ordered[K]) remove(k K) (K, bool) {
	var old K
	var ok bool
	x.root = x.rm(x.root, k, &old, &ok)
	if ok {
		x.n--
	}
	return old, ok
}

func (x *ordered[K]) rm(t *onode[K], k K, old *K, ok *bool) *onode[K] {
	if t == nil {
		return nil
	}
	switch c := x.cmp(k, t.key); {
	case c < 0:
		t.l = x.rm(t.l, k, old, ok)
	case c > 0:
		t.r = x.rm(t.r, k, old, ok)
	default:
		*old, *ok = t.key, true
		return x.merge(t.l, t.r)
	}
	x.fix(t)
	return t
}

// merge joins a and b, every key of a before every key of b.
func (x *ordered[K]) merge(a, b *onode[K]) *onode[K] {
	switch {
	case a == nil:
		return b
	case b == nil:
		return a
	case a.prio > b.prio:
		a.r = x.merge(a.r, b)
		x.fix(a)
		return a
	}
	b.l = x.merge(a, b.l)
	x.fix(b)
	return b
}

// fix recomputes the earliest due stamp of t's subtree from its children.
func (x *ordered[K]) fix(t *onode[K]) {
	if x.due == nil {
		return
	}
	m := x.due(t.key)
	if c := t.l; c != nil && (stamp{c.minSec, c.minNsec}).compare(m) < 0 {
		m = stamp{c.minSec, c.minNsec}
	}
	if c := t.r; c != nil && (stamp{c.minSec, c.minNsec}).compare(m) < 0 {
		m = stamp{c.minSec, c.minNsec}
	}
	t.minSec, t.minNsec = m.sec, m.nsec
}

// walk calls yield with the keys in order from the smallest until yield
// answers false.
func (x *ordered[K]) walk(yield func(K) bool) {
	var stack []*onode[K]
	for t := x.root; t != nil || len(stack) > 0; {
		for ; t != nil; t = t.l {
			stack = append(stack, t)
		}
		t = stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if !yield(t.key) {
			return
		}
		t = t.r
	}
}

// walkFrom calls yield with the keys not before from, in order, until
// yield answers false: O(log n) plus one step per key it reads, so a
// range of keys sharing a prefix costs what it holds.
func (x *ordered[K]) walkFrom(from K, yield func(K) bool) {
	var stack []*onode[K]
	for t := x.root; t != nil; {
		if x.cmp(t.key, from) < 0 {
			t = t.r
		} else {
			stack = append(stack, t)
			t = t.l
		}
	}
	for len(stack) > 0 {
		t := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if !yield(t.key) {
			return
		}
		for t = t.r; t != nil; t = t.l {
			stack = append(stack, t)
		}
	}
}

// walkDue calls yield, in order, with the keys whose due stamp is not
// after now until yield answers false. It visits only the subtrees that
// hold such a key: O(log n) a key it yields.
func (x *ordered[K]) walkDue(now stamp, yield func(K) bool) {
	x.walkDueFrom(x.root, now, yield)
}

func (x *ordered[K]) walkDueFrom(t *onode[K], now stamp, yield func(K) bool) bool {
	if t == nil || (stamp{t.minSec, t.minNsec}).compare(now) > 0 {
		return true
	}
	return x.walkDueFrom(t.l, now, yield) &&
		(x.due(t.key).compare(now) > 0 || yield(t.key)) &&
		x.walkDueFrom(t.r, now, yield)
}

// relist keeps o in step with a row written over old (had: there was
// one): the row's entry moves when its key changed from old to now.
func relist[K comparable](tx *Tx, o *ordered[K], had bool, old, now K) {
	if had && old == now {
		return
	}
	if had {
		o.drop(tx, old)
	}
	o.add(tx, now)
}

package memory

import (
	"math"
	"time"
)

// The memory store keeps only what is live: every table whose rows expire
// (token sessions, one-time identifiers, token revocations, idempotency
// records, consent and CIBA requests) has an expiry index, a min-heap of (expiry, key), so a prune
// pops exactly the rows that expired and never walks the live ones.
//
// The heap is an index, not the truth: an entry is pushed when a row is
// written with an expiry, and is checked against the table when it is
// popped (the row may have been deleted, rolled back, or rewritten with a
// later expiry, which pushed an entry of its own). Pops inside a
// transaction are undone with it.

// expiries are the expiry indexes. Like the tables, they are guarded by
// Store.mu.
type expiries struct {
	jti   expiryHeap[jtiKey]
	token expiryHeap[tokKey]
	rev   expiryHeap[revKey]
	idem  expiryHeap[idemKey]
	// authReq indexes authRequests, whose expiry an update keeps.
	authReq expiryHeap[string]
}

// expiry is one index entry; at is in Unix nanoseconds (8 bytes where a
// time.Time takes 24, for an entry per live token).
type expiry[K comparable] struct {
	at  int64
	key K
}

// expiryHeap is a min-heap of expiries. When tie is set, entries of the
// same expiry come out in the order of their keys, so that a prune with a
// limit (PruneExpiredIdempotency) takes exactly the first rows in that
// order.
type expiryHeap[K comparable] struct {
	h   []expiry[K]
	tie func(a, b K) int
}

func (x *expiryHeap[K]) len() int { return len(x.h) }

// less tells whether the entry i comes out before the entry j.
func (x *expiryHeap[K]) less(i, j int) bool {
	if x.h[i].at != x.h[j].at || x.tie == nil {
		return x.h[i].at < x.h[j].at
	}
	return x.tie(x.h[i].key, x.h[j].key) < 0
}

func (x *expiryHeap[K]) push(t time.Time, key K) { x.pushAt(unixNano(t), key) }

// The instants an int64 of Unix nanoseconds can hold (1677 to 2262).
var (
	minNano = time.Unix(0, math.MinInt64)
	maxNano = time.Unix(0, math.MaxInt64)
)

// unixNano is t in Unix nanoseconds, held at the ends of the range
// outside it, where UnixNano's result is undefined: a time before it
// (such as the zero time) expires at the first prune, one after it never,
// and both keep their order.
func unixNano(t time.Time) int64 {
	switch {
	case t.Before(minNano):
		return math.MinInt64
	case t.After(maxNano):
		return math.MaxInt64
	}
	return t.UnixNano()
}

func (x *expiryHeap[K]) pushAt(at int64, key K) {
	x.h = append(x.h, expiry[K]{at, key})
	i := len(x.h) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !x.less(i, p) {
			break
		}
		x.h[i], x.h[p] = x.h[p], x.h[i]
		i = p
	}
}

func (x *expiryHeap[K]) pop() expiry[K] {
	top := x.h[0]
	last := len(x.h) - 1
	x.h[0] = x.h[last]
	x.h[last] = expiry[K]{}
	x.h = x.h[:last]
	i := 0
	for {
		l, r, m := 2*i+1, 2*i+2, i
		if l < len(x.h) && x.less(l, m) {
			m = l
		}
		if r < len(x.h) && x.less(r, m) {
			m = r
		}
		if m == i {
			break
		}
		x.h[i], x.h[m] = x.h[m], x.h[i]
		i = m
	}
	if cap(x.h) > 64 && len(x.h) < cap(x.h)/4 {
		x.h = append(make([]expiry[K], 0, cap(x.h)/2), x.h...) // give memory back
	}
	return top
}

// expire pops every entry of x that expires before before and calls
// evict for it; evict deletes the row (through tx, so a rollback restores
// it) when it is still there with an expiry before before. It returns how
// many rows evict deleted.
func expire[K comparable](tx *Tx, x *expiryHeap[K], before time.Time, evict func(K) bool) int {
	n, cut := 0, unixNano(before)
	for x.len() > 0 && x.h[0].at < cut {
		e := x.pop()
		tx.undo = append(tx.undo, func() { x.pushAt(e.at, e.key) })
		if evict(e.key) {
			n++
		}
	}
	return n
}

// Counts is how many rows the memory store holds in its expiring tables
// and their expiry indexes, for tests and measurements.
type Counts struct {
	Tokens, JTIs, Revocations, Idempotency int
	// Indexed is the number of expiry index entries over all four tables.
	Indexed int
}

// Counts returns the sizes of the expiring tables.
func (s *Store) Counts() Counts {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, x := s.d.authz, s.exp
	return Counts{
		Tokens: len(a.tokens), JTIs: len(a.jtis), Revocations: len(a.revocations), Idempotency: len(s.d.idem),
		Indexed: x.token.len() + x.jti.len() + x.rev.len() + x.idem.len(),
	}
}

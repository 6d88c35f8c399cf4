// Package memory is the embedded in-memory backend: the default for
// development and the quick start. It passes the same conformance suite as
// store/postgres. One mutex serializes transactions; an undo log makes a
// failed transaction leave nothing behind.
package memory

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/perfectpay/perfectpay/store"
	"github.com/perfectpay/perfectpay/store/repos"
)

// Store is the in-memory backend.
type Store struct {
	mu  sync.Mutex
	d   *data
	exp *expiries // evict.go
	// down simulates an outage (SetUnavailable); session names this
	// process's claims and changes when the store comes back.
	down    bool
	session int
}

var (
	_ store.Backend[*Tx] = (*Store)(nil)
	_ repos.Tx           = (*Tx)(nil)
)

// New returns an empty store.
func New() *Store {
	return &Store{d: newData(), exp: &expiries{idem: expiryHeap[idemKey]{tie: compareIdemKeys}}}
}

// Tx is a transaction on the memory store. It is only valid inside InTx.
type Tx struct {
	d    *data
	exp  *expiries
	undo []func()
	now  time.Time
	// session is the store's session when the transaction began.
	session string
}

// InTx runs fn with the store locked, rolling back every change when fn fails.
func (s *Store) InTx(ctx context.Context, fn func(tx *Tx) error) (err error) {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		return fmt.Errorf("%w: memory store switched off by SetUnavailable", store.ErrUnavailable)
	}
	tx := &Tx{d: s.d, exp: s.exp, now: time.Now(), session: "memory-" + strconv.Itoa(s.session)}
	defer func() {
		if p := recover(); p != nil {
			tx.rollback()
			panic(p)
		}
		if err != nil {
			tx.rollback()
		}
	}()
	return fn(tx)
}

// Autocommit is InTx: the memory store has no cheaper mode.
func (s *Store) Autocommit(ctx context.Context, fn func(tx *Tx) error) error {
	return s.InTx(ctx, fn)
}

// Ping succeeds unless an outage is simulated.
func (s *Store) Ping(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		return fmt.Errorf("%w: memory store switched off by SetUnavailable", store.ErrUnavailable)
	}
	return nil
}

// SetUnavailable simulates an outage of the store, for tests of what the
// rest of the node does without it: while down, every transaction and
// Ping fail with store.ErrUnavailable and write nothing. When it comes
// back the process counts as a new session, as a node reconnecting to
// PostgreSQL does, so claims held across the outage are abandoned.
func (s *Store) SetUnavailable(down bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down && !down {
		s.session++
	}
	s.down = down
}

// Close does nothing.
func (s *Store) Close() {}

func (tx *Tx) rollback() {
	for i := len(tx.undo) - 1; i >= 0; i-- {
		tx.undo[i]()
	}
	tx.undo = nil
}

// table is a map whose writes are undone when the transaction fails.
type table[K comparable, V any] map[K]V

func put[K comparable, V any](tx *Tx, t table[K, V], k K, v V) {
	old, had := t[k]
	tx.undo = append(tx.undo, func() {
		if had {
			t[k] = old
		} else {
			delete(t, k)
		}
	})
	t[k] = v
}

// find returns a copy of the row at k, or store.ErrNotFound.
func find[K comparable, V any](t table[K, V], k K) (*V, error) {
	v, ok := t[k]
	if !ok {
		return nil, store.ErrNotFound
	}
	return &v, nil
}

// insert adds the row v at k, or answers store.ErrConflict when k is taken.
func insert[K comparable, V any](tx *Tx, t table[K, V], k K, v V) error {
	if _, ok := t[k]; ok {
		return store.ErrConflict
	}
	put(tx, t, k, v)
	return nil
}

func del[K comparable, V any](tx *Tx, t table[K, V], k K) {
	old, had := t[k]
	if !had {
		return
	}
	tx.undo = append(tx.undo, func() { t[k] = old })
	delete(t, k)
}

// unlist takes v out of the list at k in t, and k out of t when the list
// is left empty. The list is replaced, never changed in place, so a
// rollback puts the old one back.
func unlist[K, V comparable](tx *Tx, t table[K, []V], k K, v V) {
	l := t[k]
	i := slices.Index(l, v)
	switch {
	case i < 0:
	case len(l) == 1:
		del(tx, t, k)
	default:
		put(tx, t, k, slices.Delete(slices.Clone(l), i, i+1))
	}
}

// addCount adds by to the count at k in t and returns the new count; a
// count brought to zero leaves t, so t holds only the keys counted.
func addCount[K comparable](tx *Tx, t table[K, int], k K, by int) int {
	n := t[k] + by
	if n == 0 {
		del(tx, t, k)
	} else {
		put(tx, t, k, n)
	}
	return n
}

// setVar sets a scalar and records how to undo it.
func setVar[V any](tx *Tx, p *V, v V) {
	old := *p
	tx.undo = append(tx.undo, func() { *p = old })
	*p = v
}

// appendUndo appends v to *s; rollback truncates it again.
func appendUndo[V any](tx *Tx, s *[]V, v V) {
	n := len(*s)
	tx.undo = append(tx.undo, func() { *s = (*s)[:n] })
	*s = append(*s, v)
}

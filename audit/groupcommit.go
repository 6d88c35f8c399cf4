package audit

import (
	"context"
	"errors"
	"sync"

	"github.com/perfectpay/perfectpay/store"
)

// Group commits the small writes of many requests (access-audit entries,
// stored idempotent answers) in one transaction: a caller's write joins
// the next batch and the caller waits until that batch has committed, so
// nothing is acknowledged before it is durable, while a busy node pays
// one commit for many requests instead of one each.
//
// Batches form on their own: while one batch commits, the writes that
// arrive wait and go together in the next. There is no timer, so a quiet
// node commits each write at once. The caller that finds no batch in
// flight commits the first one itself; the batches that queue up behind
// it are committed by a goroutine that lives while there is work, so no
// caller waits for more than its own batch and the one before it.
type Group[X any] struct {
	db  store.Runner[X]
	max int

	mu       sync.Mutex
	queue    []*groupWrite[X]
	flushing bool
}

type groupWrite[X any] struct {
	fn   func(ctx context.Context, tx X) error
	done chan error
}

// DefaultGroupMax bounds the writes of one batch.
const DefaultGroupMax = 256

// NewGroup returns a group committer over db; max bounds a batch (0:
// DefaultGroupMax).
func NewGroup[X any](db store.Runner[X], max int) *Group[X] {
	if max <= 0 {
		max = DefaultGroupMax
	}
	return &Group[X]{db: db, max: max}
}

// Do runs fn in the next batch's transaction and returns once that
// transaction has committed (nil) or failed (its error). fn may run more
// than once (a batch that fails is retried write by write, and PostgreSQL
// may retry a serialization failure); it must write nothing outside tx.
// The wait does not end with ctx: the write is already queued.
func (g *Group[X]) Do(fn func(ctx context.Context, tx X) error) error {
	w := &groupWrite[X]{fn: fn, done: make(chan error, 1)}
	g.mu.Lock()
	g.queue = append(g.queue, w)
	if g.flushing {
		g.mu.Unlock()
		return <-w.done
	}
	g.flushing = true
	batch := g.take()
	g.mu.Unlock()
	g.commit(batch)
	g.mu.Lock()
	if len(g.queue) > 0 {
		go g.drain()
	} else {
		g.flushing = false
	}
	g.mu.Unlock()
	return <-w.done
}

// take removes the next batch from the queue; the caller holds mu.
func (g *Group[X]) take() []*groupWrite[X] {
	n := min(len(g.queue), g.max)
	batch := g.queue[:n:n]
	g.queue = g.queue[n:]
	if len(g.queue) == 0 {
		g.queue = nil
	}
	return batch
}

// drain commits batches until the queue is empty.
func (g *Group[X]) drain() {
	for {
		g.mu.Lock()
		if len(g.queue) == 0 {
			g.flushing = false
			g.mu.Unlock()
			return
		}
		batch := g.take()
		g.mu.Unlock()
		g.commit(batch)
	}
}

// commit writes a batch in one transaction and tells every writer. When
// the batch fails for another reason than an unreachable store, each
// write is committed on its own, so one bad write fails only its caller.
func (g *Group[X]) commit(batch []*groupWrite[X]) {
	ctx := context.Background()
	err := g.db.InTx(ctx, func(tx X) error {
		for _, w := range batch {
			if err := w.fn(ctx, tx); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil || len(batch) == 1 || errors.Is(err, store.ErrUnavailable) {
		for _, w := range batch {
			w.done <- err
		}
		return
	}
	for _, w := range batch {
		w.done <- g.db.InTx(ctx, func(tx X) error { return w.fn(ctx, tx) })
	}
}

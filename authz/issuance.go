package authz

import (
	"context"
	"fmt"
	"sync"

	"github.com/perfectpay/perfectpay/store"
)

// issuance commits the records of issued tokens (the token session and its
// token.issued audit entry) by group commit: a request's write joins the
// next batch, one transaction commits the whole batch, and the request
// waits for that commit before its token is handed out. A busy issuer so
// pays one commit for many tokens instead of one each; a quiet one commits
// each token at once (there is no timer).
//
// Up to inFlight batches commit at once, each in its own transaction. With
// one, requests signed while a batch commits wait for that commit to end
// before theirs can start, so the node alternates between signing and
// waiting on the database; with two, the next batch commits while the
// first one's round trip and WAL flush are under way (PostgreSQL flushes
// the WAL of concurrent commits together). The memory store runs its
// transactions one at a time, so there the second batch just queues.
//
// A batch commits or fails as a whole: when its transaction fails, every
// token of the batch fails with that error and none is handed out.
type issuance struct {
	db       store.Runner[Tx]
	max      int
	inFlight int

	mu       sync.Mutex
	queue    []*issueWrite
	flushers int // goroutines committing batches, at most inFlight
}

type issueWrite struct {
	fn   func(Tx) error
	done chan error
}

// issueBatchMax bounds the tokens of one batch.
const issueBatchMax = 256

// issueInFlight bounds the batches committing at once.
const issueInFlight = 2

func newIssuance(db store.Runner[Tx]) *issuance {
	return &issuance{db: db, max: issueBatchMax, inFlight: issueInFlight}
}

// do runs write in the next batch's transaction and returns once that
// transaction has committed (nil) or failed (its error). write must only
// write through its Tx and must not depend on its caller's context being
// live: the batch may commit after the caller gave up, and the caller then
// hands nothing out.
func (g *issuance) do(ctx context.Context, write func(Tx) error) error {
	w := &issueWrite{fn: write, done: make(chan error, 1)}
	g.mu.Lock()
	g.queue = append(g.queue, w)
	if g.flushers < g.inFlight {
		g.flushers++
		go g.drain()
	}
	g.mu.Unlock()
	select {
	case err := <-w.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// drain commits batches until the queue is empty; several drains may run
// (see inFlight), each taking what is queued when it is free.
func (g *issuance) drain() {
	for {
		g.mu.Lock()
		n := min(len(g.queue), g.max)
		if n == 0 {
			g.flushers--
			g.queue = nil
			g.mu.Unlock()
			return
		}
		batch := g.queue[:n:n]
		g.queue = g.queue[n:]
		g.mu.Unlock()
		g.commit(batch)
	}
}

// commit writes a batch in one transaction and tells every writer. A
// write that panics fails its batch (rolled back) instead of the process:
// it runs on the committer's goroutine, not on its request's.
func (g *issuance) commit(batch []*issueWrite) {
	var err error
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("authz: issuing tokens panicked: %v", p)
		}
		for _, w := range batch {
			w.done <- err
		}
	}()
	err = g.db.InTx(context.Background(), func(tx Tx) error {
		for _, w := range batch {
			if err := w.fn(tx); err != nil {
				return err
			}
		}
		return nil
	})
}

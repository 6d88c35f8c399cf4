package charging

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/perfectpay/perfectpay/store"
)

// A hot mandate: every charge on it locks the same mandate rows until its
// transaction commits, so one mandate's charges commit one after the other
// and the commit (a WAL flush on PostgreSQL) bounds their rate. A node
// therefore groups them: while one transaction on a mandate chain is in
// flight, the charge transactions for the same chain queue; the next
// leader takes the queued ones (at most Config.GroupMax) in arrival order
// and runs them in ONE transaction, each member in its own savepoint, and
// commits them together. A member refused (the budget its predecessors
// took) or failing (its card token deleted, its Idempotency-Key taken)
// is undone alone; the others go on. Every member hears its answer only
// after the commit. When the group transaction itself fails (its commit,
// a serialization failure), each member runs again alone, so none is
// charged twice or lost; when the connection was lost during the COMMIT,
// whose outcome is then unknown, every member gets that error, as a lone
// transaction would.

// DefaultGroupMax is the number of charges one group transaction takes
// when Config.GroupMax is not set.
const DefaultGroupMax = 32

// groups queues the charge transactions of a node by mandate chain.
type groups struct {
	mu     sync.Mutex
	queues map[string]*groupQueue
	// formed and grouped count the group transactions of two members or
	// more that committed, and their members.
	formed, grouped atomic.Int64
	// hooks for tests (export_test.go): beforeBatch runs as a leader is
	// about to take its batch; beforeCommit runs in a group transaction
	// of two or more members after the last one.
	beforeBatch  func(key string)
	beforeCommit func(ctx context.Context, tx Tx) error
}

// groupQueue is one chain's queue: busy while a leader runs a batch.
type groupQueue struct {
	busy    bool
	waiting []*member
}

// member is one charge transaction waiting in a queue.
type member struct {
	ctx  context.Context
	fn   func(ctx context.Context, tx Tx) error
	wake chan struct{} // closed when err is final or the member is to lead
	lead bool
	done bool // err is the member's answer
	err  error
}

// GroupStats counts the group transactions (two members or more) that
// committed and their members.
type GroupStats struct{ Transactions, Members int64 }

// GroupStats returns what the node's grouping did so far.
func (s *Service) GroupStats() GroupStats {
	return GroupStats{Transactions: s.groups.formed.Load(), Members: s.groups.grouped.Load()}
}

// chargeTx runs fn as the charge transaction of a charge on the mandate
// chain key, grouped with the others waiting on it (see above). fn follows
// open's contract: it writes nothing outside tx, and may run more than
// once. With grouping off (GroupMax 1) it is one transaction of its own.
func (s *Service) chargeTx(ctx context.Context, key string, fn func(ctx context.Context, tx Tx) error) error {
	if s.groupMax() == 1 {
		return s.alone(ctx, fn)
	}
	g := &s.groups
	m := &member{ctx: ctx, fn: fn, wake: make(chan struct{})}
	g.mu.Lock()
	if g.queues == nil {
		g.queues = map[string]*groupQueue{}
	}
	q := g.queues[key]
	if q == nil {
		q = &groupQueue{}
		g.queues[key] = q
	}
	q.waiting = append(q.waiting, m)
	if !q.busy {
		q.busy, m.lead = true, true
	}
	leads := m.lead // read under the lock: a handover sets it under the lock
	g.mu.Unlock()
	if !leads {
		select {
		case <-m.wake:
		case <-ctx.Done():
			// Gone before its turn: it leaves the queue, unless a batch
			// took it already or it was just made the leader.
			g.mu.Lock()
			if i := slices.Index(q.waiting, m); i >= 0 && !m.lead {
				q.waiting = slices.Delete(q.waiting, i, i+1)
				g.mu.Unlock()
				return ctx.Err()
			}
			g.mu.Unlock()
			<-m.wake
		}
		// Closing wake published lead and err.
		if !m.lead {
			return m.err
		}
	}
	s.lead(key, q)
	return m.err
}

// lead runs one batch of q (the leader is at its head), answers its
// members and hands the queue to the next waiting member, if any.
func (s *Service) lead(key string, q *groupQueue) {
	g := &s.groups
	if g.beforeBatch != nil {
		g.beforeBatch(key)
	}
	g.mu.Lock()
	n := min(len(q.waiting), s.groupMax())
	batch := slices.Clone(q.waiting[:n])
	q.waiting = slices.Delete(q.waiting, 0, n)
	g.mu.Unlock()
	defer func() {
		// Even when a member panicked: nobody waits forever.
		for _, m := range batch {
			if !m.done {
				m.err = errors.New("charging: the group transaction stopped")
			}
		}
		g.mu.Lock()
		for _, m := range batch[1:] {
			close(m.wake)
		}
		if len(q.waiting) > 0 {
			next := q.waiting[0]
			next.lead = true
			close(next.wake)
		} else {
			q.busy = false
			delete(g.queues, key)
		}
		g.mu.Unlock()
	}()
	s.runBatch(batch)
}

// groupMax is the most members one group transaction takes (1: grouping
// off).
func (s *Service) groupMax() int {
	if s.cfg.GroupMax <= 0 {
		return DefaultGroupMax
	}
	return s.cfg.GroupMax
}

// runBatch runs the members' transactions, grouped when there are two or
// more, and sets each member's err.
func (s *Service) runBatch(batch []*member) {
	live := batch[:0:0]
	for _, m := range batch {
		if err := m.ctx.Err(); err != nil {
			m.err, m.done = err, true // its client is gone: nothing was done for it
			continue
		}
		live = append(live, m)
	}
	if len(live) == 1 {
		m := live[0]
		m.err, m.done = s.alone(m.ctx, m.fn), true
		return
	}
	if len(live) == 0 {
		return
	}
	g := &s.groups
	// One member's client going away must not cancel the others'
	// statements: the group runs on contexts without cancellation.
	ctxs := make([]context.Context, len(live))
	for i, m := range live {
		ctxs[i] = context.WithoutCancel(m.ctx)
	}
	errs := make([]error, len(live))
	committing := false
	err := s.db.InTx(ctxs[0], func(tx Tx) error {
		committing = false // a run again after a serialization failure starts afresh
		for i, m := range live {
			errs[i] = tx.Savepoint(ctxs[i], func() error { return m.fn(ctxs[i], tx) })
			if groupFatal(errs[i]) {
				// Not the member's own doing: the whole group runs again
				// (serialization) or its members alone.
				return errs[i]
			}
		}
		if g.beforeCommit != nil {
			if err := g.beforeCommit(ctxs[0], tx); err != nil {
				return err
			}
		}
		committing = true
		return nil
	})
	switch {
	case err == nil:
		for i, m := range live {
			m.err, m.done = errs[i], true
		}
		g.formed.Add(1)
		g.grouped.Add(int64(len(live)))
		return
	case committing && errors.Is(err, store.ErrUnavailable):
		// The connection was lost with COMMIT sent: the outcome is not
		// known, so nothing may run again; "retry later" for everyone.
		for _, m := range live {
			m.err, m.done = err, true
		}
		return
	}
	s.log.WarnContext(ctxs[0], "group charge transaction failed; running its members alone", "members", len(live), "err", err)
	for _, m := range live {
		m.err, m.done = s.alone(m.ctx, m.fn), true
	}
}

// alone runs fn as a charge transaction of its own.
func (s *Service) alone(ctx context.Context, fn func(ctx context.Context, tx Tx) error) error {
	return s.db.InTx(ctx, func(tx Tx) error { return fn(ctx, tx) })
}

// groupFatal says whether a member's error fails its whole group: a lost
// connection or a serialization failure (a deadlock) is the transaction's,
// not the member's.
func groupFatal(err error) bool {
	return errors.Is(err, store.ErrSerialization) || errors.Is(err, store.ErrUnavailable)
}

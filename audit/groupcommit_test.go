package audit_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/audit"
	"github.com/perfectpay/perfectpay/store"
)

// Condition waits: generous, for a busy machine.
const (
	groupDeadline = 30 * time.Second
	groupTick     = time.Millisecond
)

// fakeTx is a transaction of fakeDB: writes become visible at commit.
type fakeTx struct{ writes []string }

// fakeDB counts transactions; the first one waits on gate, so writes
// that arrive meanwhile must queue for the next batch.
type fakeDB struct {
	mu        sync.Mutex
	txs       int
	committed []string
	gate      chan struct{}
	entered   chan struct{}
}

func (d *fakeDB) InTx(_ context.Context, fn func(tx *fakeTx) error) error {
	d.mu.Lock()
	d.txs++
	first := d.txs == 1
	d.mu.Unlock()
	if first && d.gate != nil {
		close(d.entered)
		<-d.gate
	}
	tx := &fakeTx{}
	if err := fn(tx); err != nil {
		return err
	}
	d.mu.Lock()
	d.committed = append(d.committed, tx.writes...)
	d.mu.Unlock()
	return nil
}

func (d *fakeDB) Autocommit(ctx context.Context, fn func(tx *fakeTx) error) error {
	return d.InTx(ctx, fn)
}

var _ store.Runner[*fakeTx] = (*fakeDB)(nil)

// TestGroupCommitsQueuedWritesTogether: while one batch commits, the
// writes that arrive wait and commit together in one transaction, and
// each caller returns only once its own write committed.
func TestGroupCommitsQueuedWritesTogether(t *testing.T) {
	db := &fakeDB{gate: make(chan struct{}), entered: make(chan struct{})}
	g := audit.NewGroup[*fakeTx](db, 0)
	firstDone := make(chan error, 1)
	go func() {
		firstDone <- g.Do(func(_ context.Context, tx *fakeTx) error { tx.writes = append(tx.writes, "first"); return nil })
	}()
	<-db.entered // the first batch is committing

	const n = 20
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := g.Do(func(_ context.Context, tx *fakeTx) error {
				tx.writes = append(tx.writes, "w")
				return nil
			})
			if err == nil {
				// Acknowledged only once durable.
				db.mu.Lock()
				defer db.mu.Unlock()
				if len(db.committed) < 2 {
					err = errors.New("returned before its write committed")
				}
			}
			errs <- err
		}()
	}
	// Every write is queued behind the first batch before it commits.
	require.Eventually(t, func() bool { return audit.GroupQueued(g) == n }, groupDeadline, groupTick)
	close(db.gate)
	require.NoError(t, <-firstDone)
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	assert.Len(t, db.committed, n+1)
	assert.Equal(t, 2, db.txs, "the writes queued behind the first batch commit in one transaction")
}

// TestGroupFailsOnlyTheBadWrite: a batch that fails is retried write by
// write, so one failing write fails only its own caller.
func TestGroupFailsOnlyTheBadWrite(t *testing.T) {
	db := &fakeDB{gate: make(chan struct{}), entered: make(chan struct{})}
	g := audit.NewGroup[*fakeTx](db, 0)
	go func() { _ = g.Do(func(context.Context, *fakeTx) error { return nil }) }()
	<-db.entered
	boom := errors.New("boom")
	var wg sync.WaitGroup
	results := make([]error, 3)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = g.Do(func(_ context.Context, tx *fakeTx) error {
				if i == 1 {
					return boom
				}
				tx.writes = append(tx.writes, "ok")
				return nil
			})
		}()
	}
	require.Eventually(t, func() bool { return audit.GroupQueued(g) == 3 }, groupDeadline, groupTick)
	close(db.gate)
	wg.Wait()
	assert.NoError(t, results[0])
	assert.ErrorIs(t, results[1], boom)
	assert.NoError(t, results[2])
	assert.Equal(t, []string{"ok", "ok"}, db.committed)
}

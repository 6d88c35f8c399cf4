package audit_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/audit"
	"github.com/perfectpay/perfectpay/store"
	"github.com/perfectpay/perfectpay/store/pgtest"
	"github.com/perfectpay/perfectpay/store/postgres"
)

func appendN(t *testing.T, db store.Runner[audit.Repo], n int, at time.Time) {
	for i := range n {
		require.NoError(t, db.InTx(context.Background(), func(tx audit.Repo) error {
			return audit.Append(context.Background(), tx, &audit.Entry{ActorType: audit.ActorSystem, Action: "thing.changed",
				Target: fmt.Sprintf("obj_%d", i), CreatedAt: at, Data: []byte(`{"n":` + fmt.Sprint(i) + `}`)})
		}))
	}
}

// TestRetentionSignsWhatItRemoved: retention removes old entries under a
// signed retention record, so the rest (and a checkpoint held outside the
// database from before the removal) still verifies, while the same
// removal without the record, or with the record altered, does not.
func TestRetentionSignsWhatItRemoved(t *testing.T) {
	eachBackend(t, func(t *testing.T, open func(t *testing.T) backend) {
		ctx := context.Background()
		b := open(t)
		svc := audit.NewService(b.db, 30*24*time.Hour, nil)
		now := time.Now()
		appendN(t, b.db, 10, now.Add(-40*24*time.Hour))
		_, err := svc.SealAll(ctx)
		require.NoError(t, err)
		_, err = svc.Prune(ctx, now)
		require.ErrorIs(t, err, audit.ErrNoKey, "retention without the key would remove history unsigned")
		require.NoError(t, svc.UseKeys(ctx, newSealer(t)))
		ex, err := svc.ExportCheckpoint(ctx) // position 11: the key's creation
		require.NoError(t, err)
		_, ks, err := audit.ParseExport(mustJSON(t, ex))
		require.NoError(t, err)
		opts := audit.VerifyOptions{Checkpoint: ex.Checkpoint, Keys: ks}
		appendN(t, b.db, 5, now.Add(-time.Hour))
		_, err = svc.SealAll(ctx)
		require.NoError(t, err)

		n, err := svc.Prune(ctx, now)
		require.NoError(t, err)
		assert.Equal(t, 10, n)
		res, err := svc.VerifyWith(ctx, opts)
		require.NoError(t, err)
		require.True(t, res.OK, res.Problem)
		assert.Equal(t, int64(6), res.Checked, "the key's creation and 5 entries")
		assert.Equal(t, 1, res.Unsealed, "the prune's own entry")
		assert.Equal(t, 1, res.Retentions)

		// Deleting an entry after the anchor is still detected.
		b.tables.del(t, byPos(t, b.tables, 13).Seq)
		res, err = svc.VerifyWith(ctx, opts)
		require.NoError(t, err)
		assert.False(t, res.OK)
		assert.Equal(t, int64(13), res.BadPos)

		// The anchor without its signed record is a prefix deletion.
		b.tables.deleteRetention(t)
		res, err = svc.VerifyWith(ctx, opts)
		require.NoError(t, err)
		assert.False(t, res.OK)
		assert.Contains(t, res.Problem, "prefix deleted")
		assert.Equal(t, int64(10), res.BadPos)
	})
}

// TestRetentionRecordCannotBeStretched: moving the anchor further than the
// signed record says is a prefix deletion; a record signed by another key
// is refused.
func TestRetentionRecordCannotBeStretched(t *testing.T) {
	eachBackend(t, func(t *testing.T, open func(t *testing.T) backend) {
		ctx := context.Background()
		b := open(t)
		svc := audit.NewService(b.db, 30*24*time.Hour, nil)
		now := time.Now()
		appendN(t, b.db, 10, now.Add(-40*24*time.Hour))
		appendN(t, b.db, 10, now.Add(-time.Hour))
		require.NoError(t, svc.UseKeys(ctx, newSealer(t)))
		_, err := svc.SealAll(ctx)
		require.NoError(t, err)
		n, err := svc.Prune(ctx, now)
		require.NoError(t, err)
		require.Equal(t, 10, n)
		ks, err := svc.Keys(ctx)
		require.NoError(t, err)

		last := byPos(t, b.tables, 15)
		for _, e := range b.tables.rows(t) {
			if e.ChainPos <= 15 {
				b.tables.del(t, e.Seq)
			}
		}
		b.tables.setAnchor(t, audit.Anchor{ChainPos: 15, Hash: last.Hash})
		b.tables.setStripe(t, 1, 22, 15)
		res, err := svc.VerifyWith(ctx, audit.VerifyOptions{Keys: ks})
		require.NoError(t, err)
		assert.False(t, res.OK)
		assert.Contains(t, res.Problem, "prefix deleted: the chain starts after position 15, but signed retention records removed entries up to position 10 only")
	})
}

// TestPostgresConcurrentAppendAndSeal appends from many goroutines while
// sealers race; every entry ends up in one verifiable chain.
func TestPostgresConcurrentAppendAndSeal(t *testing.T) {
	pg := pgtest.NewStore(t)
	db := store.Bind(pg, func(x *postgres.Tx) audit.Repo { return x })
	svc := audit.NewService(db, 0, nil)
	ctx, cancel := context.WithCancel(context.Background())
	require.NoError(t, svc.UseKeys(context.Background(), newSealer(t)))
	// Each sealer reports the first error that is not its cancellation;
	// racing sealers resolve their conflicts inside SealAll.
	done := make(chan error, 2)
	for range 2 {
		go func() {
			for ctx.Err() == nil {
				if _, err := svc.SealAll(ctx); err != nil && ctx.Err() == nil {
					done <- err
					return
				}
				if _, err := svc.Checkpoint(ctx, false); err != nil && ctx.Err() == nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
	}
	errs := make(chan error, 8)
	for range 8 {
		go func() {
			var err error
			for i := 0; i < 25 && err == nil; i++ {
				err = db.InTx(context.Background(), func(tx audit.Repo) error {
					return audit.Append(context.Background(), tx, &audit.Entry{ActorType: audit.ActorSystem, Action: "a"})
				})
			}
			errs <- err
		}()
	}
	for range 8 {
		require.NoError(t, <-errs)
	}
	cancel()
	require.NoError(t, <-done, "sealer")
	require.NoError(t, <-done, "sealer")
	// Appends that committed while a sealer was mid-batch are sealed by a
	// later batch: poll until everything is sealed.
	_, err := svc.SealAll(context.Background())
	require.NoError(t, err)
	// How many checkpoints the racing sealers signed depends on timing;
	// one more now makes the last one cover the whole chain.
	_, err = svc.Checkpoint(context.Background(), false)
	require.NoError(t, err)
	res, err := svc.Verify(context.Background())
	require.NoError(t, err)
	require.True(t, res.OK, res.Problem)
	assert.Equal(t, 0, res.Unsealed)
	assert.Equal(t, int64(201), res.Checked, "200 appends and the key's creation")
	assert.Positive(t, res.Checkpoints)
}

// TestFirstKeyAdoptsEarlierRetention: history removed before the log had
// a key is adopted once, by the first key; after that, an anchor moved
// without a signed record is a prefix deletion even across a key change.
func TestFirstKeyAdoptsEarlierRetention(t *testing.T) {
	eachBackend(t, func(t *testing.T, open func(t *testing.T) backend) {
		ctx := context.Background()
		b := open(t)
		svc := audit.NewService(b.db, 0, nil)
		appendN(t, b.db, 10, time.Now())
		_, err := svc.SealAll(ctx)
		require.NoError(t, err)
		// Retention as it was before records were signed.
		last := byPos(t, b.tables, 5)
		for _, e := range b.tables.rows(t) {
			if e.ChainPos <= 5 {
				b.tables.del(t, e.Seq)
			}
		}
		b.tables.setAnchor(t, audit.Anchor{ChainPos: 5, Hash: last.Hash})
		b.tables.setStripe(t, 1, 10, 5)

		require.NoError(t, svc.UseKeys(ctx, newSealer(t)))
		_, err = svc.SealAll(ctx)
		require.NoError(t, err)
		res, err := svc.Verify(ctx)
		require.NoError(t, err)
		require.True(t, res.OK, res.Problem)
		assert.Equal(t, 1, res.Retentions)

		// A later key (the KEK changed) adopts nothing.
		last = byPos(t, b.tables, 7)
		for _, e := range b.tables.rows(t) {
			if e.ChainPos <= 7 {
				b.tables.del(t, e.Seq)
			}
		}
		b.tables.setAnchor(t, audit.Anchor{ChainPos: 7, Hash: last.Hash})
		b.tables.setStripe(t, 1, 11, 7)
		b.tables.deleteRetention(t)
		require.NoError(t, audit.NewService(b.db, 0, nil).UseKeys(ctx, newSealer(t)))
		res, err = svc.Verify(ctx)
		require.NoError(t, err)
		assert.False(t, res.OK)
		assert.Contains(t, res.Problem, "prefix deleted")
	})
}

// TestSealerSignsCheckpointsWhileAppendsContinue: the background sealer
// keeps signing the moving head while writers never stop, and every
// checkpoint it signed verifies against the chain.
func TestSealerSignsCheckpointsWhileAppendsContinue(t *testing.T) {
	eachBackend(t, func(t *testing.T, open func(t *testing.T) backend) {
		b := open(t)
		svc := audit.NewService(b.db, 0, nil)
		svc.SetCheckpointInterval(40 * time.Millisecond)
		require.NoError(t, svc.UseKeys(context.Background(), newSealer(t)))
		ctx, cancel := context.WithCancel(context.Background())
		sealerDone := make(chan struct{})
		go func() { svc.RunSealer(ctx, 10*time.Millisecond); close(sealerDone) }()
		writerDone := make(chan error, 1)
		go func() {
			for ctx.Err() == nil {
				if err := b.db.InTx(context.Background(), func(tx audit.Repo) error {
					return audit.Append(context.Background(), tx, &audit.Entry{ActorType: audit.ActorSystem, Action: "busy"})
				}); err != nil {
					writerDone <- err
					return
				}
			}
			writerDone <- nil
		}()
		// Wait (generously) until the sealer signed three heads beyond the
		// first, while the writer kept writing.
		var res audit.VerifyResult
		deadline := time.Now().Add(60 * time.Second)
		for res.Checkpoints < 4 && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
			var err error
			res, err = svc.Verify(context.Background())
			require.NoError(t, err)
			require.True(t, res.OK, res.Problem)
		}
		cancel()
		<-sealerDone
		require.NoError(t, <-writerDone)
		assert.GreaterOrEqual(t, res.Checkpoints, 4, "the sealer signed the moving head again and again")
	})
}

// TestNodesStartingTogetherShareOneKey: nodes that start at once under
// the same KEK end up with one audit key, and both sign with it.
func TestNodesStartingTogetherShareOneKey(t *testing.T) {
	pg := pgtest.NewStore(t)
	db := store.Bind(pg, func(x *postgres.Tx) audit.Repo { return x })
	sealer := newSealer(t)
	nodes := []*audit.Service{audit.NewService(db, 0, nil), audit.NewService(db, 0, nil), audit.NewService(db, 0, nil)}
	errs := make(chan error, len(nodes))
	for _, n := range nodes {
		go func() { errs <- n.UseKeys(context.Background(), sealer) }()
	}
	for range nodes {
		require.NoError(t, <-errs)
	}
	ks, err := nodes[0].Keys(context.Background())
	require.NoError(t, err)
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	require.NoError(t, json.Unmarshal(ks.JSON(), &set))
	assert.Len(t, set.Keys, 1)
	appendN(t, db, 3, time.Now())
	for _, n := range nodes {
		_, err := n.SealAll(context.Background())
		require.NoError(t, err)
		_, err = n.Checkpoint(context.Background(), true)
		require.NoError(t, err)
	}
	res, err := nodes[1].VerifyWith(context.Background(), audit.VerifyOptions{Keys: ks})
	require.NoError(t, err)
	require.True(t, res.OK, res.Problem)
	assert.Equal(t, 3, res.Checkpoints)
}

// TestAppendsDoNotWaitForEachOther: an append in a transaction that stays
// open does not hold up another append: it takes another stripe. (A
// shared counter held until commit would block the second append until
// the first transaction ends, and this test would report it.)
func TestAppendsDoNotWaitForEachOther(t *testing.T) {
	pg := pgtest.NewStore(t)
	db := store.Bind(pg, func(x *postgres.Tx) audit.Repo { return x })
	ctx := context.Background()
	var first, second audit.Entry
	secondDone := make(chan error, 1)
	err := db.InTx(ctx, func(tx audit.Repo) error {
		first = audit.Entry{ActorType: audit.ActorSystem, Action: "long.transaction"}
		if err := audit.Append(ctx, tx, &first); err != nil {
			return err
		}
		// A read sends the queued append: its stripe is held from here on.
		if _, err := tx.AuditStripes(ctx); err != nil {
			return err
		}
		go func() {
			secondDone <- db.InTx(ctx, func(tx audit.Repo) error {
				second = audit.Entry{ActorType: audit.ActorSystem, Action: "meanwhile"}
				return audit.Append(ctx, tx, &second)
			})
		}()
		select {
		case err := <-secondDone:
			return err
		case <-time.After(60 * time.Second):
			return errors.New("the second append waited for the first transaction to end")
		}
	})
	require.NoError(t, err)
	assert.NotEqual(t, first.Stripe, second.Stripe)
	assert.Equal(t, int64(1), first.StripeSeq)
	assert.Equal(t, int64(1), second.StripeSeq)
	svc := audit.NewService(db, 0, nil)
	_, err = svc.SealAll(ctx)
	require.NoError(t, err)
	res, err := svc.Verify(ctx)
	require.NoError(t, err)
	assert.True(t, res.OK, res.Problem)
}

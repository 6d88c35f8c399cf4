package audit_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/audit"
	"github.com/perfectpay/perfectpay/store"
	"github.com/perfectpay/perfectpay/store/memory"
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

func TestRetentionKeepsTheRestVerifiable(t *testing.T) {
	m := memory.New()
	db := store.Bind(m, func(x *memory.Tx) audit.Repo { return x })
	svc := audit.NewService(db, 30*24*time.Hour, nil)
	now := time.Now()
	appendN(t, db, 10, now.Add(-40*24*time.Hour))
	appendN(t, db, 5, now.Add(-time.Hour))
	_, err := svc.SealAll(context.Background())
	require.NoError(t, err)

	n, err := svc.Prune(context.Background(), now)
	require.NoError(t, err)
	assert.Equal(t, 10, n)
	res, err := svc.Verify(context.Background())
	require.NoError(t, err)
	assert.True(t, res.OK, res.Problem)
	assert.Equal(t, int64(5), res.Checked)

	// Deleting an entry after the anchor is still detected.
	m.TamperAudit(13, func(e *audit.Entry) { *e = audit.Entry{} })
	res, err = svc.Verify(context.Background())
	require.NoError(t, err)
	assert.False(t, res.OK)
	assert.Equal(t, int64(13), res.BadPos)
}

func TestMemoryTamperDetected(t *testing.T) {
	m := memory.New()
	db := store.Bind(m, func(x *memory.Tx) audit.Repo { return x })
	svc := audit.NewService(db, 0, nil)
	appendN(t, db, 8, time.Now())
	_, err := svc.SealAll(context.Background())
	require.NoError(t, err)
	m.TamperAudit(4, func(e *audit.Entry) { e.Action = "nothing.happened" })
	res, err := svc.Verify(context.Background())
	require.NoError(t, err)
	assert.False(t, res.OK)
	assert.Equal(t, int64(4), res.BadPos)
	assert.Contains(t, res.Problem, "edited")
}

// TestPostgresTamperDetected edits, deletes and truncates rows behind the
// application's back and checks verification names the first bad entry.
func TestPostgresTamperDetected(t *testing.T) {
	cases := []struct {
		name    string
		sql     string
		badPos  int64
		problem string
	}{
		{"edit action", `UPDATE audit_events SET action = 'x' WHERE chain_pos = 7`, 7, "edited"},
		{"edit data", `UPDATE audit_events SET data = '{"n":99}' WHERE chain_pos = 3`, 3, "edited"},
		{"edit time", `UPDATE audit_events SET created_at = created_at - interval '1 day' WHERE chain_pos = 12`, 12, "edited"},
		{"delete middle", `DELETE FROM audit_events WHERE chain_pos = 9`, 9, "missing"},
		{"delete tail", `DELETE FROM audit_events WHERE chain_pos = 20`, 20, "deleted"},
		{"relink one", `UPDATE audit_events SET prev_hash = sha256(prev_hash) WHERE chain_pos = 5`, 5, "prev_hash"},
		{"forge hash", `UPDATE audit_events SET hash = sha256(hash) WHERE chain_pos = 15`, 15, "link hash"},
		{"swap order", `DO $$ BEGIN
			UPDATE audit_events SET chain_pos = -10 WHERE chain_pos = 10;
			UPDATE audit_events SET chain_pos = 10 WHERE chain_pos = 11;
			UPDATE audit_events SET chain_pos = 11 WHERE chain_pos = -10;
		END $$`, 10, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pg := pgtest.NewStore(t)
			db := store.Bind(pg, func(x *postgres.Tx) audit.Repo { return x })
			svc := audit.NewService(db, 0, nil)
			appendN(t, db, 20, time.Now())
			_, err := svc.SealAll(context.Background())
			require.NoError(t, err)
			res, err := svc.Verify(context.Background())
			require.NoError(t, err)
			require.True(t, res.OK, res.Problem)

			_, err = pg.Pool().Exec(context.Background(), tc.sql)
			require.NoError(t, err)
			res, err = svc.Verify(context.Background())
			require.NoError(t, err)
			assert.False(t, res.OK)
			assert.Equal(t, tc.badPos, res.BadPos, res.Problem)
			assert.Contains(t, res.Problem, tc.problem)
		})
	}
}

// TestPostgresConcurrentAppendAndSeal appends from many goroutines while
// sealers race; every entry ends up in one verifiable chain.
func TestPostgresConcurrentAppendAndSeal(t *testing.T) {
	pg := pgtest.NewStore(t)
	db := store.Bind(pg, func(x *postgres.Tx) audit.Repo { return x })
	svc := audit.NewService(db, 0, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	for range 2 {
		go func() {
			for ctx.Err() == nil {
				_, _ = svc.SealAll(ctx)
			}
			done <- struct{}{}
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
	<-done
	<-done
	// Appends that committed while a sealer was mid-batch are sealed by a
	// later batch: poll until everything is sealed.
	var res audit.VerifyResult
	require.Eventually(t, func() bool {
		_, err := svc.SealAll(context.Background())
		require.NoError(t, err)
		res, err = svc.Verify(context.Background())
		require.NoError(t, err)
		require.True(t, res.OK, res.Problem)
		return res.Unsealed == 0
	}, 20*time.Second, 50*time.Millisecond)
	assert.Equal(t, int64(200), res.Checked)
}

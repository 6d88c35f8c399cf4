package postgres_test

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/charging"
	"github.com/perfectpay/perfectpay/store/pgtest"
	"github.com/perfectpay/perfectpay/store/postgres"
)

// TestPrefetch: reads sent in one pipeline each get their own statement's
// result, in a transaction and on Autocommit; a read that sends nothing
// runs as is, and a read that needs a second statement (the first told it
// to go on) runs again, whole, after the pipeline, with the right answers.
func TestPrefetch(t *testing.T) {
	s := pgtest.NewStore(t)
	ctx := context.Background()
	one := func(tx charging.Tx, sql string, out *int) error {
		return tx.(*postgres.Tx).Conn().QueryRow(ctx, sql).Scan(out)
	}
	run := func(tx *postgres.Tx) (a, b, c, twice int, none bool, err error) {
		errNone := errors.New("no statement")
		err = tx.Prefetch(ctx,
			func(tx charging.Tx) error { return one(tx, `SELECT 1`, &a) },
			func(tx charging.Tx) error { none = true; return nil },
			func(tx charging.Tx) error {
				var first int
				if err := one(tx, `SELECT 20`, &first); err != nil {
					return err
				}
				return one(tx, `SELECT 2 + 20`, &b) // a second statement: run again after the pipeline
			},
			func(tx charging.Tx) error { twice++; return one(tx, `SELECT 3`, &c) },
		)
		if !none {
			err = errNone
		}
		return
	}
	check := func(a, b, c, twice int, none bool, err error) {
		require.NoError(t, err)
		assert.Equal(t, 1, a)
		assert.Equal(t, 22, b)
		assert.Equal(t, 3, c)
		assert.Equal(t, 2, twice, "recorded once, answered once")
		assert.True(t, none)
	}
	require.NoError(t, s.InTx(ctx, func(tx *postgres.Tx) error {
		check(run(tx))
		return nil
	}))
	require.NoError(t, s.Autocommit(ctx, func(tx *postgres.Tx) error {
		check(run(tx))
		return nil
	}))

	// The first error of the reads, in their order.
	boom := errors.New("boom")
	err := s.InTx(ctx, func(tx *postgres.Tx) error {
		return tx.Prefetch(ctx,
			func(tx charging.Tx) error { var n int; return one(tx, `SELECT 1`, &n) },
			func(charging.Tx) error { return boom },
		)
	})
	require.ErrorIs(t, err, boom)
}

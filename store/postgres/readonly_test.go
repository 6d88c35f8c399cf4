package postgres_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/store"
	"github.com/perfectpay/perfectpay/store/pgtest"
	"github.com/perfectpay/perfectpay/store/postgres"
)

// A write refused because the server only reads (SQLSTATE 25006: the node
// reached a standby, or a primary being demoted during a failover) is the
// store being unavailable — the write did not happen and may be retried —
// not an internal error.
func TestReadOnlyServerIsErrUnavailable(t *testing.T) {
	ctx := context.Background()
	s := pgtest.NewStore(t)
	err := s.InTx(ctx, func(tx *postgres.Tx) error {
		if _, err := tx.Conn().Exec(ctx, "SET TRANSACTION READ ONLY"); err != nil {
			return err
		}
		_, err := tx.Conn().Exec(ctx, "CREATE TABLE read_only_probe (id int)")
		return err
	})
	require.ErrorIs(t, err, store.ErrUnavailable)
	require.NoError(t, s.Ping(ctx), "the server itself still answers")
}

package storetest

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/fraud"
	"github.com/perfectpay/perfectpay/policies"
	"github.com/perfectpay/perfectpay/store"
)

// testAgentAnomalies: an agent has at most one standing flag, seen only
// under its tenant; a second raise leaves the first; clearing returns and
// deletes it; a rollback undoes a raise and a clear.
func testAgentAnomalies[X Tx](t *testing.T, b store.Backend[X]) {
	ctx := context.Background()
	tn := MakeTenant(t, b)
	other := MakeTenant(t, b)
	at := now()
	first := &fraud.Flag{TenantID: tn.ID, AgentID: "agt_1", RaisedAt: at,
		Anomaly: policies.Anomaly{Metric: "charge_size", Score: 41.5, Message: "a charge far out of line"}}
	in(t, b, func(tx X) error { return tx.RaiseAnomaly(ctx, first) })
	require.ErrorIs(t, b.InTx(ctx, func(tx X) error {
		return tx.RaiseAnomaly(ctx, &fraud.Flag{TenantID: tn.ID, AgentID: "agt_1", RaisedAt: at,
			Anomaly: policies.Anomaly{Metric: "spend_rate", Score: 7}})
	}), store.ErrConflict, "one standing flag per agent")
	require.ErrorIs(t, b.InTx(ctx, func(tx X) error {
		return tx.RaiseAnomaly(ctx, &fraud.Flag{TenantID: "ten_missing", AgentID: "agt_1", RaisedAt: at})
	}), store.ErrNotFound)

	require.NoError(t, b.Autocommit(ctx, func(tx X) error {
		f, err := tx.GetAnomaly(ctx, tn.ID, "agt_1")
		require.NoError(t, err)
		assert.Equal(t, "charge_size", f.Metric, "the first flag stands")
		assert.InDelta(t, 41.5, f.Score, 1e-9)
		assert.Equal(t, "a charge far out of line", f.Message)
		assert.True(t, at.Equal(f.RaisedAt))
		_, err = tx.GetAnomaly(ctx, other.ID, "agt_1")
		require.ErrorIs(t, err, store.ErrNotFound, "another tenant's agent of that id is not flagged")
		_, err = tx.GetAnomaly(ctx, tn.ID, "agt_2")
		require.ErrorIs(t, err, store.ErrNotFound)
		return nil
	}))

	require.ErrorIs(t, b.InTx(ctx, func(tx X) error {
		_, err := tx.ClearAnomaly(ctx, tn.ID, "agt_1")
		require.NoError(t, err)
		return errBoom
	}), errBoom)
	in(t, b, func(tx X) error {
		_, err := tx.ClearAnomaly(ctx, other.ID, "agt_1")
		require.ErrorIs(t, err, store.ErrNotFound, "cleared only under its tenant")
		f, err := tx.ClearAnomaly(ctx, tn.ID, "agt_1")
		require.NoError(t, err, "a rollback restores the flag")
		assert.Equal(t, "charge_size", f.Metric)
		return nil
	})
	in(t, b, func(tx X) error {
		_, err := tx.GetAnomaly(ctx, tn.ID, "agt_1")
		require.ErrorIs(t, err, store.ErrNotFound)
		_, err = tx.ClearAnomaly(ctx, tn.ID, "agt_1")
		require.ErrorIs(t, err, store.ErrNotFound, "nothing left to clear")
		return nil
	})

	require.ErrorIs(t, b.InTx(ctx, func(tx X) error {
		require.NoError(t, tx.RaiseAnomaly(ctx, first))
		return errBoom
	}), errBoom)
	in(t, b, func(tx X) error {
		_, err := tx.GetAnomaly(ctx, tn.ID, "agt_1")
		require.ErrorIs(t, err, store.ErrNotFound, "a rolled back raise leaves nothing")
		return tx.RaiseAnomaly(ctx, first)
	})
}

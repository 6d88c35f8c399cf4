package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/internal/ids"
	"github.com/perfectpay/perfectpay/mandates"
	"github.com/perfectpay/perfectpay/store"
)

// testSavepoint: a failing Savepoint undoes what its function wrote (a
// statement sent at once, a queued insert, a reservation) and nothing
// written before it; a write that fails inside one (a unique conflict)
// fails only it; the transaction goes on and commits the rest.
func testSavepoint[X Tx](t *testing.T, b store.Backend[X]) {
	ctx := context.Background()
	tn := MakeTenant(t, b)
	m := newMandate(tn.ID, 1_000)
	create(t, b, m)
	at := time.Now().UTC().Truncate(time.Microsecond)
	event := func(id string) *mandates.Event {
		return &mandates.Event{ID: id, TenantID: tn.ID, MandateID: m.ID, Type: "test", ActorType: "system", ActorID: "test", CreatedAt: at}
	}
	before, undone, kept := newTenant(), newTenant(), newTenant()
	var errs [3]error
	in(t, b, func(tx X) error {
		if err := tx.CreateTenant(ctx, before); err != nil {
			return err
		}
		if _, err := tx.Reserve(ctx, []string{m.ID}, 100, at); err != nil {
			return err
		}
		errs[0] = tx.Savepoint(ctx, func() error {
			if err := tx.CreateTenant(ctx, undone); err != nil {
				return err
			}
			if err := tx.AppendMandateEvent(ctx, event("mev_undone")); err != nil {
				return err
			}
			if _, err := tx.Reserve(ctx, []string{m.ID}, 300, at); err != nil {
				return err
			}
			return errBoom
		})
		errs[1] = tx.Savepoint(ctx, func() error {
			if err := tx.AppendMandateEvent(ctx, event("mev_kept")); err != nil {
				return err
			}
			return tx.CreateTenant(ctx, before) // taken: a conflict
		})
		errs[2] = tx.Savepoint(ctx, func() error {
			if err := tx.CreateTenant(ctx, kept); err != nil {
				return err
			}
			if err := tx.AppendMandateEvent(ctx, event(ids.New("mev"))); err != nil {
				return err
			}
			_, err := tx.Reserve(ctx, []string{m.ID}, 200, at)
			return err
		})
		return nil
	})
	require.ErrorIs(t, errs[0], errBoom)
	require.ErrorIs(t, errs[1], store.ErrConflict)
	require.NoError(t, errs[2])

	in(t, b, func(tx X) error {
		for _, c := range []struct {
			tn   string
			want bool
		}{{before.ID, true}, {undone.ID, false}, {kept.ID, true}} {
			_, err := tx.GetTenant(ctx, c.tn)
			if c.want {
				assert.NoError(t, err)
			} else {
				assert.ErrorIs(t, err, store.ErrNotFound, "the failed savepoint's tenant is undone")
			}
		}
		evs, _, err := tx.ListMandateEvents(ctx, mandates.EventFilter{TenantID: tn.ID, MandateID: m.ID, Limit: 10})
		require.NoError(t, err)
		assert.Len(t, evs, 1, "only the last savepoint's event is kept")
		return nil
	})
	got := get(t, b, m)
	assert.Equal(t, int64(300), got.Spent, "the reservations before and in the last savepoint, not the undone one")
	assert.Equal(t, int64(2), got.ChargeCount)
}

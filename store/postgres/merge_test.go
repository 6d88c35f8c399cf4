package postgres_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/audit"
	"github.com/perfectpay/perfectpay/authz"
	"github.com/perfectpay/perfectpay/store/pgtest"
	"github.com/perfectpay/perfectpay/store/postgres"
)

// TestMergedRowWrites: token sessions and audit entries a transaction
// queues together are written by one statement per kind. Every entry
// reads back as appended (an entry without an address keeps no salt, one
// without data none), numbered in the order of appending on one stripe
// whose counter was updated once, and every session as created.
func TestMergedRowWrites(t *testing.T) {
	s := pgtest.NewStore(t)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Microsecond)
	entries := []*audit.Entry{
		{ActorType: audit.ActorSystem, Action: "test.first", Target: "t1", IP: "203.0.113.7", Data: []byte(`{"n":1}`), Status: 201},
		{ActorType: audit.ActorUser, ActorID: "usr_1", TenantID: "ten_1", Action: "test.second", Method: "POST", Route: "/x"},
		{ActorType: audit.ActorSystem, Action: "test.third", IP: "198.51.100.1", Data: []byte(`[]`), RequestID: "req_3"},
	}
	var sessions []*authz.TokenSession
	for i, sig := range []string{"sig-a", "sig-b", "sig-c"} {
		sessions = append(sessions, &authz.TokenSession{Kind: authz.KindAccess, Signature: sig, RequestID: "req",
			ClientID: "agt", TenantID: "ten_1", Active: i != 1, Data: []byte(`{}`), CreatedAt: now, ExpiresAt: now.Add(time.Hour)})
	}
	var stripeUpdates, inserted int
	require.NoError(t, s.InTx(ctx, func(tx *postgres.Tx) error {
		for i, e := range entries {
			if err := tx.CreateTokenSession(ctx, sessions[i]); err != nil {
				return err
			}
			if err := audit.Append(ctx, tx, e); err != nil {
				return err
			}
		}
		// This transaction's own counts: the read sends the queued writes first.
		return tx.Conn().QueryRow(ctx, `SELECT
			(SELECT n_tup_upd FROM pg_stat_xact_user_tables WHERE relname = 'audit_stripes'),
			(SELECT n_tup_ins FROM pg_stat_xact_user_tables WHERE relname = 'audit_events')`).Scan(&stripeUpdates, &inserted)
	}))
	assert.Equal(t, 1, stripeUpdates, "one counter update for the batch")
	assert.Equal(t, 3, inserted)

	got := allAudit(t, s)
	require.Len(t, got, 3)
	for i, e := range entries {
		if i > 0 {
			assert.Greater(t, e.Seq, entries[i-1].Seq, "seq in the order of appending")
			assert.Equal(t, entries[i-1].StripeSeq+1, e.StripeSeq, "gap-free, in the order of appending")
			assert.Equal(t, entries[0].Stripe, e.Stripe)
		}
		got[i].CreatedAt = got[i].CreatedAt.UTC() // read back in the local zone
		assert.Equal(t, *e, got[i])
	}
	// The stripe's counter stands at the last number taken.
	require.NoError(t, s.InTx(ctx, func(tx *postgres.Tx) error {
		stripes, err := tx.AuditStripes(ctx)
		for _, st := range stripes {
			if st.ID == entries[2].Stripe {
				assert.Equal(t, entries[2].StripeSeq, st.Next)
			}
		}
		return err
	}))
	assert.Nil(t, got[1].IPSalt)
	assert.Nil(t, got[1].Data)

	for _, want := range sessions {
		require.NoError(t, s.InTx(ctx, func(tx *postgres.Tx) error {
			ts, err := tx.GetTokenSession(ctx, want.Kind, want.Signature)
			if err == nil {
				assert.Equal(t, want.Active, ts.Active, want.Signature)
				assert.True(t, want.ExpiresAt.Equal(ts.ExpiresAt))
				assert.Equal(t, want.TenantID, ts.TenantID)
			}
			return err
		}))
	}
}

// TestMergedRowsStayInTheirSavepoint: an entry appended in a savepoint is
// not merged with one queued before the savepoint began, so rolling the
// savepoint back removes it and keeps the other.
func TestMergedRowsStayInTheirSavepoint(t *testing.T) {
	s := pgtest.NewStore(t)
	ctx := context.Background()
	boom := errors.New("boom")
	require.NoError(t, s.InTx(ctx, func(tx *postgres.Tx) error {
		if err := audit.Append(ctx, tx, &audit.Entry{ActorType: audit.ActorSystem, Action: "test.kept"}); err != nil {
			return err
		}
		err := tx.Savepoint(ctx, func() error {
			if err := audit.Append(ctx, tx, &audit.Entry{ActorType: audit.ActorSystem, Action: "test.undone"}); err != nil {
				return err
			}
			// A read sends what is queued (the entry before the savepoint,
			// SAVEPOINT, this entry) before the member fails.
			var n int
			if err := tx.Conn().QueryRow(ctx, `SELECT 1`).Scan(&n); err != nil {
				return err
			}
			return boom
		})
		require.ErrorIs(t, err, boom)
		return nil
	}))
	got := allAudit(t, s)
	require.Len(t, got, 1)
	assert.Equal(t, "test.kept", got[0].Action)
}

// allAudit reads every audit entry of s.
func allAudit(t *testing.T, s *postgres.Store) []audit.Entry {
	var got []audit.Entry
	require.NoError(t, s.InTx(context.Background(), func(tx *postgres.Tx) error {
		var err error
		got, err = tx.ListAudit(context.Background(), audit.Filter{})
		return err
	}))
	return got
}

// TestMergedRowsOnANewStripe: when no stripe is free the merged append
// adds one, numbers its entries from 1 in their order, and the next batch
// goes on from there.
func TestMergedRowsOnANewStripe(t *testing.T) {
	s := pgtest.NewStore(t)
	ctx := context.Background()
	require.NoError(t, s.InTx(ctx, func(tx *postgres.Tx) error {
		_, err := tx.Conn().Exec(ctx, `DELETE FROM audit_stripes`)
		return err
	}))
	var nums []int64
	for range 2 {
		entries := []*audit.Entry{{ActorType: audit.ActorSystem, Action: "test.a"}, {ActorType: audit.ActorSystem, Action: "test.b"}}
		require.NoError(t, s.InTx(ctx, func(tx *postgres.Tx) error {
			for _, e := range entries {
				if err := audit.Append(ctx, tx, e); err != nil {
					return err
				}
			}
			return nil
		}))
		for _, e := range entries {
			nums = append(nums, e.StripeSeq)
			assert.Equal(t, entries[0].Stripe, e.Stripe)
		}
	}
	assert.Equal(t, []int64{1, 2, 3, 4}, nums)
}

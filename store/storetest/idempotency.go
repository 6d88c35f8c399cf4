package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/idempotency"
	"github.com/perfectpay/perfectpay/store"
)

// testIdempotencyAbandon: a late release removes a claim only while it is
// still the claim it made, never one another request took over since; the
// store, not the caller, names the owner.
func testIdempotencyAbandon[X Tx](t *testing.T, b store.Backend[X]) {
	ctx := context.Background()
	first := &idempotency.Record{TenantID: "ten_1", CredentialID: "key_1", Key: "ab", Method: "POST", Path: "/v1/x",
		RequestHash: []byte{1}, State: idempotency.StateInProgress, CreatedAt: now().Add(-time.Minute),
		LockedUntil: now().Add(-time.Second), ExpiresAt: now().Add(time.Hour), Owner: "forged"}
	in(t, b, func(tx X) error { _, err := tx.ClaimIdempotency(ctx, first); return err })
	// The lock lapsed: another request takes the claim over.
	taken := *first
	taken.CreatedAt, taken.LockedUntil = now(), now().Add(time.Hour)
	in(t, b, func(tx X) error { _, err := tx.ClaimIdempotency(ctx, &taken); return err })

	// The first request's late release leaves the new claim alone.
	in(t, b, func(tx X) error { return tx.AbandonIdempotency(ctx, first) })
	_ = b.InTx(ctx, func(tx X) error {
		probe := taken
		probe.CreatedAt = now()
		old, err := tx.ClaimIdempotency(ctx, &probe)
		require.ErrorIs(t, err, store.ErrConflict)
		assert.True(t, old.CreatedAt.Equal(taken.CreatedAt))
		assert.NotEqual(t, "forged", old.Owner, "the owner is the store's session, not the caller's")
		return nil
	})
	// A completed record is never abandoned.
	done := taken
	done.State, done.Status, done.Body = idempotency.StateDone, 200, []byte(`{}`)
	in(t, b, func(tx X) error { return tx.CompleteIdempotency(ctx, &done) })
	in(t, b, func(tx X) error { return tx.AbandonIdempotency(ctx, &taken) })
	_ = b.InTx(ctx, func(tx X) error {
		old, err := tx.ClaimIdempotency(ctx, &taken)
		require.ErrorIs(t, err, store.ErrConflict)
		assert.Equal(t, idempotency.StateDone, old.State)
		return nil
	})

	// Its own claim, released by the request that made it, is gone.
	own := *first
	own.Key, own.CreatedAt, own.LockedUntil = "ab2", now(), now().Add(time.Hour)
	in(t, b, func(tx X) error { _, err := tx.ClaimIdempotency(ctx, &own); return err })
	in(t, b, func(tx X) error { return tx.AbandonIdempotency(ctx, &own) })
	in(t, b, func(tx X) error { _, err := tx.ClaimIdempotency(ctx, &own); return err })
}

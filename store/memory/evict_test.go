package memory_test

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/authz"
	"github.com/perfectpay/perfectpay/idempotency"
	"github.com/perfectpay/perfectpay/store/memory"
)

// fill writes n token sessions, one-time identifiers, token revocations
// and idempotency records that all expire at exp.
func fill(t *testing.T, s *memory.Store, prefix string, n int, exp time.Time) {
	ctx := context.Background()
	require.NoError(t, s.InTx(ctx, func(tx *memory.Tx) error {
		for i := range n {
			id := prefix + strconv.Itoa(i)
			if err := tx.CreateTokenSession(ctx, &authz.TokenSession{Kind: authz.KindAccess, Signature: id, RequestID: id,
				ClientID: "agt", TenantID: "ten", Active: true, CreatedAt: exp.Add(-5 * time.Minute), ExpiresAt: exp}); err != nil {
				return err
			}
			if err := tx.UseJTI(ctx, "dpop", id, exp); err != nil {
				return err
			}
			e := exp
			if err := tx.Revoke(ctx, &authz.Revocation{Kind: authz.RevokedToken, ID: id, TenantID: "ten", Reason: "revoked",
				RevokedAt: exp.Add(-time.Minute), ExpiresAt: &e}); err != nil {
				return err
			}
			if _, err := tx.ClaimIdempotency(ctx, &idempotency.Record{TenantID: "ten", CredentialID: "key", Key: id,
				Method: "POST", Path: "/v1/x", State: idempotency.StateInProgress, CreatedAt: exp.Add(-time.Hour),
				LockedUntil: exp, ExpiresAt: exp}); err != nil {
				return err
			}
		}
		return nil
	}))
}

func prune(t *testing.T, s *memory.Store, before time.Time) int {
	ctx := context.Background()
	n := 0
	require.NoError(t, s.InTx(ctx, func(tx *memory.Tx) error {
		a, err := tx.PruneAuthz(ctx, before)
		if err != nil {
			return err
		}
		b, err := tx.PruneIdempotency(ctx, before)
		n = a + b
		return err
	}))
	return n
}

// TestEvictionEmptiesTheStore: after everything expired and a sweep ran,
// the memory store holds no token session, one-time identifier, token
// revocation or idempotency record, and its expiry indexes are empty too.
// Before the expiry the same sweep evicts nothing.
func TestEvictionEmptiesTheStore(t *testing.T) {
	s := memory.New()
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC) // a fake clock: nothing here reads the real one
	fill(t, s, "a", 500, t0.Add(5*time.Minute))
	fill(t, s, "b", 500, t0.Add(10*time.Minute))
	full := memory.Counts{Tokens: 1000, JTIs: 1000, Revocations: 1000, Idempotency: 1000, Indexed: 4000}
	require.Equal(t, full, s.Counts())

	require.Zero(t, prune(t, s, t0.Add(5*time.Minute)), "a sweep before the expiry evicted something")
	require.Equal(t, full, s.Counts())

	require.Equal(t, 4*500, prune(t, s, t0.Add(5*time.Minute+time.Second)))
	half := memory.Counts{Tokens: 500, JTIs: 500, Revocations: 500, Idempotency: 500, Indexed: 2000}
	require.Equal(t, half, s.Counts(), "the sweep evicted more or less than what expired")

	require.Equal(t, 4*500, prune(t, s, t0.Add(time.Hour)))
	require.Equal(t, memory.Counts{}, s.Counts(), "expired rows or index entries were left behind")
}

// TestEvictionRollsBack: a sweep in a transaction that fails evicts
// nothing, and the next sweep still finds every expired row.
func TestEvictionRollsBack(t *testing.T) {
	s := memory.New()
	ctx := context.Background()
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	fill(t, s, "a", 100, t0)
	before := s.Counts()
	boom := errors.New("boom")
	err := s.InTx(ctx, func(tx *memory.Tx) error {
		if _, err := tx.PruneAuthz(ctx, t0.Add(time.Hour)); err != nil {
			return err
		}
		if _, err := tx.PruneIdempotency(ctx, t0.Add(time.Hour)); err != nil {
			return err
		}
		return boom
	})
	require.ErrorIs(t, err, boom)
	require.Equal(t, before, s.Counts())
	require.Equal(t, 400, prune(t, s, t0.Add(time.Hour)))
	require.Equal(t, memory.Counts{}, s.Counts())
}

// TestEvictionKeepsRenewedRows: a one-time identifier recorded again after
// it expired, with a later expiry, survives the sweep of the first expiry
// and goes with its own.
func TestEvictionKeepsRenewedRows(t *testing.T) {
	s := memory.New()
	ctx := context.Background()
	past := time.Now().Add(-time.Hour) // UseJTI compares with the real clock: make the first use long expired
	require.NoError(t, s.InTx(ctx, func(tx *memory.Tx) error { return tx.UseJTI(ctx, "dpop", "j", past) }))
	later := time.Now().Add(time.Hour)
	require.NoError(t, s.InTx(ctx, func(tx *memory.Tx) error { return tx.UseJTI(ctx, "dpop", "j", later) }))
	require.Zero(t, prune(t, s, past.Add(time.Second)))
	require.Equal(t, 1, s.Counts().JTIs)
	require.Equal(t, 1, prune(t, s, later.Add(time.Second)))
	require.Equal(t, memory.Counts{}, s.Counts())
}

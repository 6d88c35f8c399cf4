package storetest

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/internal/ids"
	"github.com/perfectpay/perfectpay/payments"
	"github.com/perfectpay/perfectpay/store"
	"github.com/perfectpay/perfectpay/vault"
)

// newSimulated is a simulated acquirer keeping its ledger in b.
func newSimulated[X Tx](b store.Backend[X], cfg payments.SimulatedConfig) *payments.Simulated {
	return payments.NewSimulated(cfg, store.Bind(b, func(x X) payments.AcquirerRepo { return x }))
}

// testAcquirerLedger: the repository itself.
func testAcquirerLedger[X Tx](t *testing.T, b store.Backend[X]) {
	ctx := context.Background()
	ref := "ch_" + ids.Random(12)
	a := payments.SimAuth{Result: payments.Result{Approved: true, AuthCode: "A1B2C3"}, Amount: 5000}
	in(t, b, func(tx X) error {
		_, err := tx.SimAuthorization(ctx, ref)
		require.ErrorIs(t, err, store.ErrNotFound)
		require.ErrorIs(t, tx.UpdateSimAuthorization(ctx, ref, a), store.ErrNotFound)
		return tx.CreateSimAuthorization(ctx, ref, a)
	})
	in(t, b, func(tx X) error {
		require.ErrorIs(t, tx.CreateSimAuthorization(ctx, ref, payments.SimAuth{Amount: 1}), store.ErrConflict)
		got, err := tx.SimAuthorization(ctx, ref)
		require.NoError(t, err)
		assert.Equal(t, a, *got)
		changed := *got
		changed.Captured, changed.Refunded, changed.Voided = 5000, 1000, false
		changed.Amount, changed.Result = 1, payments.Result{DeclineCode: "forged"}
		return tx.UpdateSimAuthorization(ctx, ref, changed)
	})
	in(t, b, func(tx X) error {
		got, err := tx.SimAuthorization(ctx, ref)
		require.NoError(t, err)
		assert.Equal(t, payments.SimAuth{Result: a.Result, Amount: 5000, Captured: 5000, Refunded: 1000}, *got,
			"an update changes captured, refunded and voided only")
		return nil
	})

	rf := payments.SimRefund{ChargeRef: ref, Amount: 1000, Result: payments.Result{Approved: true}}
	refRef := "re_" + ids.Random(12)
	in(t, b, func(tx X) error {
		_, err := tx.SimRefund(ctx, refRef)
		require.ErrorIs(t, err, store.ErrNotFound)
		return tx.CreateSimRefund(ctx, refRef, rf)
	})
	in(t, b, func(tx X) error {
		require.ErrorIs(t, tx.CreateSimRefund(ctx, refRef, rf), store.ErrConflict)
		got, err := tx.SimRefund(ctx, refRef)
		require.NoError(t, err)
		assert.Equal(t, rf, *got)
		return nil
	})

	// A failed transaction leaves nothing behind.
	other := "ch_" + ids.Random(12)
	err := b.InTx(ctx, func(tx X) error {
		require.NoError(t, tx.CreateSimAuthorization(ctx, other, a))
		require.NoError(t, tx.CreateSimRefund(ctx, "re_"+other, rf))
		return errBoom
	})
	require.ErrorIs(t, err, errBoom)
	in(t, b, func(tx X) error {
		_, err := tx.SimAuthorization(ctx, other)
		require.ErrorIs(t, err, store.ErrNotFound)
		_, err = tx.SimRefund(ctx, "re_"+other)
		require.ErrorIs(t, err, store.ErrNotFound)
		return nil
	})
}

// testAcquirerShared: two nodes' acquirers on one store are one acquirer:
// either captures, voids or refunds what the other authorized, and racing
// refunds from both never refund more than was captured.
func testAcquirerShared[X Tx](t *testing.T, b store.Backend[X]) {
	ctx := context.Background()
	nodeA := newSimulated(b, payments.SimulatedConfig{})
	nodeB := newSimulated(b, payments.SimulatedConfig{})
	card := &vault.Card{Number: "4242424242424242", ExpMonth: 12, ExpYear: 2040}

	// Authorized on A, captured on B, refunded on B then again on A.
	ref := "ch_" + ids.Random(12)
	res, err := nodeA.Authorize(ctx, payments.AuthRequest{Reference: ref, Amount: 5000, Currency: "usd", Card: card})
	require.NoError(t, err)
	require.True(t, res.Approved)
	again, err := nodeB.Authorize(ctx, payments.AuthRequest{Reference: ref, Amount: 5000, Currency: "usd", Card: card})
	require.NoError(t, err)
	assert.Equal(t, res.AuthCode, again.AuthCode, "the same reference on another node is the same authorization")
	res, err = nodeB.Capture(ctx, ref, 5000)
	require.NoError(t, err)
	require.True(t, res.Approved, "B captures what A authorized")
	res, err = nodeB.Refund(ctx, ref, "re_1"+ref, 2000)
	require.NoError(t, err)
	require.True(t, res.Approved)
	res, err = nodeA.Refund(ctx, ref, "re_1"+ref, 2000)
	require.NoError(t, err)
	require.True(t, res.Approved, "a refund retried on another node is the same refund")
	res, err = nodeA.Refund(ctx, ref, "re_2"+ref, 3001)
	require.NoError(t, err)
	assert.False(t, res.Approved, "more than what is left to refund")
	auth, ok := nodeA.Authorization(ref)
	require.True(t, ok)
	assert.Equal(t, int64(5000), auth.Captured)
	assert.Equal(t, int64(2000), auth.Refunded)

	// Authorized on A, voided on B: A can no longer capture it.
	ref2 := "ch_" + ids.Random(12)
	res, err = nodeA.Authorize(ctx, payments.AuthRequest{Reference: ref2, Amount: 700, Currency: "usd", Card: card})
	require.NoError(t, err)
	require.True(t, res.Approved)
	res, err = nodeB.Void(ctx, ref2)
	require.NoError(t, err)
	require.True(t, res.Approved)
	res, err = nodeA.Capture(ctx, ref2, 700)
	require.NoError(t, err)
	assert.False(t, res.Approved, "a voided authorization is not captured")

	// A reversal that reached B before the authorization reached A blocks it.
	ref3 := "ch_" + ids.Random(12)
	_, err = nodeB.Void(ctx, ref3)
	require.NoError(t, err)
	res, err = nodeA.Authorize(ctx, payments.AuthRequest{Reference: ref3, Amount: 700, Currency: "usd", Card: card})
	require.NoError(t, err)
	assert.False(t, res.Approved)

	// Twenty refunds of 10.00 on a 50.00 sale, racing from both nodes.
	ref4 := "ch_" + ids.Random(12)
	res, err = nodeA.Authorize(ctx, payments.AuthRequest{Reference: ref4, Amount: 5000, Currency: "usd", Card: card, Capture: true})
	require.NoError(t, err)
	require.True(t, res.Approved)
	var approved atomic.Int32
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			node := nodeA
			if i%2 == 1 {
				node = nodeB
			}
			res, err := node.Refund(ctx, ref4, "re_"+ids.Random(12), 1000)
			if err != nil {
				assert.True(t, errors.Is(err, payments.ErrUnavailable), "%v", err)
				return
			}
			if res.Approved {
				approved.Add(1)
			}
		}()
	}
	wg.Wait()
	assert.Equal(t, int32(5), approved.Load(), "exactly the captured amount is refunded")
	auth, _ = nodeB.Authorization(ref4)
	assert.Equal(t, int64(5000), auth.Refunded)
}

package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/charging"
	"github.com/perfectpay/perfectpay/internal/ids"
	"github.com/perfectpay/perfectpay/mandates"
	"github.com/perfectpay/perfectpay/policies"
	"github.com/perfectpay/perfectpay/store"
)

func testPipelineApprovals[X Tx](t *testing.T, b store.Backend[X]) {
	ctx := context.Background()
	a := &charging.Approval{ID: ids.New("apr"), TenantID: "ten_a", Status: charging.ApprovalPending, MandateID: "mdt_1",
		AgentID: "agt_1", Amount: 6000, Currency: "USD", PaymentMethod: "tok_1", MerchantID: "acct_1",
		Purchase: []byte(`{"description":"a book"}`), Reasons: []policies.Reason{{Code: "approval_required", Message: "m"}},
		Binding: "b1", CreatedAt: now(), ExpiresAt: now().Add(time.Minute)}
	in(t, b, func(tx X) error { return tx.CreateApproval(ctx, a) })
	require.ErrorIs(t, b.InTx(ctx, func(tx X) error { return tx.CreateApproval(ctx, a) }), store.ErrConflict)
	require.ErrorIs(t, b.InTx(ctx, func(tx X) error { _, err := tx.GetApproval(ctx, "ten_other", a.ID); return err }), store.ErrNotFound)
	in(t, b, func(tx X) error {
		got, err := tx.GetApproval(ctx, "ten_a", a.ID)
		require.NoError(t, err)
		assert.Equal(t, a.Binding, got.Binding)
		assert.Equal(t, a.Reasons, got.Reasons)
		assert.JSONEq(t, `{"description":"a book"}`, string(got.Purchase))
		at := now()
		got.Status, got.ResolvedAt, got.ResolvedBy = charging.ApprovalApproved, &at, "key_1"
		return tx.UpdateApproval(ctx, got, charging.ApprovalPending)
	})
	// Only one of two racing uses wins.
	used := *a
	resolved := now()
	used.Status, used.ChargeID, used.ResolvedBy, used.ResolvedAt = charging.ApprovalUsed, "ch_1", "key_1", &resolved
	in(t, b, func(tx X) error { return tx.UpdateApproval(ctx, &used, charging.ApprovalApproved) })
	require.ErrorIs(t, b.InTx(ctx, func(tx X) error { return tx.UpdateApproval(ctx, &used, charging.ApprovalApproved) }), store.ErrConflict)
	in(t, b, func(tx X) error {
		got, err := tx.GetApproval(ctx, "ten_a", a.ID)
		require.NoError(t, err)
		assert.Equal(t, charging.ApprovalUsed, got.Status)
		assert.Equal(t, "ch_1", got.ChargeID)
		assert.Equal(t, "key_1", got.ResolvedBy)
		return nil
	})
}

func testPipelineDecisions[X Tx](t *testing.T, b store.Backend[X]) {
	ctx := context.Background()
	mk := func(agent, mandate, result, charge string, at time.Time) *charging.Decision {
		return &charging.Decision{ID: ids.New("dec"), TenantID: "ten_a", MandateID: mandate, AgentID: agent, ChargeID: charge,
			Result: result, Reasons: []policies.Reason{}, PolicyVersion: "v", InputDigest: "d", CreatedAt: at}
	}
	old := now().Add(-2 * time.Hour)
	for _, d := range []*charging.Decision{
		mk("agt_1", "mdt_1", "allow", "ch_1", now()),
		mk("agt_1", "mdt_1", "allow", "ch_2", now()),
		mk("agt_1", "mdt_2", "deny", "", now()),
		mk("agt_2", "mdt_1", "challenge", "", now()),
		mk("agt_1", "mdt_1", "allow", "ch_old", old),
	} {
		in(t, b, func(tx X) error { return tx.CreateDecision(ctx, d) })
	}
	require.ErrorIs(t, b.InTx(ctx, func(tx X) error { return tx.CreateDecision(ctx, mk("agt_1", "mdt_1", "allow", "ch_1", now())) }),
		store.ErrConflict, "one decision per charge")
	in(t, b, func(tx X) error { return tx.SetDecisionOutcome(ctx, "ten_a", "ch_2", "failed") })
	in(t, b, func(tx X) error {
		all := charging.VelocityQuery{Since: now().Add(-time.Hour), AgentCharges: 100, AgentDeclines: 100, MandateCharges: 100, MandateDeclines: 100}
		agent, mandate, err := tx.Velocity(ctx, "ten_a", "agt_1", "mdt_1", all)
		require.NoError(t, err)
		assert.Equal(t, charging.Counts{Charges: 2, Declines: 2}, agent) // ch_2 failed, mdt_2 denied
		assert.Equal(t, charging.Counts{Charges: 2, Declines: 1}, mandate)
		// Counts stop at their caps; a zero cap is not counted.
		capped := charging.VelocityQuery{Since: all.Since, AgentCharges: 1, AgentDeclines: 0, MandateCharges: 0, MandateDeclines: 5}
		agent, mandate, err = tx.Velocity(ctx, "ten_a", "agt_1", "mdt_1", capped)
		require.NoError(t, err)
		assert.Equal(t, charging.Counts{Charges: 1, Declines: 0}, agent)
		assert.Equal(t, charging.Counts{Charges: 0, Declines: 1}, mandate)
		return nil
	})
	// counts asserts agt_1's and mdt_1's counts over the last hour.
	counts := func(wantAgent, wantMandate charging.Counts) {
		in(t, b, func(tx X) error {
			all := charging.VelocityQuery{Since: now().Add(-time.Hour), AgentCharges: 100, AgentDeclines: 100, MandateCharges: 100, MandateDeclines: 100}
			agent, mandate, err := tx.Velocity(ctx, "ten_a", "agt_1", "mdt_1", all)
			require.NoError(t, err)
			assert.Equal(t, wantAgent, agent)
			assert.Equal(t, wantMandate, mandate)
			return nil
		})
	}
	// A decision recorded late but inside the window counts; one rolled
	// back does not.
	in(t, b, func(tx X) error {
		return tx.CreateDecision(ctx, mk("agt_1", "mdt_1", "allow", "ch_mid", now().Add(-30*time.Minute)))
	})
	require.Error(t, b.InTx(ctx, func(tx X) error {
		if err := tx.CreateDecision(ctx, mk("agt_1", "mdt_1", "allow", "ch_undone", now())); err != nil {
			return err
		}
		return errors.New("roll back")
	}))
	counts(charging.Counts{Charges: 3, Declines: 2}, charging.Counts{Charges: 3, Declines: 1})
	// A charge that fails later counts as a decline from then on.
	in(t, b, func(tx X) error { return tx.SetDecisionOutcome(ctx, "ten_a", "ch_mid", "failed") })
	counts(charging.Counts{Charges: 3, Declines: 3}, charging.Counts{Charges: 3, Declines: 2})
}

func testPipelineHolds[X Tx](t *testing.T, b store.Backend[X]) {
	ctx := context.Background()
	at := now()
	h := &charging.Hold{ChargeID: "ch_1", TenantID: "ten_a", Held: 500, Counted: true, Reservation: mandates.Reservation{
		Chain: []string{"mdt_root", "mdt_child"}, Amount: 500, At: at, Periods: map[string]time.Time{"mdt_root": at.Truncate(time.Hour)}}}
	in(t, b, func(tx X) error { return tx.CreateHold(ctx, h) })
	require.ErrorIs(t, b.InTx(ctx, func(tx X) error { _, err := tx.LockHold(ctx, "ten_a", "ch_none"); return err }), store.ErrNotFound)
	in(t, b, func(tx X) error {
		got, err := tx.LockHold(ctx, "ten_a", "ch_1")
		require.NoError(t, err)
		assert.Equal(t, h.Reservation.Chain, got.Reservation.Chain)
		assert.True(t, got.Reservation.Periods["mdt_root"].Equal(at.Truncate(time.Hour)))
		got.Held, got.Counted = 0, false
		return tx.UpdateHold(ctx, got)
	})
	in(t, b, func(tx X) error {
		got, err := tx.LockHold(ctx, "ten_a", "ch_1")
		require.NoError(t, err)
		assert.Zero(t, got.Held)
		assert.False(t, got.Counted)
		return nil
	})
}

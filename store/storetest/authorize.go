package storetest

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/authz"
	"github.com/perfectpay/perfectpay/internal/ids"
	"github.com/perfectpay/perfectpay/store"
)

// testAuthRequests: requests waiting for a payer are stored and read back
// whole, decided once (a conditional update), listed per payer newest
// first, and pruned when expired; codes, PKCE challenges and pushed
// requests are token sessions of their own kinds; an agent keeps its
// redirect URIs and CIBA delivery settings.
func testAuthRequests[X Tx](t *testing.T, b store.Backend[X]) {
	ctx := context.Background()
	tn := MakeTenant(t, b)
	a := newAgent(tn.ID)
	a.GrantTypes = []string{authz.GrantAuthorizationCode, authz.GrantCIBA}
	a.RedirectURIs = []string{"https://agent.test/cb"}
	a.BackchannelMode, a.BackchannelEndpoint = authz.BackchannelPing, "https://agent.test/ping"
	in(t, b, func(tx X) error { return tx.CreateAgent(ctx, a) })
	in(t, b, func(tx X) error {
		got, err := tx.GetAgent(ctx, a.ID)
		require.NoError(t, err)
		assert.Equal(t, a.RedirectURIs, got.RedirectURIs)
		assert.Equal(t, a.BackchannelMode, got.BackchannelMode)
		assert.Equal(t, a.BackchannelEndpoint, got.BackchannelEndpoint)
		return nil
	})

	t0 := now()
	mk := func(kind, payer string, at time.Time) *authz.AuthRequest {
		return &authz.AuthRequest{ID: ids.New("azr"), Kind: kind, TenantID: tn.ID, ClientID: a.ID, Payer: payer,
			Status: authz.AuthPending, Details: json.RawMessage(`[{"type":"payment_mandate","budget":100}]`),
			BindingMessage: "W4SK", Data: json.RawMessage(`{"scope":"charges:write"}`), PollInterval: 5,
			CreatedAt: at, UpdatedAt: at, ExpiresAt: at.Add(10 * time.Minute)}
	}
	r1 := mk(authz.AuthRequestCIBA, "cus_1", t0)
	r2 := mk(authz.AuthRequestCIBA, "cus_1", t0.Add(time.Second))
	r3 := mk(authz.AuthRequestAuthorize, "", t0)
	for _, r := range []*authz.AuthRequest{r1, r2, r3} {
		in(t, b, func(tx X) error { return tx.CreateAuthRequest(ctx, r) })
	}
	require.ErrorIs(t, b.InTx(ctx, func(tx X) error { return tx.CreateAuthRequest(ctx, r1) }), store.ErrConflict)
	require.ErrorIs(t, b.InTx(ctx, func(tx X) error { _, err := tx.GetAuthRequest(ctx, "azr_missing", false); return err }), store.ErrNotFound)

	in(t, b, func(tx X) error {
		got, err := tx.GetAuthRequest(ctx, r1.ID, true)
		require.NoError(t, err)
		assert.Equal(t, r1.Kind, got.Kind)
		assert.Equal(t, r1.Payer, got.Payer)
		assert.Equal(t, r1.BindingMessage, got.BindingMessage)
		assert.JSONEq(t, string(r1.Details), string(got.Details))
		assert.JSONEq(t, string(r1.Data), string(got.Data))
		assert.Nil(t, got.Granted)
		assert.Nil(t, got.LastPolledAt)
		assert.Equal(t, 5, got.PollInterval)
		assert.True(t, r1.ExpiresAt.Equal(got.ExpiresAt))
		return nil
	})

	// Decided once: the update is conditioned on the status.
	polled := t0.Add(3 * time.Second)
	r1.Status, r1.Granted, r1.LastPolledAt, r1.UpdatedAt = authz.AuthApproved, json.RawMessage(`[{"mandate_id":"mdt_1"}]`), &polled, polled
	in(t, b, func(tx X) error { return tx.UpdateAuthRequest(ctx, r1, authz.AuthPending) })
	require.ErrorIs(t, b.InTx(ctx, func(tx X) error { return tx.UpdateAuthRequest(ctx, r1, authz.AuthPending) }), store.ErrConflict)
	ghost := mk(authz.AuthRequestCIBA, "cus_1", t0)
	require.ErrorIs(t, b.InTx(ctx, func(tx X) error { return tx.UpdateAuthRequest(ctx, ghost, authz.AuthPending) }), store.ErrNotFound)
	in(t, b, func(tx X) error {
		got, err := tx.GetAuthRequest(ctx, r1.ID, false)
		require.NoError(t, err)
		assert.Equal(t, authz.AuthApproved, got.Status)
		assert.JSONEq(t, string(r1.Granted), string(got.Granted))
		require.NotNil(t, got.LastPolledAt)
		assert.True(t, polled.Equal(*got.LastPolledAt))
		return nil
	})

	// A rolled-back decision leaves the request pending.
	r2.Status = authz.AuthDenied
	require.Error(t, b.InTx(ctx, func(tx X) error {
		if err := tx.UpdateAuthRequest(ctx, r2, authz.AuthPending); err != nil {
			return err
		}
		return store.ErrConflict
	}))

	in(t, b, func(tx X) error {
		all, err := tx.ListAuthRequests(ctx, tn.ID, "cus_1", "", 10)
		require.NoError(t, err)
		require.Len(t, all, 2)
		assert.Equal(t, r2.ID, all[0].ID, "newest first")
		pending, err := tx.ListAuthRequests(ctx, tn.ID, "cus_1", authz.AuthPending, 10)
		require.NoError(t, err)
		require.Len(t, pending, 1)
		assert.Equal(t, r2.ID, pending[0].ID)
		none, err := tx.ListAuthRequests(ctx, "ten_other", "cus_1", "", 10)
		require.NoError(t, err)
		assert.Empty(t, none)
		return nil
	})

	in(t, b, func(tx X) error {
		n, err := tx.PruneAuthRequests(ctx, t0.Add(10*time.Minute+500*time.Millisecond))
		require.NoError(t, err)
		assert.Equal(t, 2, n)
		_, err = tx.GetAuthRequest(ctx, r1.ID, false)
		assert.ErrorIs(t, err, store.ErrNotFound)
		_, err = tx.GetAuthRequest(ctx, r2.ID, false)
		assert.NoError(t, err)
		return nil
	})

	// Codes, PKCE challenges and pushed requests are token sessions.
	for _, kind := range []string{authz.KindCode, authz.KindPKCE, authz.KindPAR} {
		s := &authz.TokenSession{Kind: kind, Signature: ids.New("sig"), RequestID: "req_1", ClientID: a.ID, TenantID: tn.ID,
			Active: true, Data: json.RawMessage(`{}`), CreatedAt: t0, ExpiresAt: t0.Add(time.Minute)}
		in(t, b, func(tx X) error { return tx.CreateTokenSession(ctx, s) })
		in(t, b, func(tx X) error { return tx.DeactivateTokenSession(ctx, kind, s.Signature) })
		require.ErrorIs(t, b.InTx(ctx, func(tx X) error { return tx.DeactivateTokenSession(ctx, kind, s.Signature) }), store.ErrConflict)
	}
}

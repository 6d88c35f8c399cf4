package server_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/app"
	"github.com/perfectpay/perfectpay/app/apptest"
	"github.com/perfectpay/perfectpay/idempotency"
	"github.com/perfectpay/perfectpay/payments"
	"github.com/perfectpay/perfectpay/store"
)

// claimOf reads the idempotency record of an agent's key on a mandate.
func (s *shop) claimOf(t *testing.T, tenant, mandateID, key string) *idempotency.Record {
	t.Helper()
	ctx := context.Background()
	var old *idempotency.Record
	probe := &idempotency.Record{TenantID: tenant, CredentialID: s.agent + ":" + mandateID, Key: key,
		Method: "POST", Path: "/v1/charges", RequestHash: []byte("probe"), State: idempotency.StateInProgress, CreatedAt: time.Now().UTC(), LockedUntil: time.Now().Add(time.Hour), ExpiresAt: time.Now().Add(time.Hour)}
	err := s.n.App.Idempotency.InTx(ctx, func(tx idempotency.Repo) error {
		var err error
		old, err = tx.ClaimIdempotency(ctx, probe)
		if err == nil {
			return errProbe // roll the probe back: there was no record
		}
		return err
	})
	if errors.Is(err, errProbe) {
		return nil
	}
	require.ErrorIs(t, err, store.ErrConflict)
	return old
}

var errProbe = errors.New("probe")

// unanswer puts the answered claim of an agent's key back in progress,
// held by this (live) node for an hour: what is left when the node's
// answer was lost after the charge committed and the client has moved on.
func (s *shop) unanswer(t *testing.T, tenant, mandateID, key string) {
	t.Helper()
	ctx := context.Background()
	old := s.claimOf(t, tenant, mandateID, key)
	require.NotNil(t, old)
	now := time.Now().UTC().Truncate(time.Microsecond)
	held := *old
	held.State, held.Status, held.Header, held.Body = idempotency.StateInProgress, 0, nil, nil
	held.CreatedAt, held.LockedUntil, held.ExpiresAt = now, now.Add(time.Hour), now.Add(24*time.Hour)
	require.NoError(t, s.n.App.Idempotency.InTx(ctx, func(tx idempotency.Repo) error {
		if err := tx.ReleaseIdempotency(ctx, tenant, held.CredentialID, key); err != nil {
			return err
		}
		_, err := tx.ClaimIdempotency(ctx, &held)
		return err
	}))
}

// TestChargeAnswerLostAfterCommitConverges: when the answer to an agent
// charge is lost after the charge committed (its node died, or lost the
// store, before storing it), the key's claim is left in progress by a
// live session. A retry under the key must get that charge's answer —
// not 409 until the claim's lock lapses, not a second charge — and store
// it, so the next retry is a plain replay.
func TestChargeAnswerLostAfterCommitConverges(t *testing.T) {
	apptest.EachDriver(t, func(t *testing.T, driver string) {
		n := apptest.New(t, driver)
		s := newShop(t, n)
		tenant := n.Do(t, apptest.Req{Method: "GET", Path: "/v1/tenant", Key: s.key}).JSON["id"].(string)
		m := s.mandate(t, map[string]any{"budget": 900, "max_amount_per_charge": 900, "approval_threshold": 900})
		tok := s.token(t, m)
		first := s.charge(t, tok, 900, nil, "lost-1")
		require.Equal(t, 200, first.Status, string(first.Body))
		id := first.JSON["id"].(string)
		rec := s.claimOf(t, tenant, m, "lost-1")
		require.NotNil(t, rec)
		assert.Equal(t, idempotency.StateDone, rec.State, "the answer is stored before it is sent")

		s.unanswer(t, tenant, m, "lost-1")
		again := s.charge(t, tok, 900, nil, "lost-1")
		require.Equal(t, 200, again.Status, "a retry gets the charge's answer: %s", again.Body)
		assert.Equal(t, id, again.JSON["id"])
		assert.Equal(t, "allow", again.JSON["decision"].(map[string]any)["result"])
		assert.Equal(t, idempotency.StateDone, s.claimOf(t, tenant, m, "lost-1").State, "the retry stored the answer")
		third := s.charge(t, tok, 900, nil, "lost-1")
		require.Equal(t, 200, third.Status, string(third.Body))
		assert.Equal(t, "true", third.Header.Get("Idempotent-Replayed"))
		assert.Equal(t, id, third.JSON["id"])
		spent, count := s.spent(t, m)
		assert.Equal(t, 900.0, spent)
		assert.Equal(t, 1.0, count, "one charge for one key")

		// A decline, too: the answer is the decline.
		declining := tokenize(t, n, s.key, "4000000000000002", "123")
		m2 := s.mandate(t, map[string]any{"payment_methods": []string{s.card, declining}})
		tok2 := s.token(t, m2)
		d := s.charge(t, tok2, 500, map[string]any{"payment_method": declining}, "lost-2")
		require.Equal(t, 402, d.Status, string(d.Body))
		s.unanswer(t, tenant, m2, "lost-2")
		d2 := s.charge(t, tok2, 500, map[string]any{"payment_method": declining}, "lost-2")
		require.Equal(t, 402, d2.Status, string(d2.Body))
		assert.Equal(t, d.JSON["charge"].(map[string]any)["id"], d2.JSON["charge"].(map[string]any)["id"])

		// The same key with other parameters is still refused.
		s.unanswer(t, tenant, m, "lost-1")
		r := s.charge(t, tok, 800, nil, "lost-1")
		require.Equal(t, 422, r.Status, string(r.Body))
		assert.Equal(t, "idempotency_key_reused", r.ErrorCode())
	})
}

// TestResolvedChargeFreesItsClaim: a node that stopped mid-call leaves
// its charge pending and the key's claim in progress. The resolver that
// completes the charge drops that claim in the same transaction, so no
// claim outlives its charge's outcome, and a retry gets the outcome.
func TestResolvedChargeFreesItsClaim(t *testing.T) {
	apptest.EachDriver(t, func(t *testing.T, driver string) {
		n := apptest.New(t, driver, func(c *app.Config) {
			c.Payments.ProcessorTimeout, c.Payments.ProcessorRetries, c.Payments.ResolveAfter = 400*time.Millisecond, 0, time.Second
		})
		s := newShop(t, n)
		tenant := n.Do(t, apptest.Req{Method: "GET", Path: "/v1/tenant", Key: s.key}).JSON["id"].(string)
		m := s.mandate(t, map[string]any{"budget": 900, "max_amount_per_charge": 900, "approval_threshold": 900})
		tok := s.token(t, m)
		first := s.charge(t, tok, 900, nil, "stop-1")
		require.Equal(t, 200, first.Status, string(first.Body))
		id := first.JSON["id"].(string)

		s.unanswer(t, tenant, m, "stop-1")
		setChargeStatus(t, n, tenant, id, payments.StatusPending)
		waitFor(t, "the resolver to complete the charge", time.Minute, func() bool {
			r := n.Do(t, apptest.Req{Method: "GET", Path: "/v1/charges/" + id, Key: s.key})
			return r.Status == 200 && r.JSON["status"] != "pending"
		})
		assert.Nil(t, s.claimOf(t, tenant, m, "stop-1"), "the resolver dropped the claim")
		again := s.charge(t, tok, 900, nil, "stop-1")
		require.Equal(t, 200, again.Status, string(again.Body))
		assert.Equal(t, id, again.JSON["id"])
		_, count := s.spent(t, m)
		assert.Equal(t, 1.0, count, "one charge for one key")
	})
}

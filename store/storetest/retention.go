package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/accounts"
	"github.com/perfectpay/perfectpay/audit"
	"github.com/perfectpay/perfectpay/charging"
	"github.com/perfectpay/perfectpay/compliance"
	"github.com/perfectpay/perfectpay/idempotency"
	"github.com/perfectpay/perfectpay/internal/ids"
	"github.com/perfectpay/perfectpay/mandates"
	"github.com/perfectpay/perfectpay/payments"
	"github.com/perfectpay/perfectpay/policies"
	"github.com/perfectpay/perfectpay/retention"
	"github.com/perfectpay/perfectpay/store"
	"github.com/perfectpay/perfectpay/vault"
)

// seedDecisions stores n decisions of two tenants, each with its input and
// a charge, created a second apart from at on.
func seedDecisions[X Tx](t *testing.T, b store.Backend[X], n int, at time.Time) []*charging.Decision {
	t.Helper()
	ctx := context.Background()
	var out []*charging.Decision
	in(t, b, func(tx X) error {
		for i := range n {
			d := &charging.Decision{ID: ids.New("dec"), TenantID: []string{"ten_ra", "ten_rb"}[i%2], MandateID: "mdt_1", AgentID: "agt_1",
				ChargeID: ids.New("ch"), Result: policies.Allow, Reasons: []policies.Reason{}, PolicyVersion: "v", InputDigest: "d",
				CreatedAt: at.Add(time.Duration(i) * time.Second), Input: []byte(`{"i":1}`)}
			if err := tx.CreateDecision(ctx, d); err != nil {
				return err
			}
			if err := tx.RecordDecisionInput(ctx, d); err != nil {
				return err
			}
			out = append(out, d)
		}
		return nil
	})
	return out
}

func decisionGone[X Tx](t *testing.T, b store.Backend[X], d *charging.Decision) bool {
	t.Helper()
	ctx := context.Background()
	var gone bool
	in(t, b, func(tx X) error {
		_, err := tx.DecisionRecord(ctx, d.TenantID, d.ID)
		gone = errors.Is(err, store.ErrNotFound)
		_, err = tx.DecisionOfCharge(ctx, d.TenantID, d.ChargeID)
		assert.Equal(t, gone, errors.Is(err, store.ErrNotFound), "the charge's decision goes with the record")
		return nil
	})
	return gone
}

// testRetentionDecisions: PruneDecisions deletes only records created
// before the cut-off, oldest first, at most limit at a time, with their
// inputs; a rolled-back prune deletes nothing.
func testRetentionDecisions[X Tx](t *testing.T, b store.Backend[X]) {
	ctx := context.Background()
	base := now().Truncate(time.Microsecond).Add(-1000 * time.Hour)
	old := seedDecisions(t, b, 5, base)
	fresh := seedDecisions(t, b, 2, base.Add(10*time.Hour))
	cut := base.Add(time.Hour)

	errBoom := errors.New("boom")
	require.ErrorIs(t, b.InTx(ctx, func(tx X) error {
		n, err := tx.PruneDecisions(ctx, cut, 10)
		require.NoError(t, err)
		assert.Equal(t, 5, n)
		return errBoom
	}), errBoom)
	assert.False(t, decisionGone(t, b, old[0]), "a rolled-back prune deletes nothing")

	var n int
	in(t, b, func(tx X) (err error) { n, err = tx.PruneDecisions(ctx, cut, 2); return err })
	assert.Equal(t, 2, n)
	assert.True(t, decisionGone(t, b, old[0]))
	assert.True(t, decisionGone(t, b, old[1]))
	assert.False(t, decisionGone(t, b, old[2]), "oldest first, at most limit")

	in(t, b, func(tx X) (err error) { n, err = tx.PruneDecisions(ctx, cut, 10); return err })
	assert.Equal(t, 3, n)
	in(t, b, func(tx X) (err error) { n, err = tx.PruneDecisions(ctx, cut, 10); return err })
	assert.Zero(t, n)
	for _, d := range fresh {
		assert.False(t, decisionGone(t, b, d), "a record after the cut-off stays")
	}
	in(t, b, func(tx X) error {
		recs, err := tx.DecisionRecords(ctx, compliance.DecisionFilter{TenantID: "ten_ra"})
		require.NoError(t, err)
		assert.Len(t, recs, 1)
		return nil
	})
}

// testRetentionConcurrentSweeps: two sweeps at once delete each expired
// record once, and every batch has exactly one audit entry with its count.
func testRetentionConcurrentSweeps[X Tx](t *testing.T, b store.Backend[X]) {
	ctx := context.Background()
	clock := now().Truncate(time.Microsecond)
	const total, batch = 41, 4
	old := seedDecisions(t, b, total, clock.Add(-50*24*time.Hour))
	keep := seedDecisions(t, b, 3, clock.Add(-time.Hour))

	db := store.Bind(b, func(x X) retention.Repo { return x })
	var wg sync.WaitGroup
	counts := make([]int, 2)
	for i := range counts {
		svc := retention.New(db, retention.Policy{Decisions: 30 * 24 * time.Hour}, nil)
		svc.Now = func() time.Time { return clock }
		svc.BatchSize = batch
		wg.Go(func() {
			n, err := svc.Sweep(ctx)
			assert.NoError(t, err)
			counts[i] = n[retention.ClassDecisions]
		})
	}
	wg.Wait()
	assert.Equal(t, total, counts[0]+counts[1], "each record deleted once")
	for _, d := range old {
		assert.True(t, decisionGone(t, b, d))
	}
	for _, d := range keep {
		assert.False(t, decisionGone(t, b, d))
	}

	var entries []audit.Entry
	in(t, b, func(tx X) (err error) {
		entries, err = tx.ListAudit(ctx, audit.Filter{Action: retention.ActionDelete})
		return err
	})
	sum := 0
	for _, e := range entries {
		var got retention.Batch
		require.NoError(t, json.Unmarshal(e.Data, &got))
		assert.Equal(t, retention.ClassDecisions, got.Class)
		assert.True(t, got.Before.Equal(clock.Add(-30*24*time.Hour)), "the entry names the cut-off")
		assert.True(t, got.Count > 0 && got.Count <= batch, "one entry per bounded batch: %d", got.Count)
		assert.Equal(t, retention.ClassDecisions, e.Target)
		sum += got.Count
	}
	assert.Equal(t, total, sum, "the entries account for every deleted row")
	assert.GreaterOrEqual(t, len(entries), (total+batch-1)/batch)
}

// testRetentionSessions: a sweep deletes people's sessions past their
// absolute limit and login marks past theirs, in audited batches, and
// keeps the live ones; a class kept forever is not swept.
func testRetentionSessions[X Tx](t *testing.T, b store.Backend[X]) {
	ctx := context.Background()
	clock := now()
	ten := MakeTenant(t, b)
	u := newUser(ten.ID, "sweep@example.com")
	in(t, b, func(tx X) error { return tx.CreateUser(ctx, u) })
	var old, live []*accounts.Session
	in(t, b, func(tx X) error {
		for i := range 7 {
			at := clock.Add(-13*time.Hour + time.Duration(i)*time.Minute)
			if i >= 5 {
				at = clock.Add(-time.Hour)
			}
			s := &accounts.Session{IDHash: []byte(ids.New("sh")), Ref: ids.New("ses"), TenantID: ten.ID, UserID: u.ID, CreatedAt: at, LastSeenAt: at}
			if err := tx.CreateSession(ctx, s); err != nil {
				return err
			}
			if i >= 5 {
				live = append(live, s)
			} else {
				old = append(old, s)
			}
		}
		return nil
	})
	seedDecisions(t, b, 2, clock.Add(-1000*24*time.Hour))
	in(t, b, func(tx X) error {
		if _, err := tx.MarkLogin(ctx, ten.ID, u.ID, "mark-old", clock.Add(-500*24*time.Hour)); err != nil {
			return err
		}
		_, err := tx.MarkLogin(ctx, ten.ID, u.ID, "mark-new", clock.Add(-time.Hour))
		return err
	})

	svc := retention.New(store.Bind(b, func(x X) retention.Repo { return x }),
		retention.Policy{Sessions: 12 * time.Hour, LoginMarks: 400 * 24 * time.Hour}, nil)
	svc.Now = func() time.Time { return clock }
	svc.BatchSize = 2
	n, err := svc.Sweep(ctx)
	require.NoError(t, err)
	assert.Equal(t, map[string]int{retention.ClassSessions: 5, retention.ClassLoginMarks: 1}, n, "decisions kept forever are not swept")

	in(t, b, func(tx X) error {
		for _, s := range old {
			_, err := tx.GetSession(ctx, s.IDHash)
			assert.ErrorIs(t, err, store.ErrNotFound)
		}
		for _, s := range live {
			_, err := tx.GetSession(ctx, s.IDHash)
			assert.NoError(t, err)
		}
		again, err := tx.MarkLogin(ctx, ten.ID, u.ID, "mark-old", clock)
		require.NoError(t, err)
		assert.True(t, again, "a forgotten mark is new again")
		again, err = tx.MarkLogin(ctx, ten.ID, u.ID, "mark-new", clock)
		require.NoError(t, err)
		assert.False(t, again, "a recent mark is kept")
		entries, err := tx.ListAudit(ctx, audit.Filter{Action: retention.ActionDelete})
		require.NoError(t, err)
		counts := map[string][]int{}
		for _, e := range entries {
			var got retention.Batch
			require.NoError(t, json.Unmarshal(e.Data, &got))
			counts[got.Class] = append(counts[got.Class], got.Count)
		}
		assert.ElementsMatch(t, []int{2, 2, 1}, counts[retention.ClassSessions], "one entry per batch")
		assert.Equal(t, []int{1}, counts[retention.ClassLoginMarks])
		assert.Len(t, counts, 2)
		return nil
	})
}

// testRetentionCardTokens: a sweep erases card tokens unused since the
// cut-off and on no live mandate, like DELETE /v1/tokens/{id}, and keeps
// the ones a recent charge used or a live mandate names.
func testRetentionCardTokens[X Tx](t *testing.T, b store.Backend[X]) {
	ctx := context.Background()
	clock := now()
	old := clock.Add(-600 * 24 * time.Hour)
	tn := MakeTenant(t, b)
	var key *vault.TenantKey
	in(t, b, func(tx X) (err error) {
		key, err = tx.EnsureTenantKey(ctx, &vault.TenantKey{ID: ids.New("tk"), TenantID: tn.ID, KEKVersion: 1, Wrapped: []byte("w"), CreatedAt: old})
		return err
	})
	tok := func(at time.Time) *vault.Token {
		tk := &vault.Token{ID: ids.New("tok"), TenantID: tn.ID, TenantKeyID: key.ID, Brand: "visa", Last4: "4242", ExpMonth: 1,
			ExpYear: 2040, Fingerprint: "fp", CVCCheck: vault.CVCPass, WrappedDEK: []byte("dek"), Ciphertext: []byte("ct"), CreatedAt: at}
		in(t, b, func(tx X) error { return tx.CreateToken(ctx, tk) })
		return tk
	}
	charge := func(tk *vault.Token, at time.Time) {
		c := &payments.Charge{ID: ids.New("ch"), TenantID: tn.ID, Status: payments.StatusSucceeded, Amount: 100, AmountCaptured: 100,
			Currency: "usd", CaptureNow: true, PaymentMethod: tk.ID, Created: at, Updated: at}
		in(t, b, func(tx X) error { return tx.CreateCharge(ctx, c) })
	}
	unused, usedLongAgo, usedRecently, onLive, onRevoked, fresh, deleted := tok(old), tok(old), tok(old), tok(old), tok(old), tok(clock), tok(old)
	charge(usedLongAgo, old.Add(time.Hour))
	charge(usedRecently, clock.Add(-24*time.Hour))
	live, revoked := newMandate(tn.ID, 1000), newMandate(tn.ID, 1000)
	live.Limits.PaymentMethods = []string{onLive.ID}
	revoked.Limits.PaymentMethods, revoked.Status = []string{onRevoked.ID}, mandates.StatusRevoked
	create(t, b, live, revoked)
	in(t, b, func(tx X) error { return tx.DeleteToken(ctx, tn.ID, deleted.ID, old) })

	svc := retention.New(store.Bind(b, func(x X) retention.Repo { return x }), retention.Policy{CardTokens: 540 * 24 * time.Hour}, nil)
	svc.Now = func() time.Time { return clock }
	svc.BatchSize = 2
	n, err := svc.Sweep(ctx)
	require.NoError(t, err)
	assert.Equal(t, map[string]int{retention.ClassCardTokens: 3}, n)

	in(t, b, func(tx X) error {
		for _, tk := range []*vault.Token{unused, usedLongAgo, onRevoked} {
			got, err := tx.GetToken(ctx, tn.ID, tk.ID)
			require.NoError(t, err)
			require.NotNil(t, got.DeletedAt, "erased")
			assert.True(t, clock.Equal(*got.DeletedAt))
			assert.Nil(t, got.WrappedDEK)
			assert.Nil(t, got.Ciphertext)
			assert.Equal(t, "4242", got.Last4, "what charges name stays")
		}
		for _, tk := range []*vault.Token{usedRecently, onLive, fresh} {
			got, err := tx.GetToken(ctx, tn.ID, tk.ID)
			require.NoError(t, err)
			assert.Nil(t, got.DeletedAt, "kept")
			assert.NotEmpty(t, got.Ciphertext)
		}
		got, err := tx.GetToken(ctx, tn.ID, deleted.ID)
		require.NoError(t, err)
		assert.True(t, old.Equal(*got.DeletedAt), "a deleted token is not erased again")
		entries, err := tx.ListAudit(ctx, audit.Filter{Action: retention.ActionDelete})
		require.NoError(t, err)
		var counts []int
		for _, e := range entries {
			var got retention.Batch
			require.NoError(t, json.Unmarshal(e.Data, &got))
			assert.Equal(t, retention.ClassCardTokens, got.Class)
			counts = append(counts, got.Count)
		}
		assert.ElementsMatch(t, []int{2, 1}, counts, "one entry per batch")
		return nil
	})
}

// testRetentionCharges: a sweep scrubs the free text of settled charges
// last changed before the cut-off and keeps what the ledger needs; charges
// still moving, recent or already scrubbed are left alone.
func testRetentionCharges[X Tx](t *testing.T, b store.Backend[X]) {
	ctx := context.Background()
	clock := now()
	old := clock.Add(-800 * 24 * time.Hour)
	tn := MakeTenant(t, b)
	mk := func(status string, at time.Time, text bool, reversal bool) *payments.Charge {
		c := &payments.Charge{ID: ids.New("ch"), TenantID: tn.ID, Status: status, Amount: 700, Currency: "usd", CaptureNow: true,
			PaymentMethod: "tok_x", MandateID: "mdt_x", ReversalPending: reversal, Created: at, Updated: at}
		if status == payments.StatusSucceeded {
			c.AmountCaptured = 700
		}
		if text {
			c.Description, c.Metadata, c.FailureMessage = "order 12 for Pat", map[string]string{"note": "gift"}, "declined at the bank"
			c.Purchase = &payments.Purchase{Description: "books", LineItems: []payments.LineItem{{Name: "atlas", Quantity: 1, UnitAmount: 700}}}
		}
		in(t, b, func(tx X) error { return tx.CreateCharge(ctx, c) })
		return c
	}
	succeeded, failed := mk(payments.StatusSucceeded, old, true, false), mk(payments.StatusFailed, old, true, false)
	recent, pending := mk(payments.StatusSucceeded, clock.Add(-time.Hour), true, false), mk(payments.StatusPending, old, true, false)
	reversing, bare := mk(payments.StatusCanceled, old, true, true), mk(payments.StatusSucceeded, old, false, false)

	svc := retention.New(store.Bind(b, func(x X) retention.Repo { return x }), retention.Policy{Charges: 730 * 24 * time.Hour}, nil)
	svc.Now = func() time.Time { return clock }
	svc.BatchSize = 1
	n, err := svc.Sweep(ctx)
	require.NoError(t, err)
	assert.Equal(t, map[string]int{retention.ClassCharges: 2}, n)
	n, err = svc.Sweep(ctx)
	require.NoError(t, err)
	assert.Equal(t, map[string]int{retention.ClassCharges: 0}, n, "a scrubbed charge is not counted again")

	in(t, b, func(tx X) error {
		for _, c := range []*payments.Charge{succeeded, failed} {
			got, err := tx.GetCharge(ctx, tn.ID, c.ID)
			require.NoError(t, err)
			assert.Empty(t, got.Description)
			assert.Empty(t, got.Metadata)
			assert.Nil(t, got.Purchase)
			assert.Empty(t, got.FailureMessage)
			assert.Equal(t, c.Status, got.Status, "the ledger's fields stay")
			assert.Equal(t, int64(700), got.Amount)
			assert.Equal(t, c.AmountCaptured, got.AmountCaptured)
			assert.Equal(t, "tok_x", got.PaymentMethod)
			assert.Equal(t, "mdt_x", got.MandateID)
		}
		for _, c := range []*payments.Charge{recent, pending, reversing} {
			got, err := tx.GetCharge(ctx, tn.ID, c.ID)
			require.NoError(t, err)
			assert.Equal(t, "order 12 for Pat", got.Description, "kept: %s", c.Status)
			assert.Equal(t, "gift", got.Metadata["note"])
			require.NotNil(t, got.Purchase)
		}
		got, err := tx.GetCharge(ctx, tn.ID, bare.ID)
		require.NoError(t, err)
		assert.Empty(t, got.Description)
		entries, err := tx.ListAudit(ctx, audit.Filter{Action: retention.ActionDelete})
		require.NoError(t, err)
		var counts []int
		for _, e := range entries {
			var got retention.Batch
			require.NoError(t, json.Unmarshal(e.Data, &got))
			assert.Equal(t, retention.ClassCharges, got.Class)
			counts = append(counts, got.Count)
		}
		assert.Equal(t, []int{1, 1}, counts, "one entry per batch, none for an empty one")
		return nil
	})
}

// failingAudit is a transaction whose audit writes fail.
type failingAudit struct{ retention.Repo }

var errAuditDown = errors.New("audit write refused")

func (failingAudit) AppendAudit(context.Context, *audit.Entry) error { return errAuditDown }

// testRetentionNeedsItsEntry: when a batch's audit entry cannot be
// written, the batch's deletion is rolled back with it.
func testRetentionNeedsItsEntry[X Tx](t *testing.T, b store.Backend[X]) {
	ctx := context.Background()
	clock := now()
	old := seedDecisions(t, b, 3, clock.Add(-800*24*time.Hour))
	svc := retention.New(store.Bind(b, func(x X) retention.Repo { return failingAudit{x} }), retention.Policy{Decisions: 730 * 24 * time.Hour}, nil)
	svc.Now = func() time.Time { return clock }
	_, err := svc.Sweep(ctx)
	require.ErrorIs(t, err, errAuditDown)
	for _, d := range old {
		assert.False(t, decisionGone(t, b, d), "no deletion without its entry")
	}
}

// testRetentionIdempotency: a sweep deletes the idempotency records that
// expired, in audited batches, and keeps the live ones.
func testRetentionIdempotency[X Tx](t *testing.T, b store.Backend[X]) {
	ctx := context.Background()
	clock := now()
	rec := func(key string, expires time.Time) *idempotency.Record {
		return &idempotency.Record{TenantID: "ten_sweep", CredentialID: "key_1", Key: key, Method: "POST", Path: "/v1/x",
			RequestHash: []byte{1}, State: idempotency.StateInProgress, CreatedAt: clock.Add(-48 * time.Hour),
			LockedUntil: clock.Add(time.Hour), ExpiresAt: expires}
	}
	var expired, live []*idempotency.Record
	for i := range 5 {
		expired = append(expired, rec(fmt.Sprintf("old-%d", i), clock.Add(-time.Duration(i+1)*time.Minute)))
	}
	for i := range 2 {
		live = append(live, rec(fmt.Sprintf("new-%d", i), clock.Add(time.Hour)))
	}
	in(t, b, func(tx X) error {
		for _, r := range append(append([]*idempotency.Record{}, expired...), live...) {
			if _, err := tx.ClaimIdempotency(ctx, r); err != nil {
				return err
			}
		}
		return nil
	})

	off := retention.New(store.Bind(b, func(x X) retention.Repo { return x }), retention.Policy{}, nil)
	off.Now = func() time.Time { return clock }
	n, err := off.Sweep(ctx)
	require.NoError(t, err)
	assert.Zero(t, n[retention.ClassIdempotency], "not swept unless asked")

	svc := retention.New(store.Bind(b, func(x X) retention.Repo { return x }), retention.Policy{Idempotency: true}, nil)
	svc.Now = func() time.Time { return clock }
	svc.BatchSize = 2
	n, err = svc.Sweep(ctx)
	require.NoError(t, err)
	assert.Equal(t, 5, n[retention.ClassIdempotency])

	// A deleted key can be claimed anew; a live one is still held.
	for _, r := range expired {
		in(t, b, func(tx X) error {
			probe := *r
			_, err := tx.ClaimIdempotency(ctx, &probe)
			assert.NoError(t, err, "%s was deleted", r.Key)
			return nil
		})
	}
	for _, r := range live {
		_ = b.InTx(ctx, func(tx X) error {
			probe := *r
			_, err := tx.ClaimIdempotency(ctx, &probe)
			assert.ErrorIs(t, err, store.ErrConflict, "%s is kept", r.Key)
			return nil
		})
	}
	var counts []int
	in(t, b, func(tx X) error {
		entries, err := tx.ListAudit(ctx, audit.Filter{Action: retention.ActionDelete, Target: retention.ClassIdempotency})
		for _, e := range entries {
			var bt retention.Batch
			require.NoError(t, json.Unmarshal(e.Data, &bt))
			counts = append(counts, bt.Count)
		}
		return err
	})
	assert.Equal(t, []int{2, 2, 1}, counts, "one audit entry per batch")
}

package storetest

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/accounts"
	"github.com/perfectpay/perfectpay/audit"
	"github.com/perfectpay/perfectpay/idempotency"
	"github.com/perfectpay/perfectpay/internal/ids"
	"github.com/perfectpay/perfectpay/store"
)

func now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

func newTenant() *accounts.Tenant {
	return &accounts.Tenant{ID: ids.New("ten"), Name: "Acme", Status: accounts.TenantActive, CreatedAt: now()}
}

// MakeTenant inserts a tenant for tests of other domains.
func MakeTenant[X Tx](t *testing.T, b store.Backend[X]) *accounts.Tenant {
	tn := newTenant()
	in(t, b, func(tx X) error { return tx.CreateTenant(context.Background(), tn) })
	return tn
}

func testTenants[X Tx](t *testing.T, b store.Backend[X]) {
	ctx := context.Background()
	tn := newTenant()
	in(t, b, func(tx X) error { return tx.CreateTenant(ctx, tn) })
	require.ErrorIs(t, b.InTx(ctx, func(tx X) error { return tx.CreateTenant(ctx, tn) }), store.ErrConflict)
	require.ErrorIs(t, b.InTx(ctx, func(tx X) error { _, err := tx.GetTenant(ctx, "ten_missing"); return err }), store.ErrNotFound)
	require.ErrorIs(t, b.InTx(ctx, func(tx X) error {
		return tx.UpdateTenant(ctx, &accounts.Tenant{ID: "ten_missing", Name: "x", Status: "active"})
	}), store.ErrNotFound)
	in(t, b, func(tx X) error {
		got, err := tx.GetTenant(ctx, tn.ID)
		require.NoError(t, err)
		assert.Equal(t, tn.Name, got.Name)
		assert.True(t, tn.CreatedAt.Equal(got.CreatedAt))
		got.Status = accounts.TenantRevoked
		return tx.UpdateTenant(ctx, got)
	})
	in(t, b, func(tx X) error {
		got, err := tx.GetTenant(ctx, tn.ID)
		require.NoError(t, err)
		assert.Equal(t, accounts.TenantRevoked, got.Status)
		return nil
	})
}

func testAPIKeys[X Tx](t *testing.T, b store.Backend[X]) {
	ctx := context.Background()
	tn := MakeTenant(t, b)
	other := MakeTenant(t, b)
	k := &accounts.APIKey{ID: ids.New("key"), TenantID: tn.ID, Kind: accounts.KindRestricted, Mode: "test",
		Prefix: "rk_test_", Last4: "abcd", Hash: []byte("hash-1"), Scopes: []string{"charges:read"}, CreatedAt: now()}
	in(t, b, func(tx X) error { return tx.CreateAPIKey(ctx, k) })
	dup := *k
	dup.ID = ids.New("key")
	require.ErrorIs(t, b.InTx(ctx, func(tx X) error { return tx.CreateAPIKey(ctx, &dup) }), store.ErrConflict, "same hash twice")
	orphan := *k
	orphan.ID, orphan.Hash, orphan.TenantID = ids.New("key"), []byte("h2"), "ten_missing"
	require.ErrorIs(t, b.InTx(ctx, func(tx X) error { return tx.CreateAPIKey(ctx, &orphan) }), store.ErrNotFound, "unknown tenant")
	require.ErrorIs(t, b.InTx(ctx, func(tx X) error { _, err := tx.GetAPIKeyByHash(ctx, []byte("nope")); return err }), store.ErrNotFound)
	require.ErrorIs(t, b.InTx(ctx, func(tx X) error { _, err := tx.GetAPIKey(ctx, other.ID, k.ID); return err }),
		store.ErrNotFound, "another tenant's key is invisible")
	require.ErrorIs(t, b.InTx(ctx, func(tx X) error { _, _, err := tx.GetAPIKeyAndTenant(ctx, []byte("nope")); return err }), store.ErrNotFound)
	in(t, b, func(tx X) error {
		got, gotTenant, err := tx.GetAPIKeyAndTenant(ctx, []byte("hash-1"))
		require.NoError(t, err)
		assert.True(t, k.CreatedAt.Equal(got.CreatedAt))
		same := *got
		same.CreatedAt = k.CreatedAt
		assert.Equal(t, *k, same, "the key as written")
		assert.Equal(t, tn.ID, gotTenant.ID)
		assert.Equal(t, tn.Name, gotTenant.Name)
		assert.Equal(t, tn.Status, gotTenant.Status)
		assert.True(t, tn.CreatedAt.Equal(gotTenant.CreatedAt))
		return nil
	})
	in(t, b, func(tx X) error {
		got, err := tx.GetAPIKeyByHash(ctx, []byte("hash-1"))
		require.NoError(t, err)
		assert.Equal(t, k.ID, got.ID)
		assert.Equal(t, []string{"charges:read"}, got.Scopes)
		rev := now()
		got.RevokedAt = &rev
		got.RolledTo = "key_next"
		require.NoError(t, tx.UpdateAPIKey(ctx, got))
		return nil
	})
	in(t, b, func(tx X) error {
		list, err := tx.ListAPIKeys(ctx, tn.ID)
		require.NoError(t, err)
		require.Len(t, list, 1)
		require.NotNil(t, list[0].RevokedAt)
		assert.Equal(t, "key_next", list[0].RolledTo)
		list, err = tx.ListAPIKeys(ctx, other.ID)
		require.NoError(t, err)
		assert.Empty(t, list)
		return nil
	})
}

func testRollback[X Tx](t *testing.T, b store.Backend[X]) {
	ctx := context.Background()
	tn := newTenant()
	err := b.InTx(ctx, func(tx X) error {
		require.NoError(t, tx.CreateTenant(ctx, tn))
		require.NoError(t, audit.Append(ctx, tx, &audit.Entry{ActorType: audit.ActorSystem, Action: "tenant.created", Target: tn.ID}))
		_, err := tx.ClaimIdempotency(ctx, &idempotency.Record{TenantID: tn.ID, CredentialID: "k", Key: "rb",
			RequestHash: []byte{1}, State: idempotency.StateInProgress, CreatedAt: now(), LockedUntil: now().Add(time.Minute), ExpiresAt: now().Add(time.Hour)})
		require.NoError(t, err)
		return errBoom
	})
	require.ErrorIs(t, err, errBoom)
	in(t, b, func(tx X) error {
		_, err := tx.GetTenant(ctx, tn.ID)
		require.ErrorIs(t, err, store.ErrNotFound)
		entries, err := tx.ListAudit(ctx, audit.Filter{Target: tn.ID})
		require.NoError(t, err)
		assert.Empty(t, entries)
		_, err = tx.ClaimIdempotency(ctx, &idempotency.Record{TenantID: tn.ID, CredentialID: "k", Key: "rb",
			RequestHash: []byte{1}, State: idempotency.StateInProgress, CreatedAt: now(), LockedUntil: now().Add(time.Minute), ExpiresAt: now().Add(time.Hour)})
		require.NoError(t, err, "the rolled-back claim left nothing behind")
		return nil
	})
}

func testIdempotencyRace[X Tx](t *testing.T, b store.Backend[X]) {
	ctx := context.Background()
	var winners, losers atomic.Int32
	var wg sync.WaitGroup
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := b.InTx(ctx, func(tx X) error {
				old, err := tx.ClaimIdempotency(ctx, &idempotency.Record{TenantID: "ten_race", CredentialID: "key_1", Key: "same",
					Method: "POST", Path: "/v1/x", RequestHash: []byte{9}, State: idempotency.StateInProgress,
					CreatedAt: now(), LockedUntil: now().Add(time.Minute), ExpiresAt: now().Add(time.Hour)})
				if err == nil {
					winners.Add(1)
					return nil
				}
				if assert.ErrorIs(t, err, store.ErrConflict) && assert.NotNil(t, old) {
					assert.Equal(t, idempotency.StateInProgress, old.State)
					losers.Add(1)
				}
				return nil
			})
			assert.NoError(t, err)
		}()
	}
	wg.Wait()
	assert.Equal(t, int32(1), winners.Load())
	assert.Equal(t, int32(49), losers.Load())
}

func testIdempotencyLifecycle[X Tx](t *testing.T, b store.Backend[X]) {
	ctx := context.Background()
	rec := &idempotency.Record{TenantID: "ten_1", CredentialID: "key_1", Key: "k1", Method: "POST", Path: "/v1/x",
		RequestHash: []byte{1, 2}, State: idempotency.StateInProgress, CreatedAt: now(),
		LockedUntil: now().Add(-time.Second), ExpiresAt: now().Add(time.Hour)}
	in(t, b, func(tx X) error { _, err := tx.ClaimIdempotency(ctx, rec); return err })
	// An in-progress claim whose lock lapsed may be taken over.
	again := *rec
	again.LockedUntil = now().Add(time.Minute)
	in(t, b, func(tx X) error { _, err := tx.ClaimIdempotency(ctx, &again); return err })
	done := again
	done.State, done.Status, done.Body = idempotency.StateDone, 201, []byte(`{"ok":true}`)
	done.Header = map[string]string{"Content-Type": "application/json"}
	in(t, b, func(tx X) error { return tx.CompleteIdempotency(ctx, &done) })
	_ = b.InTx(ctx, func(tx X) error {
		old, err := tx.ClaimIdempotency(ctx, &again)
		require.ErrorIs(t, err, store.ErrConflict)
		assert.Equal(t, idempotency.StateDone, old.State)
		assert.Equal(t, 201, old.Status)
		assert.Equal(t, []byte(`{"ok":true}`), old.Body)
		assert.Equal(t, "application/json", old.Header["Content-Type"])
		assert.Equal(t, []byte{1, 2}, old.RequestHash)
		return nil
	})
	in(t, b, func(tx X) error {
		n, err := tx.PruneIdempotency(ctx, now().Add(2*time.Hour))
		require.NoError(t, err)
		assert.Equal(t, 1, n)
		require.NoError(t, tx.ReleaseIdempotency(ctx, "ten_1", "key_1", "k1"))
		_, err = tx.ClaimIdempotency(ctx, &again)
		require.NoError(t, err)
		return tx.ReleaseIdempotency(ctx, "ten_1", "key_1", "k1")
	})
}

func testAuditChain[X Tx](t *testing.T, b store.Backend[X]) {
	ctx := context.Background()
	svc := audit.NewService(store.Bind(b, func(x X) audit.Repo { return x }), 0, nil)
	for i := range 25 {
		in(t, b, func(tx X) error {
			return audit.Append(ctx, tx, &audit.Entry{TenantID: "ten_a", ActorType: audit.ActorAPIKey, ActorID: "key_1",
				Action: "thing.changed", Target: "obj_" + string(rune('a'+i)), Data: []byte(`{"b":2,"a":1}`)})
		})
	}
	n, err := svc.SealAll(ctx)
	require.NoError(t, err)
	assert.Equal(t, 25, n)
	res, err := svc.Verify(ctx)
	require.NoError(t, err)
	assert.True(t, res.OK, res.Problem)
	assert.Equal(t, int64(25), res.Checked)

	list, err := svc.List(ctx, audit.Filter{TenantID: "ten_a", Limit: 10})
	require.NoError(t, err)
	require.Len(t, list, 10)
	assert.Equal(t, `{"b":2,"a":1}`, string(list[0].Data), "data is kept byte for byte")

	// More entries after a seal continue the same chain.
	in(t, b, func(tx X) error {
		return audit.Record(ctx, tx, "late.entry", "obj_z", nil)
	})
	_, err = svc.SealAll(ctx)
	require.NoError(t, err)
	res, err = svc.Verify(ctx)
	require.NoError(t, err)
	assert.True(t, res.OK, res.Problem)
	assert.Equal(t, int64(26), res.Checked)

	// Entries are numbered gap-free in the writing transaction: one rolled
	// back leaves no hole, so a hole always means a deleted entry.
	var first audit.Entry
	in(t, b, func(tx X) error {
		first = audit.Entry{ActorType: audit.ActorSystem, Action: "numbered"}
		return audit.Append(ctx, tx, &first)
	})
	require.NotZero(t, first.Stripe)
	require.NotZero(t, first.StripeSeq)
	errRollback := errors.New("roll back")
	require.ErrorIs(t, b.InTx(ctx, func(tx X) error {
		if err := audit.Append(ctx, tx, &audit.Entry{ActorType: audit.ActorSystem, Action: "rolled.back"}); err != nil {
			return err
		}
		return errRollback
	}), errRollback)
	var next audit.Entry
	in(t, b, func(tx X) error {
		next = audit.Entry{ActorType: audit.ActorSystem, Action: "numbered"}
		return audit.Append(ctx, tx, &next)
	})
	assert.Equal(t, first.Stripe, next.Stripe, "an idle log keeps using its lowest stripe")
	assert.Equal(t, first.StripeSeq+1, next.StripeSeq, "the rolled-back entry left no gap")
	in(t, b, func(tx X) error {
		stripes, err := tx.AuditStripes(ctx)
		require.NoError(t, err)
		for _, st := range stripes {
			if st.ID == next.Stripe {
				assert.Equal(t, next.StripeSeq, st.Next)
			}
		}
		return nil
	})
	_, err = svc.SealAll(ctx)
	require.NoError(t, err)
	res, err = svc.Verify(ctx)
	require.NoError(t, err)
	assert.True(t, res.OK, res.Problem)

	// Entries by number, sealed or not.
	in(t, b, func(tx X) error {
		got, err := tx.AuditNumbered(ctx, next.Stripe, next.StripeSeq-1, next.StripeSeq)
		require.NoError(t, err)
		require.Len(t, got, 2)
		assert.Equal(t, first.ID, got[0].ID)
		assert.Equal(t, next.ID, got[1].ID)
		return nil
	})

	// Audit keys, checkpoints and retention records.
	in(t, b, func(tx X) error {
		_, err := tx.LatestAuditCheckpoint(ctx)
		require.ErrorIs(t, err, store.ErrNotFound)
		now := time.Now().UTC().Truncate(time.Microsecond)
		for _, kid := range []string{"k1", "k2"} {
			require.NoError(t, tx.CreateAuditKey(ctx, &audit.Key{KID: kid, PublicJWK: []byte(`{"kty":"OKP"}`),
				PrivateEnc: []byte{1, 2}, KEKID: "kek", CreatedAt: now}))
			now = now.Add(time.Second)
		}
		return nil
	})
	require.ErrorIs(t, b.InTx(ctx, func(tx X) error {
		return tx.CreateAuditKey(ctx, &audit.Key{KID: "k1", PublicJWK: []byte(`{}`), PrivateEnc: []byte{1},
			KEKID: "kek", CreatedAt: time.Now()})
	}), store.ErrConflict)
	in(t, b, func(tx X) error {
		now := time.Now().UTC().Truncate(time.Microsecond)
		require.NoError(t, tx.RetireAuditKey(ctx, "k1", now))
		require.ErrorIs(t, tx.RetireAuditKey(ctx, "k1", now), store.ErrNotFound)
		keys, err := tx.AuditKeys(ctx)
		require.NoError(t, err)
		require.Len(t, keys, 2)
		assert.Equal(t, "k2", keys[0].KID, "newest first")
		assert.Nil(t, keys[0].RetiredAt)
		require.NotNil(t, keys[1].RetiredAt)
		assert.Equal(t, []byte{1, 2}, keys[1].PrivateEnc)

		var ids []int64
		for pos := int64(1); pos <= 3; pos++ {
			c := &audit.Checkpoint{ChainPos: pos, Hash: []byte{byte(pos)}, KID: "k2", JWS: "jws", CreatedAt: now}
			require.NoError(t, tx.AddAuditCheckpoint(ctx, c))
			ids = append(ids, c.ID)
		}
		assert.Less(t, ids[0], ids[1])
		page, err := tx.AuditCheckpoints(ctx, ids[0], 1)
		require.NoError(t, err)
		require.Len(t, page, 1)
		assert.Equal(t, int64(2), page[0].ChainPos)
		last, err := tx.LatestAuditCheckpoint(ctx)
		require.NoError(t, err)
		assert.Equal(t, ids[2], last.ID)
		assert.Equal(t, []byte{3}, last.Hash)
		rs, err := tx.AuditRetentions(ctx)
		require.NoError(t, err)
		assert.Empty(t, rs)
		return nil
	})
}

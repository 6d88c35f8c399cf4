package memory

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/accounts"
	"github.com/perfectpay/perfectpay/store"
)

// TestPasskeysByUserIndexMatchesTheTable keeps passkeys by user through
// the store's writes (adds, uses, a taken credential id and an unknown
// user refused, users' passkeys deleted), each also rolled back once,
// then compares the index with the table sorted by tenant, user and
// credential id, ListPasskeys for every user (one whose id starts
// another's, one of another tenant, one unknown) with the user's passkeys
// in the table by creation then id, and what DeleteUserPasskeys deletes
// with the user's passkeys in the table.
func TestPasskeysByUserIndexMatchesTheTable(t *testing.T) {
	ctx := context.Background()
	s, in, users, tenantOf := usersStore(t)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	cred := func(i int) []byte { return []byte(fmt.Sprintf("cred_%03d", (i*37)%200)) }
	add := func(from, to int, err error) {
		in(err, func(tx *Tx) {
			for i := from; i < to; i++ {
				u := i % len(users)
				require.NoError(t, tx.AddPasskey(ctx, &accounts.Passkey{ID: cred(i), TenantID: tenantOf(u), UserID: users[u],
					Name: "key", PublicKey: []byte{1}, CreatedAt: t0.Add(time.Duration(i%7) * time.Second)})) // ties
			}
		})
	}
	erase := func(tenantID, userID string, err error) {
		in(err, func(tx *Tx) {
			_, derr := tx.DeleteUserPasskeys(ctx, tenantID, userID)
			require.NoError(t, derr)
		})
	}
	add(0, 40, nil)
	add(40, 50, errRolledBack)
	add(40, 60, nil)
	in(nil, func(tx *Tx) {
		require.ErrorIs(t, tx.AddPasskey(ctx, &accounts.Passkey{ID: cred(3), TenantID: "ten_a", UserID: "usr_2"}), store.ErrConflict)
		require.ErrorIs(t, tx.AddPasskey(ctx, &accounts.Passkey{ID: cred(100), TenantID: "ten_b", UserID: "usr_1"}), store.ErrNotFound)
		require.NoError(t, tx.UsePasskey(ctx, "ten_a", "usr_1", cred(0), 5, t0))
	})
	erase("ten_a", "usr_1", errRolledBack)
	erase("ten_a", "usr_2", nil)
	erase("ten_a", "usr_3", nil) // another tenant's user: nothing
	add(60, 80, nil)

	p := s.d.people
	var want []userPasskey
	for id, k := range p.passkeys {
		want = append(want, userPasskey{k.TenantID, k.UserID, id})
	}
	slices.SortFunc(want, compareUserPasskeys)
	require.Greater(t, len(want), 50)
	require.Equal(t, want, keysOf(p.passkeysByUser), "the index holds exactly the passkeys")

	for _, who := range [][2]string{{"ten_a", "usr_1"}, {"ten_a", "usr_10"}, {"ten_a", "usr_2"}, {"ten_b", "usr_3"},
		{"ten_b", "usr_30"}, {"ten_b", "usr_1"}, {"ten_a", "usr_9"}, {"ten_a", ""}} {
		var wantList []accounts.Passkey
		var wantIDs []string
		for id, k := range p.passkeys {
			if k.TenantID == who[0] && k.UserID == who[1] {
				wantList = append(wantList, clonePasskey(k))
				wantIDs = append(wantIDs, id)
			}
		}
		slices.SortFunc(wantList, func(a, b accounts.Passkey) int {
			return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), slices.Compare(a.ID, b.ID))
		})
		slices.Sort(wantIDs)
		in(errRolledBack, func(tx *Tx) {
			list, err := tx.ListPasskeys(ctx, who[0], who[1])
			require.NoError(t, err)
			require.Equal(t, wantList, list, "%s/%s", who[0], who[1])
			was := maps.Clone(p.passkeys)
			n, err := tx.DeleteUserPasskeys(ctx, who[0], who[1])
			require.NoError(t, err)
			var got []string
			for id := range was {
				if _, ok := p.passkeys[id]; !ok {
					got = append(got, id)
				}
			}
			slices.Sort(got)
			require.Equal(t, wantIDs, got, "%s/%s", who[0], who[1])
			require.Equal(t, len(wantIDs), n)
		})
	}
	require.Equal(t, want, keysOf(p.passkeysByUser), "rolled back deletes leave the index as it was")
}

// seedPasskeys is a store of 50,000 users of a tenant with 2 passkeys
// each: 100,000 passkeys.
func seedPasskeys(b *testing.B) *Store {
	ctx := context.Background()
	return seedStore(b, []string{"ten_a"}, retentionRows, func(tx *Tx, j int) error {
		u := fmt.Sprintf("cus_%05d", j%(retentionRows/2))
		if j < retentionRows/2 {
			if err := tx.CreateUser(ctx, &accounts.User{ID: u, TenantID: "ten_a", Kind: accounts.UserPayer,
				Email: u + "@example.com", CreatedAt: benchAt(j)}); err != nil {
				return err
			}
		}
		return tx.AddPasskey(ctx, &accounts.Passkey{ID: []byte(fmt.Sprintf("cred_%06d", j)), TenantID: "ten_a",
			UserID: u, Name: "key", PublicKey: make([]byte, 77), CreatedAt: benchAt(j)})
	})
}

// BenchmarkDeleteUserPasskeys: 100,000 passkeys of 50,000 users; one
// user's 2 passkeys deleted (an erasure), rolled back.
//
//	go test ./store/memory/ -run '^$' -bench DeleteUserPasskeys
func BenchmarkDeleteUserPasskeys(b *testing.B) {
	ctx := context.Background()
	s := seedPasskeys(b)
	eachRolledBack(b, s, func(tx *Tx) {
		if n, err := tx.DeleteUserPasskeys(ctx, "ten_a", "cus_41700"); err != nil || n != 2 {
			b.Fatalf("deleted %d, %v", n, err)
		}
	})
}

// BenchmarkListPasskeys: 100,000 passkeys of 50,000 users; one user's 2
// passkeys listed (a passkey sign-in, the account page).
//
//	go test ./store/memory/ -run '^$' -bench ListPasskeys
func BenchmarkListPasskeys(b *testing.B) {
	ctx := context.Background()
	s := seedPasskeys(b)
	eachRolledBack(b, s, func(tx *Tx) {
		if ks, err := tx.ListPasskeys(ctx, "ten_a", "cus_41700"); err != nil || len(ks) != 2 {
			b.Fatalf("listed %d, %v", len(ks), err)
		}
	})
}

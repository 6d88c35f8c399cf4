package memory

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestTenantKeyCountIndexMatchesTheTable keeps liveByVersion through the store's
// writes of tenant keys (keys made, one made destroyed, rewraps from
// version to version, refused ones, destructions and new keys of the
// tenants whose key was destroyed), each also rolled back once. It then
// compares the counts, and CountTenantKeys, with the live keys of the
// table counted by KEK version, which holds no version without one,
// before and after every live key of version 3 is destroyed in a
// transaction rolled back.
func TestTenantKeyCountIndexMatchesTheTable(t *testing.T) {
	ctx := context.Background()
	const n = 60
	ids := tenantIDs(n)
	s, in := tenantStore(t, ids...)
	at := time.Unix(1_700_000_100, 0).UTC()
	ensure := func(from, to int, suffix string, err error) {
		in(err, func(tx *Tx) {
			for j := from; j < to; j++ {
				k := tenantKeyOf(j)
				k.ID += suffix
				if j%17 == 5 {
					k.DestroyedAt = &at // made destroyed: counted nowhere
				}
				_, kerr := tx.EnsureTenantKey(ctx, k)
				require.NoError(t, kerr)
			}
		})
	}
	rewrap := func(k, from, to int, err error) {
		in(err, func(tx *Tx) {
			for j := 0; j < n; j += k {
				_ = tx.RewrapTenantKey(ctx, tenantKeyOf(j).ID, from, to, []byte("w"), at) // some refused
			}
		})
	}
	destroy := func(k int, err error) {
		in(err, func(tx *Tx) {
			for j := 1; j < n; j += k {
				_, _ = tx.DestroyTenantKey(ctx, ids[j], at) // some have none
			}
		})
	}
	ensure(0, 30, "", nil)
	ensure(30, 45, "", errRolledBack)
	ensure(30, 60, "", nil)
	rewrap(2, 1, 2, nil)
	rewrap(3, 1, 2, errRolledBack)
	rewrap(4, 2, 3, nil)
	rewrap(8, 3, 1, nil)
	destroy(7, nil)
	destroy(3, errRolledBack)
	ensure(0, n, "_2", nil) // a new key for the tenants whose key was destroyed
	rewrap(5, 2, 3, nil)

	counted := func() map[int]int {
		out := map[int]int{}
		for _, k := range s.d.vault.tenantKeys {
			if k.DestroyedAt == nil {
				out[k.KEKVersion]++
			}
		}
		return out
	}
	want := counted()
	require.Len(t, want, 3)
	require.Equal(t, want, map[int]int(s.d.vault.liveByVersion), "the counts are the table's")
	in(errRolledBack, func(tx *Tx) {
		got, err := tx.CountTenantKeys(ctx)
		require.NoError(t, err)
		require.Equal(t, want, got)
		for _, k := range s.d.vault.tenantKeys {
			if k.DestroyedAt == nil && k.KEKVersion == 3 {
				_, err := tx.DestroyTenantKey(ctx, k.TenantID, at)
				require.NoError(t, err, "%s", k.ID)
			}
		}
		after := counted()
		require.NotContains(t, after, 3)
		got, err = tx.CountTenantKeys(ctx)
		require.NoError(t, err)
		require.Equal(t, after, got, "a version without a live key is not counted")
	})
	require.Equal(t, want, map[int]int(s.d.vault.liveByVersion), "rolled back writes leave the counts as they were")
}

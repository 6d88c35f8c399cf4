package memory

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/vault"
)

// tenantKeyOf is tenant j's key, wrapped under KEK version 1.
func tenantKeyOf(j int) *vault.TenantKey {
	return &vault.TenantKey{ID: fmt.Sprintf("tk_%06d", j), TenantID: fmt.Sprintf("ten_%04d", j), KEKVersion: 1,
		Wrapped: []byte("wrapped"), CreatedAt: time.Unix(1_700_000_000, 0).UTC()}
}

// TestTenantKeysToRewrapMatchesTheTable creates tenant keys, rewraps and
// destroys some, each round also once rolled back, and pages through
// TenantKeysToRewrap as the KEK rotation does, for each version and
// limit, against the table filtered and sorted by id.
func TestTenantKeysToRewrapMatchesTheTable(t *testing.T) {
	ctx := context.Background()
	const n = 60
	ids := tenantIDs(n)
	s, in := tenantStore(t, ids...)
	at := time.Unix(1_700_000_100, 0).UTC()
	for round := range 4 {
		err := []error{nil, errRolledBack}[round%2]
		in(err, func(tx *Tx) {
			for j := round * 15; j < round*15+15; j++ {
				k := tenantKeyOf(j)
				k.TenantID = ids[j]
				_, kerr := tx.EnsureTenantKey(ctx, k)
				require.NoError(t, kerr)
			}
			for j := 0; j < round*15+15; j += 4 {
				_ = tx.RewrapTenantKey(ctx, tenantKeyOf(j).ID, 1, 2, []byte("w2"), at)
			}
			for j := 1; j < round*15+15; j += 9 {
				_, _ = tx.DestroyTenantKey(ctx, ids[j], at)
			}
		})
	}
	live := 0
	for _, k := range s.d.vault.tenantKeys {
		if k.DestroyedAt == nil {
			live++
		}
	}
	require.Equal(t, live, s.d.vault.liveByID.len(), "the index holds the live keys alone")
	for _, version := range []int{1, 2, 3} {
		var want []string
		for _, k := range s.d.vault.tenantKeys {
			if k.DestroyedAt == nil && k.KEKVersion != version {
				want = append(want, k.ID)
			}
		}
		slices.Sort(want)
		for _, limit := range []int{1, 4, 100} {
			var got []string
			after := ""
			for {
				var page []vault.TenantKey
				in(nil, func(tx *Tx) {
					var err error
					page, err = tx.TenantKeysToRewrap(ctx, version, after, limit)
					require.NoError(t, err)
				})
				require.LessOrEqual(t, len(page), limit)
				for _, k := range page {
					require.True(t, strings.Compare(k.ID, after) > 0)
					require.Equal(t, s.d.vault.tenantKeys[k.ID].KEKVersion, k.KEKVersion)
					got = append(got, k.ID)
					after = k.ID
				}
				if len(page) < limit {
					break
				}
			}
			require.Equal(t, want, got, "version %d, limit %d", version, limit)
		}
	}
}

// BenchmarkTenantKeysToRewrap is one page of 100 of the KEK rotation,
// from a cursor in the middle of 100,000 tenants' keys.
func BenchmarkTenantKeysToRewrap(b *testing.B) {
	const n = 100_000
	ids := tenantIDs(n)
	s := seedStore(b, ids, n, func(tx *Tx, j int) error {
		k := tenantKeyOf(j)
		k.TenantID = ids[j]
		_, err := tx.EnsureTenantKey(context.Background(), k)
		return err
	})
	after := tenantKeyOf(n / 2).ID
	eachRolledBack(b, s, func(tx *Tx) {
		if page, err := tx.TenantKeysToRewrap(context.Background(), 2, after, 100); err != nil || len(page) != 100 {
			b.Fatal(len(page), err)
		}
	})
}

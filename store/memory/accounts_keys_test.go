package memory

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/accounts"
	"github.com/perfectpay/perfectpay/store"
)

// TestAPIKeyIndexMatchesTheTable keeps keysByTenant through the store's
// writes of API keys (creates of three tenants, one of whose ids starts
// another's, many at one instant; a duplicate and one of an unknown tenant
// refused; updates, some of which move a key to another creation time,
// one refused for naming another tenant), each also rolled back once. It
// then compares the index with the table sorted by tenant, creation and
// id, and ListAPIKeys for every tenant with the tenant's keys of the
// table in that order.
func TestAPIKeyIndexMatchesTheTable(t *testing.T) {
	ctx := context.Background()
	tenants := []string{"ten_a", "ten_ab", "ten_b"}
	s, in := tenantStore(t, tenants...)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	key := func(j int) *accounts.APIKey {
		return &accounts.APIKey{ID: fmt.Sprintf("key_%04d", (j*37)%1000), TenantID: tenants[j%3], Kind: "secret",
			Mode: "test", Hash: []byte(fmt.Sprintf("hash_%04d", j)), Scopes: []string{"charges:write"}, Name: "key",
			CreatedAt: t0.Add(time.Duration(j%5) * time.Second)}
	}
	create := func(from, to int, err error) {
		in(err, func(tx *Tx) {
			for j := from; j < to; j++ {
				require.NoError(t, tx.CreateAPIKey(ctx, key(j)))
			}
		})
	}
	update := func(k int, err error) {
		in(err, func(tx *Tx) {
			for j := 0; j < 120; j += k {
				id := fmt.Sprintf("key_%04d", (j*37)%1000)
				c, ok := tx.d.apiKeys[id]
				if !ok {
					continue // made in a transaction rolled back
				}
				c = cloneKey(c)
				at := t0.Add(time.Hour)
				c.Name, c.RevokedAt, c.CreatedAt = "renamed", &at, c.CreatedAt.Add(time.Duration(j%3)*time.Second)
				require.NoError(t, tx.UpdateAPIKey(ctx, &c))
			}
		})
	}
	create(0, 40, nil)
	create(40, 70, errRolledBack)
	create(40, 80, nil)
	in(nil, func(tx *Tx) {
		require.ErrorIs(t, tx.CreateAPIKey(ctx, key(3)), store.ErrConflict, "a key's id taken")
		k := key(200)
		k.TenantID = "ten_unknown"
		require.ErrorIs(t, tx.CreateAPIKey(ctx, k), store.ErrNotFound)
		other := cloneKey(s.d.apiKeys["key_0037"])
		other.TenantID = "ten_b"
		require.ErrorIs(t, tx.UpdateAPIKey(ctx, &other), store.ErrNotFound, "another tenant's key")
	})
	update(4, nil)
	update(3, errRolledBack)
	create(80, 120, nil)

	var want []tenantTimed
	for _, k := range s.d.apiKeys {
		want = append(want, listedKey(&k))
	}
	slices.SortFunc(want, compareTenantTimed)
	require.Len(t, want, 120)
	require.Equal(t, want, keysOf(s.d.keysByTenant), "the index holds exactly the keys")

	for _, tn := range append(slices.Clone(tenants), "ten_unknown", "") {
		var wantKeys []accounts.APIKey
		for _, k := range s.d.apiKeys {
			if k.TenantID == tn {
				wantKeys = append(wantKeys, k)
			}
		}
		slices.SortFunc(wantKeys, func(a, b accounts.APIKey) int {
			return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), strings.Compare(a.ID, b.ID))
		})
		in(errRolledBack, func(tx *Tx) {
			got, err := tx.ListAPIKeys(ctx, tn)
			require.NoError(t, err)
			require.Equal(t, wantKeys, got, "%q", tn)
		})
	}
}

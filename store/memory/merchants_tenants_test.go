package memory

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/merchants"
	"github.com/perfectpay/perfectpay/store"
)

// TestMerchantTenantIndexMatchesTheTable keeps byTenant through the
// store's writes of merchants (creates, a second merchant of a tenant and
// one of an unknown tenant refused, updates, one refused for naming
// another tenant, re-checks claimed, merchants moved to another tenant
// and a second one given to a tenant behind the checks' back), each also
// rolled back once. It then compares the index with the tenants of the
// table's merchants, GetMerchantByTenant for every tenant with the
// tenant's merchant of the smallest id in the table, and whether a
// create for each tenant conflicts with the table's answer.
func TestMerchantTenantIndexMatchesTheTable(t *testing.T) {
	ctx := context.Background()
	const n = 12
	tenants := append(tenantIDs(n), "ten_00") // ten_00 starts ten_000x
	s, in := tenantStore(t, tenants...)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	merchant := func(i int, tenant string) *merchants.Merchant {
		at := t0
		return &merchants.Merchant{ID: fmt.Sprintf("acct_%d", i), TenantID: tenant, DisplayName: "Shop", MCC: "5734",
			Country: "FR", CreatedAt: t0, UpdatedAt: t0, Domains: []merchants.Domain{{Name: fmt.Sprintf("m%d.example", i),
				VerifiedAt: &at, Method: merchants.MethodDNS, NextCheckAt: &at}}}
	}
	create := func(from, to int, err error) {
		in(err, func(tx *Tx) {
			for i := from; i < to; i++ {
				require.NoError(t, tx.CreateMerchant(ctx, merchant(i, tenants[i])))
			}
		})
	}
	create(0, 4, nil)
	create(4, 7, errRolledBack)
	create(4, 8, nil)
	in(nil, func(tx *Tx) {
		require.ErrorIs(t, tx.CreateMerchant(ctx, merchant(20, tenants[2])), store.ErrConflict, "a second merchant")
		require.ErrorIs(t, tx.CreateMerchant(ctx, merchant(21, "ten_unknown")), store.ErrNotFound)
		require.ErrorIs(t, tx.UpdateMerchant(ctx, merchant(3, tenants[9])), store.ErrNotFound, "another tenant")
		require.NoError(t, tx.UpdateMerchant(ctx, merchant(1, tenants[1])))
		ok, err := tx.ClaimDomainCheck(ctx, "acct_2", "m2.example", t0, t0.Add(time.Hour))
		require.NoError(t, err)
		require.True(t, ok)
	})
	moved := func(tx *Tx) { // behind the checks' back: a merchant moved, a tenant given a second
		tx.putMerchant(*merchant(5, tenants[9]))
		tx.putMerchant(*merchant(30, tenants[6]))
		tx.putMerchant(*merchant(10, tenants[6]))
	}
	in(errRolledBack, moved)
	in(nil, moved)
	create(11, 12, errRolledBack)
	in(nil, func(tx *Tx) { require.NoError(t, tx.CreateMerchant(ctx, merchant(12, "ten_00"))) })

	d := s.d.mandates
	want := map[string][]string{}
	for id, m := range d.merchants {
		want[m.TenantID] = append(want[m.TenantID], id)
	}
	for _, ids := range want {
		slices.Sort(ids)
	}
	require.Len(t, want[tenants[6]], 3)
	require.NotContains(t, want, tenants[5])
	require.Equal(t, want, map[string][]string(d.byTenant), "the index holds exactly the merchants' tenants")

	for _, tn := range append(slices.Clone(tenants), "ten_unknown", "") {
		var first *merchants.Merchant
		for _, m := range d.merchants {
			if m.TenantID == tn && (first == nil || m.ID < first.ID) {
				first = m.Clone()
			}
		}
		in(errRolledBack, func(tx *Tx) {
			got, err := tx.GetMerchantByTenant(ctx, tn)
			if first == nil {
				require.ErrorIs(t, err, store.ErrNotFound, "%q", tn)
			} else {
				require.NoError(t, err)
				require.Equal(t, first, got, "%q", tn)
			}
		})
		if _, ok := s.d.tenants[tn]; !ok {
			continue
		}
		in(errRolledBack, func(tx *Tx) {
			m := merchant(40, tn)
			if err := tx.CreateMerchant(ctx, m); first != nil {
				require.ErrorIs(t, err, store.ErrConflict, "%q", tn)
			} else {
				require.NoError(t, err, "%q", tn)
			}
		})
	}
	require.Equal(t, want, map[string][]string(d.byTenant), "rolled back writes leave the index as it was")
}

// BenchmarkGetMerchantByTenant: 100,000 merchants, one a tenant; one
// tenant's merchant read (its profile page, a mandate's creation).
//
//	go test ./store/memory/ -run '^$' -bench GetMerchantByTenant
func BenchmarkGetMerchantByTenant(b *testing.B) {
	ctx := context.Background()
	s := seedMerchants(b, nil)
	eachRolledBack(b, s, func(tx *Tx) {
		if m, err := tx.GetMerchantByTenant(ctx, "ten_041700"); err != nil || m.ID != "acct_041700" {
			b.Fatalf("got %v, %v", m, err)
		}
	})
}

// BenchmarkCreateMerchant: 100,000 merchants; a new tenant's merchant
// created with one verified domain, rolled back. It checks the tenant
// has no merchant yet and no other merchant verified the domain.
//
//	go test ./store/memory/ -run '^$' -bench CreateMerchant
func BenchmarkCreateMerchant(b *testing.B) {
	ctx := context.Background()
	m := benchMerchant(retentionRows)
	s := seedMerchants(b, []string{m.TenantID})
	eachRolledBack(b, s, func(tx *Tx) {
		if err := tx.CreateMerchant(ctx, &m); err != nil {
			b.Fatal(err)
		}
	})
}

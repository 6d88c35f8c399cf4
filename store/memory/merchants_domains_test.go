package memory

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/merchants"
	"github.com/perfectpay/perfectpay/store"
)

// TestMerchantDomainIndexMatchesTheTable keeps byDomain through the
// store's writes of merchants (creates, updates that verify, unverify,
// add and drop domains, re-checks claimed, refused creates and updates
// that claim another's domain, two merchants verifying one domain behind
// the checks' back), each also rolled back once. It then compares the
// index with the verified domains in the table, FindMerchantsByDomain for
// every domain with the merchants the table says verified it, by id, and
// whether an update claiming each domain conflicts with the table's
// answer.
func TestMerchantDomainIndexMatchesTheTable(t *testing.T) {
	ctx := context.Background()
	const n = 12
	tenants := tenantIDs(n + 1)
	s, in := tenantStore(t, tenants...)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	id := func(i int) string { return fmt.Sprintf("acct_%d", i) } // acct_1 starts acct_10
	// merchant i at round r: domains of its own, some verified, and at
	// round 2 one shared with merchant i+1, unverified.
	merchant := func(i, r int) *merchants.Merchant {
		m := &merchants.Merchant{ID: id(i), TenantID: tenants[i], DisplayName: "Shop", MCC: "5734", Country: "FR",
			CreatedAt: t0, UpdatedAt: t0}
		for k := range 1 + (i+r)%4 {
			d := merchants.Domain{Name: fmt.Sprintf("m%d-d%d.example", i, k)}
			if (i+k+r)%3 != 0 {
				at := t0.Add(time.Duration(k) * time.Second)
				d.VerifiedAt, d.Method = &at, merchants.MethodDNS
				if k%2 == 0 {
					d.NextCheckAt = &at
				}
			}
			m.Domains = append(m.Domains, d)
		}
		if r == 2 {
			m.Domains = append(m.Domains, merchants.Domain{Name: fmt.Sprintf("m%d-d0.example", i+1)})
		}
		return m
	}
	create := func(from, to int, err error) {
		in(err, func(tx *Tx) {
			for i := from; i < to; i++ {
				require.NoError(t, tx.CreateMerchant(ctx, merchant(i, 0)))
			}
		})
	}
	update := func(k, r int, err error) {
		in(err, func(tx *Tx) {
			for i := 0; i < n; i += k {
				if _, ok := s.d.mandates.merchants[id(i)]; ok {
					require.NoError(t, tx.UpdateMerchant(ctx, merchant(i, r)))
				}
			}
		})
	}
	create(0, 6, nil)
	create(6, 9, errRolledBack)
	create(6, 10, nil)
	update(2, 1, nil)
	update(3, 2, errRolledBack)
	update(3, 2, nil)
	in(nil, func(tx *Tx) { // refused: a domain another merchant verified
		m := merchant(n, 0)
		m.Domains = append(m.Domains, merchant(0, 1).Domains...)
		require.ErrorIs(t, tx.CreateMerchant(ctx, m), store.ErrConflict)
		m = merchant(3, 2)
		m.Domains = append(m.Domains, merchant(4, 0).Domains...)
		require.ErrorIs(t, tx.UpdateMerchant(ctx, m), store.ErrConflict)
	})
	in(nil, func(tx *Tx) { // re-checks claimed: the domains stay verified
		due, err := tx.DueDomainChecks(ctx, t0.Add(time.Hour), 5)
		require.NoError(t, err)
		for _, d := range due {
			ok, err := tx.ClaimDomainCheck(ctx, d.MerchantID, d.Domain, t0.Add(time.Hour), t0.Add(2*time.Hour))
			require.NoError(t, err)
			require.True(t, ok)
		}
	})
	in(nil, func(tx *Tx) { // one merchant's domains all dropped, another's all unverified
		require.NoError(t, tx.UpdateMerchant(ctx, &merchants.Merchant{ID: id(5), TenantID: tenants[5]}))
		m := merchant(7, 1)
		for k := range m.Domains {
			m.Domains[k].VerifiedAt = nil
		}
		require.NoError(t, tx.UpdateMerchant(ctx, m))
	})
	shared := func(tx *Tx) { // two merchants verifying one domain, written behind the checks' back
		for _, i := range []int{11, 10} {
			m := merchant(i, 0)
			at := t0
			m.Domains = append(m.Domains, merchants.Domain{Name: "shared.example", VerifiedAt: &at}, merchants.Domain{Name: "shared.example", VerifiedAt: &at})
			tx.putMerchant(*m)
		}
	}
	in(errRolledBack, shared)
	in(nil, shared)
	create(n, n+1, errRolledBack)

	d := s.d.mandates
	owners := map[string][]string{} // the table's verified domains and their merchants
	var names []string
	for _, m := range d.merchants {
		for _, dom := range m.Domains {
			names = append(names, dom.Name)
			if dom.Verified() && !slices.Contains(owners[dom.Name], m.ID) {
				owners[dom.Name] = append(owners[dom.Name], m.ID)
			}
		}
	}
	for _, ids := range owners {
		slices.Sort(ids)
	}
	require.Greater(t, len(owners), 15)
	require.Len(t, owners["shared.example"], 2)
	require.Equal(t, owners, map[string][]string(d.byDomain), "the index holds exactly the verified domains")

	for _, name := range append(names, "unknown.example", "") {
		var want []merchants.Merchant
		for _, m := range d.merchants {
			if slices.ContainsFunc(m.Domains, func(dom merchants.Domain) bool { return dom.Verified() && dom.Name == name }) {
				want = append(want, *m.Clone())
			}
		}
		slices.SortFunc(want, func(a, b merchants.Merchant) int { return cmp.Compare(a.ID, b.ID) })
		in(errRolledBack, func(tx *Tx) {
			got, err := tx.FindMerchantsByDomain(ctx, name)
			require.NoError(t, err)
			require.Equal(t, want, got, "%s", name)
		})
		for i := range n {
			m, ok := d.merchants[id(i)]
			if !ok {
				continue
			}
			c := m.Clone()
			at := t0
			c.Domains = append(c.Domains, merchants.Domain{Name: name, VerifiedAt: &at})
			conflict := false // another verified one of c's verified domains, in the table
			for _, dom := range c.Domains {
				conflict = conflict || (dom.Verified() && slices.ContainsFunc(owners[dom.Name], func(o string) bool { return o != c.ID }))
			}
			in(errRolledBack, func(tx *Tx) {
				if err := tx.UpdateMerchant(ctx, c); conflict {
					require.ErrorIs(t, err, store.ErrConflict, "%s claims %s", c.ID, name)
				} else {
					require.NoError(t, err, "%s claims %s", c.ID, name)
				}
			})
		}
	}
	require.Equal(t, owners, map[string][]string(d.byDomain), "rolled back writes leave the index as it was")
}

// benchMerchant is the j-th merchant of the merchant benchmarks: tenant
// ten_j, one verified domain dj.example.com.
func benchMerchant(j int) merchants.Merchant {
	at := benchT0
	return merchants.Merchant{ID: fmt.Sprintf("acct_%06d", j), TenantID: fmt.Sprintf("ten_%06d", j),
		DisplayName: "Shop", MCC: "5734", Country: "FR", CreatedAt: benchT0, UpdatedAt: benchT0,
		Domains: []merchants.Domain{{Name: fmt.Sprintf("d%06d.example.com", j), VerifiedAt: &at, Method: merchants.MethodOperator}}}
}

// seedMerchants is a store of 100,000 merchants, one a tenant, each with
// one verified domain. They are written with putMerchant: CreateMerchant
// read every merchant for each one before the indexes, which at this size
// takes minutes to seed.
func seedMerchants(b *testing.B, tenants []string) *Store {
	return seedStore(b, tenants, retentionRows, func(tx *Tx, j int) error {
		tx.putMerchant(benchMerchant(j))
		return nil
	})
}

// BenchmarkFindMerchantsByDomain: 100,000 merchants; the merchant that
// verified one domain found (the lookup API, a mandate's creation).
//
//	go test ./store/memory/ -run '^$' -bench FindMerchantsByDomain
func BenchmarkFindMerchantsByDomain(b *testing.B) {
	ctx := context.Background()
	s := seedMerchants(b, nil)
	eachRolledBack(b, s, func(tx *Tx) {
		if ms, err := tx.FindMerchantsByDomain(ctx, "d041700.example.com"); err != nil || len(ms) != 1 {
			b.Fatalf("found %d, %v", len(ms), err)
		}
	})
}

// BenchmarkUpdateMerchant: 100,000 merchants; one merchant's profile
// updated with 10 verified domains, whose owners are checked, rolled back.
//
//	go test ./store/memory/ -run '^$' -bench UpdateMerchant
func BenchmarkUpdateMerchant(b *testing.B) {
	ctx := context.Background()
	s := seedMerchants(b, nil)
	m := benchMerchant(41700)
	for k := range 9 {
		at := benchT0
		m.Domains = append(m.Domains, merchants.Domain{Name: fmt.Sprintf("shop%d.example.org", k), VerifiedAt: &at,
			Method: merchants.MethodDNS})
	}
	eachRolledBack(b, s, func(tx *Tx) {
		if err := tx.UpdateMerchant(ctx, &m); err != nil {
			b.Fatal(err)
		}
	})
}

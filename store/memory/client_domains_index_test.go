package memory

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/authz"
	"github.com/perfectpay/perfectpay/store"
)

// TestClientDomainIndexMatchesTheTable keeps domainsByTenant through the
// store's writes of client domains (creates of three tenants, one of whose
// ids starts another's; a host taken by another tenant and one of an
// unknown tenant refused; deletes, one refused for naming another tenant,
// some tenants left with none), each also rolled back once. It then
// compares the index with the table's domains by tenant, ascending, and
// ListClientDomains for every tenant with the tenant's domains of the
// table sorted by host.
func TestClientDomainIndexMatchesTheTable(t *testing.T) {
	ctx := context.Background()
	tenants := []string{"ten_a", "ten_ab", "ten_b", "ten_c"}
	s, in := tenantStore(t, tenants...)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	host := func(j int) string { return fmt.Sprintf("c%d.example", (j*37)%1000) }
	domain := func(j int) *authz.ClientDomain {
		return &authz.ClientDomain{Domain: host(j), TenantID: tenants[j%3], CreatedAt: t0.Add(time.Duration(j) * time.Second)}
	}
	create := func(from, to int, err error) {
		in(err, func(tx *Tx) {
			for j := from; j < to; j++ {
				require.NoError(t, tx.CreateClientDomain(ctx, domain(j)))
			}
		})
	}
	remove := func(k int, err error) {
		in(err, func(tx *Tx) {
			for j := 0; j < 90; j += k {
				if d, ok := tx.d.clientDomains[host(j)]; ok {
					require.NoError(t, tx.DeleteClientDomain(ctx, d.TenantID, d.Domain))
				}
			}
		})
	}
	create(0, 30, nil)
	create(30, 50, errRolledBack)
	create(30, 60, nil)
	in(nil, func(tx *Tx) {
		d := domain(4)
		d.TenantID = tenants[0]
		require.ErrorIs(t, tx.CreateClientDomain(ctx, d), store.ErrConflict, "a host another tenant holds")
		d = domain(200)
		d.TenantID = "ten_unknown"
		require.ErrorIs(t, tx.CreateClientDomain(ctx, d), store.ErrNotFound)
		require.ErrorIs(t, tx.DeleteClientDomain(ctx, tenants[0], host(1)), store.ErrNotFound, "another tenant's host")
	})
	remove(4, nil)
	remove(3, errRolledBack)
	create(60, 90, nil)
	in(nil, func(tx *Tx) { // ten_ab's domains all deleted
		for j := 1; j < 90; j += 3 {
			if _, ok := tx.d.clientDomains[host(j)]; ok {
				require.NoError(t, tx.DeleteClientDomain(ctx, tenants[1], host(j)))
			}
		}
	})

	want := map[string][]string{}
	for _, d := range s.d.clientDomains {
		want[d.TenantID] = append(want[d.TenantID], d.Domain)
	}
	for _, names := range want {
		slices.Sort(names)
	}
	require.Len(t, want, 2)
	require.Greater(t, len(want[tenants[0]]), 15)
	require.Equal(t, want, map[string][]string(s.d.domainsByTenant), "the index holds exactly the domains")

	for _, tn := range append(slices.Clone(tenants), "ten_unknown", "") {
		wantDomains := []authz.ClientDomain{}
		for _, d := range s.d.clientDomains {
			if d.TenantID == tn {
				wantDomains = append(wantDomains, d)
			}
		}
		slices.SortFunc(wantDomains, func(a, b authz.ClientDomain) int { return strings.Compare(a.Domain, b.Domain) })
		in(errRolledBack, func(tx *Tx) {
			was := maps.Clone(s.d.domainsByTenant)
			got, err := tx.ListClientDomains(ctx, tn)
			require.NoError(t, err)
			require.Equal(t, wantDomains, got, "%q", tn)
			if len(got) > 0 { // a delete in a transaction rolled back
				require.NoError(t, tx.DeleteClientDomain(ctx, tn, got[0].Domain))
				require.NotEqual(t, was, map[string][]string(s.d.domainsByTenant))
			}
		})
	}
	require.Equal(t, want, map[string][]string(s.d.domainsByTenant), "rolled back deletes leave the index as it was")
}

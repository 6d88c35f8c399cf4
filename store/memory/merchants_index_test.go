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
)

// TestDueDomainIndexMatchesTheTable keeps the re-check index through the
// store's writes of merchants (creates, updates that add, drop, verify
// and reschedule domains or clear their next check, re-checks claimed),
// each also rolled back once, then compares the index with the verified
// domains with a next check in the table, and DueDomainChecks at several
// instants and limits with those the table says are due, by next check
// then merchant id and domain.
func TestDueDomainIndexMatchesTheTable(t *testing.T) {
	ctx := context.Background()
	const n = 20
	tenants := make([]string, n)
	for i := range tenants {
		tenants[i] = fmt.Sprintf("ten_%02d", i)
	}
	s, in := tenantStore(t, tenants...)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(i int) *time.Time { v := t0.Add(time.Duration((i*7)%40) * time.Second); return &v } // ties
	// Merchant ids where one starts another: acct_1 and acct_10.
	id := func(i int) string { return fmt.Sprintf("acct_%d", i) }
	// domain k of merchant i: unverified, verified and never re-checked,
	// or verified with a next check; its next check moves with round.
	domain := func(i, k, round int) merchants.Domain {
		d := merchants.Domain{Name: fmt.Sprintf("m%02d-d%d.example", i, k)}
		switch (i + k + round) % 4 {
		case 0:
		case 1:
			d.VerifiedAt, d.Method = at(0), merchants.MethodOperator
		default:
			d.VerifiedAt, d.Method, d.NextCheckAt = at(0), merchants.MethodDNS, at(i*3+k+round*5)
		}
		return d
	}
	merchant := func(i, round int) *merchants.Merchant {
		m := &merchants.Merchant{ID: id(i), TenantID: tenants[i], DisplayName: "Shop", MCC: "5734", Country: "FR",
			CreatedAt: t0, UpdatedAt: t0}
		for k := range 2 + (i+round)%4 {
			m.Domains = append(m.Domains, domain(i, k, round))
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
	update := func(k, round int, err error) {
		in(err, func(tx *Tx) {
			for i := 0; i < n; i += k {
				if _, ok := s.d.mandates.merchants[id(i)]; ok {
					require.NoError(t, tx.UpdateMerchant(ctx, merchant(i, round)))
				}
			}
		})
	}
	claim := func(now time.Time, err error) {
		in(err, func(tx *Tx) {
			due, derr := tx.DueDomainChecks(ctx, now, 6)
			require.NoError(t, derr)
			for j, d := range due {
				ok, cerr := tx.ClaimDomainCheck(ctx, d.MerchantID, d.Domain, now, t0.Add(time.Duration(50+j)*time.Second))
				require.NoError(t, cerr)
				require.True(t, ok)
			}
		})
	}
	create(0, 10, nil)
	create(10, 14, errRolledBack)
	create(10, 16, nil)
	update(3, 1, nil)
	update(2, 2, errRolledBack)
	claim(t0.Add(20*time.Second), nil)
	claim(t0.Add(time.Hour), errRolledBack)
	update(5, 3, nil)
	in(nil, func(tx *Tx) { // one merchant's next checks cleared, another's domains dropped
		m := merchant(4, 0)
		for k := range m.Domains {
			m.Domains[k].NextCheckAt = nil
		}
		require.NoError(t, tx.UpdateMerchant(ctx, m))
		require.NoError(t, tx.UpdateMerchant(ctx, &merchants.Merchant{ID: id(7), TenantID: tenants[7]}))
	})
	create(16, n, nil)

	type due struct {
		ref merchants.DomainRef
		at  time.Time
	}
	var all []due
	var want []dueDomain
	for _, m := range s.d.mandates.merchants {
		for _, d := range m.Domains {
			if d.Verified() && d.NextCheckAt != nil {
				all = append(all, due{merchants.DomainRef{MerchantID: m.ID, TenantID: m.TenantID, Domain: d.Name}, *d.NextCheckAt})
				want = append(want, dueDomain{stampOf(*d.NextCheckAt), m.ID + " " + d.Name, len(m.ID)})
			}
		}
	}
	slices.SortFunc(all, func(a, b due) int {
		return cmp.Or(a.at.Compare(b.at), cmp.Compare(a.ref.MerchantID+" "+a.ref.Domain, b.ref.MerchantID+" "+b.ref.Domain))
	})
	slices.SortFunc(want, compareDueDomains)
	require.Greater(t, len(want), 20)
	require.Equal(t, want, keysOf(s.d.mandates.dueChecks), "the index holds exactly the domains re-checked")

	for _, i := range []int{-1, 0, 1, 7, 20, 39, 50, 60} {
		now := t0.Add(time.Duration(i) * time.Second)
		for _, limit := range []int{0, 1, 5, 100} {
			wantRefs := []merchants.DomainRef{}
			for _, d := range all {
				if len(wantRefs) < limit && !d.at.After(now) {
					wantRefs = append(wantRefs, d.ref)
				}
			}
			in(errRolledBack, func(tx *Tx) {
				got, err := tx.DueDomainChecks(ctx, now, limit)
				require.NoError(t, err)
				require.Equal(t, wantRefs, got, "now %v, limit %d", now, limit)
			})
		}
	}
}

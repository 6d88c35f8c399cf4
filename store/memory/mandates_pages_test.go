package memory

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/internal/page"
	"github.com/perfectpay/perfectpay/mandates"
	"github.com/perfectpay/perfectpay/store"
)

// TestMandatePagesMatchTheTable reads pages of mandates through the
// store's lists, for every combination of the filters, at several limits
// and from every cursor, after creates (in and out of creation-time
// order, with ties), status changes by every writer the store has, each
// also rolled back once, and compares them with the mandates themselves
// filtered and sorted newest first. The store has no way to change a
// mandate's tenant, agent, payer, parent or creation time, nor to delete
// one, so neither is exercised.
func TestMandatePagesMatchTheTable(t *testing.T) {
	tenants := []string{"ten_a", "ten_b", "ten_c"}
	s, in := tenantStore(t, tenants...)
	ctx := context.Background()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	n := 0
	var ids []string
	create := func(count int, err error) {
		if err != nil {
			defer func(old int, oldIDs []string) { n, ids = old, oldIDs }(n, ids)
		}
		in(err, func(tx *Tx) {
			for range count {
				i := n
				n++
				// Creation times go back and forth and repeat, so that
				// mandates land in the middle of their lists and ties fall
				// to the id.
				at := t0.Add(time.Duration((i*7)%23) * time.Second)
				m := &mandates.Mandate{ID: fmt.Sprintf("mdt_%03d", (i*37)%101), TenantID: tenants[i%3],
					Agent: []string{"agt_1", "agt_2"}[i%2], Payer: []string{"pay_1", "pay_2", "pay_3"}[i/3%3],
					Status: mandates.StatusActive, Limits: mandates.Limits{Currency: "eur", Budget: 1000},
					CreatedAt: at, UpdatedAt: at}
				if i%4 == 3 {
					// A child of a mandate of its tenant made earlier.
					for j := len(ids) - 1; j >= 0; j-- {
						if p := tx.d.mandates.mandates[ids[j]]; p.TenantID == m.TenantID && j%2 == 0 {
							m.ParentID = p.ID
							break
						}
					}
				}
				require.NoError(t, tx.CreateMandate(ctx, m))
				ids = append(ids, m.ID)
			}
		})
	}
	change := func(k int, err error) {
		in(err, func(tx *Tx) {
			for j := 0; j < len(ids); j += k {
				m := tx.d.mandates.mandates[ids[j]]
				_, serr := tx.SetMandateStatus(ctx, m.TenantID, m.ID, []string{mandates.StatusActive}, mandates.StatusSuspended, t0)
				if serr != nil {
					require.ErrorIs(t, serr, store.ErrConflict)
				}
			}
			m := tx.d.mandates.mandates[ids[k]]
			_, rerr := tx.RevokeMandateTree(ctx, m.TenantID, m.ID, t0)
			require.NoError(t, rerr)
			_, rerr = tx.Reserve(ctx, []string{ids[k+1]}, 1000, t0)
			require.NoError(t, rerr)
		})
	}
	create(40, nil)
	create(15, errRolledBack)
	change(5, nil)
	change(3, errRolledBack)
	create(30, nil)
	in(errRolledBack, func(tx *Tx) {
		m := tx.d.mandates.mandates[ids[2]]
		require.NoError(t, tx.CreateMandate(ctx, &mandates.Mandate{ID: "mdt_rolled", TenantID: m.TenantID,
			Agent: m.Agent, Payer: m.Payer, ParentID: m.ID, Status: mandates.StatusActive, CreatedAt: m.CreatedAt}))
	})
	in(nil, func(tx *Tx) {
		tx.putMandate(func(m mandates.Mandate) mandates.Mandate {
			until := t0
			m.ValidUntil = &until
			return m
		}(tx.d.mandates.mandates[ids[7]]))
		_, err := tx.ExpireMandates(ctx, t0.Add(time.Second), 10)
		require.NoError(t, err)
	})
	change(7, nil)

	d := s.d.mandates
	require.Len(t, d.mandates, 70)
	var all []mandates.Mandate
	for _, m := range d.mandates {
		all = append(all, m)
	}
	slices.SortFunc(all, newestFirst)
	statuses := map[string]int{}
	for _, m := range all {
		statuses[m.Status]++
	}
	for _, st := range []string{mandates.StatusActive, mandates.StatusSuspended, mandates.StatusRevoked,
		mandates.StatusExhausted, mandates.StatusExpired} {
		require.Positive(t, statuses[st], "no mandate is %s", st)
	}
	listed := 0
	for k, l := range d.listed {
		require.Len(t, slices.Compact(slices.Sorted(slices.Values(l))), len(l), "%+v lists a mandate twice", k)
		if k.by == "" {
			listed += len(l)
		}
	}
	require.Equal(t, len(all), listed, "the tenants' lists hold every mandate once")

	brute := func(f mandates.Filter) ([]mandates.Mandate, bool, error) {
		var cursor *mandates.Mandate
		if f.StartingAfter != "" {
			for _, m := range all {
				if m.ID == f.StartingAfter && m.TenantID == f.TenantID {
					cursor = &m
				}
			}
			if cursor == nil {
				return nil, false, store.ErrNotFound
			}
		}
		var out []mandates.Mandate
		for _, m := range all {
			if m.TenantID == f.TenantID && (f.Agent == "" || m.Agent == f.Agent) && (f.Payer == "" || m.Payer == f.Payer) &&
				(f.Status == "" || m.Status == f.Status) && (f.ParentID == "" || m.ParentID == f.ParentID) &&
				(cursor == nil || newestFirst(m, *cursor) > 0) {
				out = append(out, *m.Clone())
			}
		}
		out, more := page.Trim(out, f.Limit)
		return out, more, nil
	}
	parents := []string{""}
	for _, m := range all {
		if m.ParentID != "" && !slices.Contains(parents, m.ParentID) {
			parents = append(parents, m.ParentID)
		}
	}
	require.Greater(t, len(parents), 3)
	in(nil, func(tx *Tx) {
		for _, tn := range append(tenants, "ten_none") {
			for _, agent := range []string{"", "agt_1", "agt_none"} {
				for _, payer := range []string{"", "pay_2", "pay_3"} {
					for _, status := range []string{"", mandates.StatusActive, mandates.StatusSuspended, mandates.StatusRevoked} {
						for _, parent := range parents {
							for _, limit := range []int{1, 4, 100} {
								f := mandates.Filter{TenantID: tn, Agent: agent, Payer: payer, Status: status, ParentID: parent, Limit: limit}
								// Walk every page from the newest, as a client does.
								var walked []mandates.Mandate
								for {
									want, wantMore, _ := brute(f)
									got, more, err := tx.ListMandates(ctx, f)
									require.NoError(t, err)
									require.Equal(t, want, got, "%+v", f)
									require.Equal(t, wantMore, more, "%+v", f)
									walked = append(walked, got...)
									if !more {
										break
									}
									f.StartingAfter = got[len(got)-1].ID
								}
								f.StartingAfter = ""
								f.Limit = 1000
								want, _, _ := brute(f)
								require.Equal(t, want, walked, "%+v", f)
							}
						}
					}
				}
			}
			// Every cursor, of the tenant or not, filtered or not.
			for _, m := range append(all, mandates.Mandate{ID: "mdt_none"}) {
				for _, f := range []mandates.Filter{{TenantID: tn, Limit: 3, StartingAfter: m.ID},
					{TenantID: tn, Payer: "pay_1", Status: mandates.StatusActive, Limit: 2, StartingAfter: m.ID},
					{TenantID: tn, ParentID: m.ParentID, Limit: 2, StartingAfter: m.ID}} {
					want, wantMore, wantErr := brute(f)
					got, more, err := tx.ListMandates(ctx, f)
					require.Equal(t, wantErr, err, "%+v", f)
					require.Equal(t, want, got, "%+v", f)
					require.Equal(t, wantMore, more, "%+v", f)
				}
			}
		}
	})
}

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

	"github.com/perfectpay/perfectpay/authz"
)

// agentOf is agent j of tenant, created at at.
func agentOf(j int, tenant string, at time.Time) *authz.Agent {
	return &authz.Agent{ID: fmt.Sprintf("agt_%06d", j), TenantID: tenant, Name: "agent", Status: "active", CreatedAt: at, UpdatedAt: at}
}

// TestAgentPagesMatchTheTable creates agents of three tenants, many at
// one instant, updates some (one moved to another creation time), each
// round also once rolled back, and pages through ListAgents with every
// cursor and limit against the table filtered and sorted by creation,
// then id.
func TestAgentPagesMatchTheTable(t *testing.T) {
	ctx := context.Background()
	tenants := []string{"ten_a", "ten_ab", "ten_b"}
	s, in := tenantStore(t, tenants...)
	base := time.Now().UTC().Truncate(time.Microsecond)
	at := func(j int) time.Time { return base.Add(time.Duration(j%7) * time.Second) }
	for round := range 4 {
		err := []error{nil, errRolledBack}[round%2]
		in(err, func(tx *Tx) {
			for j := round * 20; j < round*20+20; j++ {
				require.NoError(t, tx.CreateAgent(ctx, agentOf(j, tenants[j%3], at(j))))
			}
			for j := 0; j < round*20+20; j += 5 {
				a, gerr := tx.GetAgent(ctx, fmt.Sprintf("agt_%06d", j))
				if gerr != nil {
					continue
				}
				a.Name, a.CreatedAt = "renamed", a.CreatedAt.Add(time.Duration(j%3)*time.Second)
				require.NoError(t, tx.UpdateAgent(ctx, a))
			}
		})
	}
	for _, tenant := range append(tenants, "ten_none") {
		var want []string
		for _, a := range s.d.authz.agents {
			if a.TenantID == tenant {
				want = append(want, a.ID)
			}
		}
		slices.SortFunc(want, func(x, y string) int {
			a, b := s.d.authz.agents[x], s.d.authz.agents[y]
			return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), strings.Compare(a.ID, b.ID))
		})
		for _, after := range append([]string{"", "agt_missing", "agt_000001"}, want...) {
			for _, limit := range []int{0, 1, 3, 100} {
				var page []authz.Agent
				in(nil, func(tx *Tx) {
					var err error
					page, err = tx.ListAgents(ctx, tenant, after, limit)
					require.NoError(t, err)
				})
				require.NotNil(t, page)
				var exp []string
				start := 0
				if after != "" {
					start = len(want)
					if i := slices.Index(want, after); i >= 0 {
						start = i + 1
					}
				}
				for _, id := range want[start:] {
					if limit > 0 && len(exp) == limit {
						break
					}
					exp = append(exp, id)
				}
				var got []string
				for _, a := range page {
					got = append(got, a.ID)
					require.Equal(t, s.d.authz.agents[a.ID].Name, a.Name)
				}
				require.Equal(t, exp, got, "tenant %s after %q limit %d", tenant, after, limit)
			}
		}
	}
}

// BenchmarkListAgents reads a page of 20 of one tenant's agents from a
// cursor, among 100,000 agents of 100 tenants.
func BenchmarkListAgents(b *testing.B) {
	const n = 100_000
	ids := tenantIDs(100)
	base := time.Now().UTC().Truncate(time.Microsecond)
	s := seedStore(b, ids, n, func(tx *Tx, j int) error {
		return tx.CreateAgent(context.Background(), agentOf(j, ids[j%100], base.Add(time.Duration(j)*time.Millisecond)))
	})
	after := fmt.Sprintf("agt_%06d", n/2+7)
	eachRolledBack(b, s, func(tx *Tx) {
		if page, err := tx.ListAgents(context.Background(), ids[7], after, 20); err != nil || len(page) != 20 {
			b.Fatal(len(page), err)
		}
	})
}

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

	"github.com/perfectpay/perfectpay/charging"
	"github.com/perfectpay/perfectpay/compliance"
	"github.com/perfectpay/perfectpay/policies"
)

// decisionAt is decision j of tenant ten_000(j%tenants), created at at.
func decisionAt(j, tenants int, at time.Time) *charging.Decision {
	return &charging.Decision{ID: fmt.Sprintf("dec_%06d", j), TenantID: fmt.Sprintf("ten_%04d", j%tenants), MandateID: "mdt_1",
		AgentID: "agt_1", Result: policies.Allow, PolicyVersion: "v", InputDigest: "d", CreatedAt: at,
		Input: []byte(`{"n":` + fmt.Sprint(j) + `}`)}
}

// TestDecisionPagesMatchTheTable pages through decisions of three
// tenants, many created at the same instant, with every filter the
// auditors' export and replay use (tenant, window, cursor, limit), some
// written in rolled-back transactions and some pruned by retention (once
// rolled back), and compares each page with the table filtered and sorted
// by (created, id).
func TestDecisionPagesMatchTheTable(t *testing.T) {
	ctx := context.Background()
	s, in := tenantStore(t, "ten_0000", "ten_0001", "ten_0002")
	base := time.Now().UTC().Truncate(time.Microsecond)
	at := func(j int) time.Time { return base.Add(time.Duration((j*37)%50) * time.Second) }
	for round := range 4 {
		err := []error{nil, errRolledBack}[round%2]
		in(err, func(tx *Tx) {
			for j := round * 100; j < round*100+100; j++ {
				require.NoError(t, tx.CreateDecision(ctx, decisionAt(j, 3, at(j))))
			}
		})
	}
	in(nil, func(tx *Tx) {
		_, err := tx.PruneDecisions(ctx, base.Add(5*time.Second), 20)
		require.NoError(t, err)
	})
	in(errRolledBack, func(tx *Tx) {
		_, err := tx.PruneDecisions(ctx, base.Add(20*time.Second), 60)
		require.NoError(t, err)
	})
	require.Equal(t, len(s.d.pipeline.decisions), s.d.pipeline.byTenant.len(), "the tenants' index holds every decision")
	all := slices.SortedFunc(func(yield func(charging.Decision) bool) {
		for _, d := range s.d.pipeline.decisions {
			if !yield(d) {
				return
			}
		}
	}, func(a, b charging.Decision) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), strings.Compare(a.ID, b.ID))
	})
	want := func(f compliance.DecisionFilter) []string {
		var out []string
		for _, d := range all {
			switch {
			case f.TenantID != "" && d.TenantID != f.TenantID,
				!f.Since.IsZero() && d.CreatedAt.Before(f.Since),
				!f.Until.IsZero() && !d.CreatedAt.Before(f.Until),
				!f.AfterTime.IsZero() && cmp.Or(d.CreatedAt.Compare(f.AfterTime), strings.Compare(d.ID, f.AfterID)) <= 0:
				continue
			}
			if f.Limit > 0 && len(out) == f.Limit {
				break
			}
			out = append(out, d.ID)
		}
		return out
	}
	for _, tenant := range []string{"", "ten_0001"} {
		for _, window := range [][2]time.Duration{{}, {10 * time.Second, 30 * time.Second}, {0, 10 * time.Second}} {
			for _, limit := range []int{0, 1, 7, 1000} {
				f := compliance.DecisionFilter{TenantID: tenant, Limit: limit}
				if window != [2]time.Duration{} {
					f.Since, f.Until = base.Add(window[0]), base.Add(window[1])
				}
				// Page through as the export does, each page from the last
				// one's final row.
				var got []string
				for page := 0; ; page++ {
					var recs []charging.Decision
					in(nil, func(tx *Tx) {
						var err error
						recs, err = tx.DecisionRecords(ctx, f)
						require.NoError(t, err)
					})
					for _, d := range recs {
						got = append(got, d.ID)
						var j int
						_, err := fmt.Sscanf(d.ID, "dec_%d", &j)
						require.NoError(t, err)
						require.JSONEq(t, fmt.Sprintf(`{"n":%d}`, j), string(d.Input), "the row's own input")
					}
					require.Equal(t, want(f), idsOf(recs), "page %d of %+v", page, f)
					if limit == 0 || len(recs) < limit {
						break
					}
					last := recs[len(recs)-1]
					f.AfterTime, f.AfterID = last.CreatedAt, last.ID
				}
				f.AfterTime, f.AfterID = time.Time{}, ""
				f.Limit = 0
				require.Equal(t, want(f), got, "all pages of %s %v limit %d", tenant, window, limit)
			}
		}
	}
}

func idsOf(ds []charging.Decision) []string {
	var out []string
	for _, d := range ds {
		out = append(out, d.ID)
	}
	return out
}

// BenchmarkDecisionRecords reads one page of 100 decisions of one of ten
// tenants, from a cursor in the middle of 100,000 decisions: a page of
// the auditors' export.
func BenchmarkDecisionRecords(b *testing.B) {
	const n = 100_000
	base := time.Now().UTC().Truncate(time.Microsecond)
	s := seedStore(b, tenantIDs(10), n, func(tx *Tx, j int) error {
		return tx.CreateDecision(context.Background(), decisionAt(j, 10, base.Add(time.Duration(j)*time.Millisecond)))
	})
	mid := decisionAt(n/2, 10, base.Add(time.Duration(n/2)*time.Millisecond))
	f := compliance.DecisionFilter{TenantID: "ten_0003", AfterTime: mid.CreatedAt, AfterID: mid.ID, Limit: 100}
	eachRolledBack(b, s, func(tx *Tx) {
		if recs, err := tx.DecisionRecords(context.Background(), f); err != nil || len(recs) != 100 {
			b.Fatal(len(recs), err)
		}
	})
}

package memory

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/internal/page"
	"github.com/perfectpay/perfectpay/mandates"
	"github.com/perfectpay/perfectpay/store"
)

// TestMandateEventPagesMatchTheTable reads pages of mandates' histories
// through the store's lists after appends, one of them rolled back, and
// compares every page with the events themselves filtered and sorted.
// Event ids repeat across mandates and tenants and, once, in a history:
// a cursor names the newest event of that id in its mandate's history.
func TestMandateEventPagesMatchTheTable(t *testing.T) {
	s := New()
	ctx := context.Background()
	appendN := func(from, n int, err error) {
		require.ErrorIs(t, s.InTx(ctx, func(tx *Tx) error {
			for i := from; i < from+n; i++ {
				require.NoError(t, tx.AppendMandateEvent(ctx, &mandates.Event{ID: fmt.Sprintf("mev_%d", i%40),
					TenantID: []string{"ten_a", "ten_b"}[i%2], MandateID: []string{"mdt_1", "mdt_2", "mdt_3"}[i%3],
					Type: "mandate.charged", Data: []byte{byte(i)}}))
			}
			return err
		}), err)
	}
	appendN(0, 50, nil)
	appendN(50, 30, errRolledBack)
	appendN(50, 80, nil)
	appendN(130, 10, errRolledBack)

	d := s.d.mandates
	require.Len(t, d.events, 130)
	var all []mandates.Event
	for _, e := range d.events {
		all = append(all, e)
	}
	slices.SortFunc(all, func(a, b mandates.Event) int { return cmp.Compare(a.Seq, b.Seq) })
	brute := func(f mandates.EventFilter) ([]mandates.Event, bool, error) {
		if f.StartingAfter != "" {
			found := false
			for _, e := range all {
				if e.ID == f.StartingAfter && e.TenantID == f.TenantID && e.MandateID == f.MandateID {
					f.AfterSeq, found = max(f.AfterSeq, e.Seq), true
				}
			}
			if !found {
				return nil, false, store.ErrNotFound
			}
		}
		var out []mandates.Event
		for _, e := range all {
			if e.TenantID == f.TenantID && e.MandateID == f.MandateID && e.Seq > f.AfterSeq {
				out = append(out, e)
			}
		}
		out, more := page.Trim(out, f.Limit)
		return out, more, nil
	}
	require.NoError(t, s.InTx(ctx, func(tx *Tx) error {
		for _, tenant := range []string{"ten_a", "ten_b", "ten_c"} {
			for _, mandate := range []string{"mdt_1", "mdt_2", "mdt_3", "mdt_4"} {
				for _, limit := range []int{0, 1, 3, 100} {
					for _, cursor := range []string{"", "mev_0", "mev_7", "mev_12", "mev_39", "mev_none"} {
						for _, after := range []int64{0, 5, 60, 200} {
							f := mandates.EventFilter{TenantID: tenant, MandateID: mandate, Limit: limit, StartingAfter: cursor, AfterSeq: after}
							want, wantMore, wantErr := brute(f)
							got, more, err := tx.ListMandateEvents(ctx, f)
							require.Equal(t, wantErr, err, "%+v", f)
							require.Equal(t, want, got, "%+v", f)
							require.Equal(t, wantMore, more, "%+v", f)
						}
					}
				}
			}
		}
		return nil
	}))
}

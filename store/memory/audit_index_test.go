package memory

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/audit"
)

// TestAuditPagesMatchTheTable reads pages of the log and of the chain
// through the store's orders after appends, seals and a prune, each also
// rolled back once, and compares every page with the entries themselves
// filtered and sorted.
func TestAuditPagesMatchTheTable(t *testing.T) {
	s := New()
	ctx := context.Background()
	fail := errors.New("rolled back")
	appendN := func(n int, err error) {
		require.ErrorIs(t, s.InTx(ctx, func(tx *Tx) error {
			for i := range n {
				tenant := []string{"ten_a", "ten_b", "ten_c"}[i%3]
				require.NoError(t, audit.Append(ctx, tx, &audit.Entry{TenantID: tenant, ActorType: audit.ActorSystem, Action: "x"}))
			}
			return err
		}), err)
	}
	seal := func(n int, err error) {
		require.ErrorIs(t, s.InTx(ctx, func(tx *Tx) error {
			head, _ := tx.AuditHead(ctx)
			pending, _ := tx.PendingAudit(ctx, n)
			seals := make([]audit.Seal, len(pending))
			for i, p := range pending {
				seals[i] = audit.Seal{Seq: p.Seq, ChainPos: head.ChainPos + int64(i) + 1, PrevHash: []byte{1}, Hash: []byte{2}}
			}
			require.NoError(t, tx.SealAudit(ctx, seals))
			return err
		}), err)
	}
	prune := func(pos int64, err error) {
		require.ErrorIs(t, s.InTx(ctx, func(tx *Tx) error {
			_, perr := tx.PruneAudit(ctx, audit.Anchor{ChainPos: pos, Hash: []byte{2}}, map[int]int64{}, &audit.Retention{ToPos: pos})
			require.NoError(t, perr)
			return err
		}), err)
	}
	appendN(50, nil)
	appendN(10, fail)
	appendN(20, nil)
	seal(40, nil)
	seal(10, fail)
	seal(5, nil)
	prune(15, fail)
	prune(15, nil)
	appendN(7, nil)

	var all []audit.Entry
	for seq, r := range s.d.auditEntries {
		all = append(all, r.entry(seq, true))
	}
	slices.SortFunc(all, func(a, b audit.Entry) int { return cmp.Compare(a.Seq, b.Seq) })
	require.Len(t, all, 50+20+7-15)
	var sealed []audit.Entry
	for _, e := range all {
		if e.ChainPos != 0 {
			sealed = append(sealed, e)
		}
	}
	slices.SortFunc(sealed, func(a, b audit.Entry) int { return cmp.Compare(a.ChainPos, b.ChainPos) })
	require.Len(t, sealed, 30)
	require.Equal(t, int64(16), sealed[0].ChainPos)

	first := func(es []audit.Entry, limit int, keep func(audit.Entry) bool) []audit.Entry {
		var out []audit.Entry
		for _, e := range es {
			if len(out) < limit && keep(e) {
				out = append(out, e)
			}
		}
		return out
	}
	require.NoError(t, s.InTx(ctx, func(tx *Tx) error {
		for _, after := range []int64{0, 14, 15, 16, 33, 80, 200} {
			for _, limit := range []int{1, 4, 100} {
				for _, tenant := range []string{"", "ten_b"} {
					got, err := tx.ListAudit(ctx, audit.Filter{TenantID: tenant, AfterSeq: after, Limit: limit})
					require.NoError(t, err)
					want := first(all, limit, func(e audit.Entry) bool { return e.Seq > after && (tenant == "" || e.TenantID == tenant) })
					require.Equal(t, want, got, "list after %d, limit %d, tenant %q", after, limit, tenant)
				}
				got, err := tx.AuditChain(ctx, after, limit)
				require.NoError(t, err)
				require.Equal(t, first(sealed, limit, func(e audit.Entry) bool { return e.ChainPos > after }), got, "chain after %d, limit %d", after, limit)
			}
		}
		got, err := tx.QueryAudit(ctx, audit.Query{ID: all[20].ID, Filter: audit.Filter{Limit: 10}})
		require.NoError(t, err)
		require.Equal(t, all[20:21], got)
		return nil
	}))
}

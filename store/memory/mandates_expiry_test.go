package memory

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/mandates"
)

// TestOrderedMatchesASortedSlice adds and removes keys of an ordered
// index, some in transactions rolled back, and compares its walks with a
// sorted slice of the same keys.
func TestOrderedMatchesASortedSlice(t *testing.T) {
	_, in := tenantStore(t)
	x := newOrdered(compareTimed, func(k timedKey) stamp { return k.at })
	var want []timedKey
	key := func(i int) timedKey { return timedKey{stamp{int64(i*7919) % 97, int32(i % 3)}, fmt.Sprint(i)} }
	for round := range 6 {
		err := []error{nil, errRolledBack}[round%2]
		in(err, func(tx *Tx) {
			for i := round * 50; i < round*50+200; i++ {
				x.add(tx, key(i))
			}
			for i := 0; i < round*50+200; i += 3 {
				x.drop(tx, key(i))
			}
		})
		if err == nil {
			for i := round * 50; i < round*50+200; i++ {
				want = append(want, key(i))
			}
			want = slices.DeleteFunc(want, func(k timedKey) bool {
				var i int
				_, _ = fmt.Sscan(k.id, &i)
				return i < round*50+200 && i%3 == 0
			})
		}
	}
	slices.SortFunc(want, compareTimed)
	var got []timedKey
	x.walk(func(k timedKey) bool { got = append(got, k); return true })
	require.Equal(t, want, got)
	require.Equal(t, len(want), x.len())
	for _, now := range []stamp{{-1, 0}, {0, 0}, {10, 1}, {50, 2}, {96, 2}} {
		var due, wantDue []timedKey
		x.walkDue(now, func(k timedKey) bool { due = append(due, k); return true })
		for _, k := range want {
			if k.at.compare(now) <= 0 {
				wantDue = append(wantDue, k)
			}
		}
		require.Equal(t, wantDue, due, "due at %v", now)
	}
}

// mandateFixture makes mandates through the store's own writes.
type mandateFixture struct {
	t  *testing.T
	s  *Store
	in func(err error, fn func(tx *Tx))
	t0 time.Time
}

func (f *mandateFixture) at(i int) time.Time { return f.t0.Add(time.Duration(i/2) * time.Minute) }

// create adds the mandates from to to-1: one in five never expires, the
// others expire at f.at of a scrambled number (ties included); one in
// seven is a child of the mandate before it.
func (f *mandateFixture) create(from, to int, err error) {
	f.in(err, func(tx *Tx) {
		for i := from; i < to; i++ {
			m := &mandates.Mandate{ID: fmt.Sprintf("mdt_%04d", (i*37)%1000), TenantID: "ten_a", Payer: "p", Agent: "agt",
				Status:    []string{mandates.StatusActive, mandates.StatusPendingApproval, mandates.StatusSuspended}[i%3],
				CreatedAt: f.at(i), UpdatedAt: f.at(i)}
			if i%5 != 0 {
				until := f.at((i * 13) % 100)
				m.ValidUntil = &until
			}
			if i%7 == 0 && i > from {
				m.ParentID = fmt.Sprintf("mdt_%04d", ((i-1)*37)%1000)
			}
			require.NoError(f.t, tx.CreateMandate(context.Background(), m))
		}
	})
}

// expiring is the expiry index as the table defines it, by id.
func (f *mandateFixture) expiring() []expiringMandate {
	var out []expiringMandate
	for _, m := range f.s.d.mandates.mandates {
		if m.ValidUntil != nil && !mandates.Terminal(m.Status) {
			out = append(out, expiringMandate{m.ID, stampOf(*m.ValidUntil)})
		}
	}
	slices.SortFunc(out, func(a, b expiringMandate) int { return strings.Compare(a.id, b.id) })
	return out
}

// TestMandateExpiryIndexMatchesTheTable moves mandates into and out of the
// expiry index through the store's writes (creates, status changes, a
// revoked tree, a revoked mandate made active again, expiries), each also
// rolled back once, then compares the index with the table and every
// ExpireMandates at several instants and limits with the mandates the
// table says are due, sorted by id.
func TestMandateExpiryIndexMatchesTheTable(t *testing.T) {
	ctx := context.Background()
	s, in := tenantStore(t, "ten_a")
	f := &mandateFixture{t: t, s: s, in: in, t0: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	f.create(0, 150, nil)
	f.create(150, 200, errRolledBack)
	f.create(150, 250, nil)
	status := func(k int, to string, err error) {
		in(err, func(tx *Tx) {
			for i := 0; i < 250; i += k {
				_, serr := tx.SetMandateStatus(ctx, "ten_a", fmt.Sprintf("mdt_%04d", (i*37)%1000),
					[]string{mandates.StatusActive, mandates.StatusPendingApproval, mandates.StatusSuspended,
						mandates.StatusRevoked, mandates.StatusExpired}, to, f.at(300))
				require.NoError(t, serr)
			}
		})
	}
	status(6, mandates.StatusRevoked, nil)
	status(4, mandates.StatusSuspended, errRolledBack)
	status(9, mandates.StatusRevoked, errRolledBack)
	status(12, mandates.StatusActive, nil) // revoked ones come back
	tree := func(i int, err error) {
		in(err, func(tx *Tx) {
			_, terr := tx.RevokeMandateTree(ctx, "ten_a", fmt.Sprintf("mdt_%04d", (i*37)%1000), f.at(300))
			require.NoError(t, terr)
		})
	}
	tree(13, nil)
	tree(27, errRolledBack)
	expire := func(now time.Time, limit int, err error) {
		in(err, func(tx *Tx) {
			_, eerr := tx.ExpireMandates(ctx, now, limit)
			require.NoError(t, eerr)
		})
	}
	expire(f.at(20), 7, nil)
	expire(f.at(60), 1000, errRolledBack)
	status(10, mandates.StatusActive, nil) // expired ones come back
	f.create(250, 270, nil)

	want := f.expiring()
	require.NotEmpty(t, want)
	var got []expiringMandate
	s.d.mandates.expiring.walk(func(m expiringMandate) bool { got = append(got, m); return true })
	require.Equal(t, want, got, "the index holds exactly the mandates that may expire")

	for _, now := range []int{-1, 0, 1, 20, 21, 50, 99, 1000} {
		for _, limit := range []int{0, 1, 5, 40, 1000} {
			var wantOut []mandates.Mandate
			for _, e := range want {
				if m := s.d.mandates.mandates[e.id]; len(wantOut) < limit && !m.ValidUntil.After(f.at(now)) {
					c := m.Clone()
					c.Status, c.UpdatedAt = mandates.StatusExpired, f.at(now)
					wantOut = append(wantOut, *c)
				}
			}
			in(errRolledBack, func(tx *Tx) {
				out, err := tx.ExpireMandates(ctx, f.at(now), limit)
				require.NoError(t, err)
				if len(wantOut) == 0 {
					require.Empty(t, out, "now %d, limit %d", now, limit)
				} else {
					require.Equal(t, wantOut, out, "now %d, limit %d", now, limit)
				}
				// A second call in the same transaction finds the rest.
				more, err := tx.ExpireMandates(ctx, f.at(now), 1000)
				require.NoError(t, err)
				require.Len(t, more, countDue(want, s, f.at(now))-len(out))
			})
		}
	}
	got = got[:0]
	s.d.mandates.expiring.walk(func(m expiringMandate) bool { got = append(got, m); return true })
	require.Equal(t, want, got, "rolled back expiries leave the index as it was")
}

func countDue(want []expiringMandate, s *Store, now time.Time) int {
	n := 0
	for _, e := range want {
		if !s.d.mandates.mandates[e.id].ValidUntil.After(now) {
			n++
		}
	}
	return n
}

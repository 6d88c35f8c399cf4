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
)

// TestLoginMarksByKeyIndexMatchesTheTable keeps login marks by key
// through the store's writes (marks, marks seen again, users' marks
// erased, a prune), each also rolled back once, then compares the index
// with the table's keys sorted, and what DeleteLoginMarks deletes for
// every user (one whose id starts another's, one of another tenant, one
// unknown) with the keys of the user's prefix in the table.
func TestLoginMarksByKeyIndexMatchesTheTable(t *testing.T) {
	ctx := context.Background()
	s, in := tenantStore(t)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(i int) time.Time { return t0.Add(time.Duration((i*7)%50) * time.Second) }
	who := [][2]string{{"ten_a", "usr_1"}, {"ten_a", "usr_10"}, {"ten_a", "usr_2"}, {"ten_ab", "usr_1"}, {"ten_b", "usr_3"}}
	mark := func(from, to int, err error) {
		in(err, func(tx *Tx) {
			for i := from; i < to; i++ {
				// Marks repeat: a mark seen again keeps its first time.
				w := who[i%len(who)]
				_, merr := tx.MarkLogin(ctx, w[0], w[1], fmt.Sprintf("dev_%03d", (i*37)%120), at(i))
				require.NoError(t, merr)
			}
		})
	}
	erase := func(tenantID, userID string, err error) {
		in(err, func(tx *Tx) {
			_, derr := tx.DeleteLoginMarks(ctx, tenantID, userID)
			require.NoError(t, derr)
		})
	}
	mark(0, 100, nil)
	mark(100, 130, errRolledBack)
	mark(100, 200, nil)
	erase("ten_a", "usr_1", errRolledBack)
	erase("ten_a", "usr_2", nil)
	in(nil, func(tx *Tx) {
		_, err := tx.PruneLoginMarks(ctx, at(3), 4)
		require.NoError(t, err)
	})
	mark(200, 300, nil)
	erase("ten_b", "usr_3", nil)
	mark(300, 310, nil)

	p := s.d.people
	want := slices.Sorted(maps.Keys(p.marks))
	require.Greater(t, len(want), 60)
	require.Equal(t, want, keysOf(p.marksByKey), "the index holds exactly the marks")

	for _, w := range append(who, [2]string{"ten_a", "usr_9"}, [2]string{"ten_a", ""}, [2]string{"ten", "a"}) {
		prefix := userKey(w[0], w[1]) + "/"
		var wantKeys []string
		for _, k := range want {
			if strings.HasPrefix(k, prefix) {
				wantKeys = append(wantKeys, k)
			}
		}
		in(errRolledBack, func(tx *Tx) {
			was := maps.Clone(p.marks)
			n, err := tx.DeleteLoginMarks(ctx, w[0], w[1])
			require.NoError(t, err)
			var got []string
			for k := range was {
				if _, ok := p.marks[k]; !ok {
					got = append(got, k)
				}
			}
			slices.Sort(got)
			require.Equal(t, wantKeys, got, "%s/%s", w[0], w[1])
			require.Equal(t, len(wantKeys), n)
		})
	}
	require.Equal(t, want, keysOf(p.marksByKey), "rolled back erasures leave the index as it was")
}

package memory

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/accounts"
)

// TestSessionsByUserIndexMatchesTheTable keeps sessions by user through
// the store's writes (creates, touches, sign-outs, a prune, users'
// sessions ended), each also rolled back once, then compares the index
// with the table sorted by tenant, user and id hash, and what
// DeleteUserSessions deletes for every user (one whose id starts another's,
// one of another tenant, one unknown) with the user's sessions in the table.
func TestSessionsByUserIndexMatchesTheTable(t *testing.T) {
	ctx := context.Background()
	s, in, users, tenantOf := usersStore(t)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(i int) time.Time { return t0.Add(time.Duration((i*7)%50) * time.Second) }
	hash := func(i int) []byte { return []byte(fmt.Sprintf("hash_%04d", (i*37)%1000)) }
	create := func(from, to int, err error) {
		in(err, func(tx *Tx) {
			for i := from; i < to; i++ {
				u := i % len(users)
				require.NoError(t, tx.CreateSession(ctx, &accounts.Session{IDHash: hash(i),
					Ref: fmt.Sprintf("ses_%04d", i), TenantID: tenantOf(u), UserID: users[u],
					CreatedAt: at(i), LastSeenAt: at(i)}))
			}
		})
	}
	end := func(k int, err error) {
		in(err, func(tx *Tx) {
			for i := 0; i < 150; i += k {
				if _, ok := tx.people().sessions[string(hash(i))]; !ok {
					continue
				}
				if i%2 == 0 {
					require.NoError(t, tx.TouchSession(ctx, hash(i), t0.Add(time.Hour), nil))
				} else {
					require.NoError(t, tx.DeleteSession(ctx, hash(i)))
				}
			}
		})
	}
	endUser := func(tenantID, userID string, err error) {
		in(err, func(tx *Tx) {
			_, derr := tx.DeleteUserSessions(ctx, tenantID, userID)
			require.NoError(t, derr)
		})
	}
	create(0, 100, nil)
	create(100, 130, errRolledBack)
	create(100, 150, nil)
	end(5, nil)
	end(3, errRolledBack)
	in(nil, func(tx *Tx) {
		_, err := tx.PruneSessions(ctx, at(3), 4)
		require.NoError(t, err)
	})
	endUser("ten_a", "usr_1", errRolledBack)
	endUser("ten_a", "usr_2", nil)
	endUser("ten_a", "usr_3", nil) // another tenant's user: nothing
	create(150, 200, nil)

	p := s.d.people
	var want []userSession
	for k, ses := range p.sessions {
		want = append(want, userSession{ses.TenantID, ses.UserID, k})
	}
	slices.SortFunc(want, compareUserSessions)
	require.Greater(t, len(want), 100)
	require.Equal(t, want, keysOf(p.sessionsByUser), "the index holds exactly the sessions")

	for _, who := range [][2]string{{"ten_a", "usr_1"}, {"ten_a", "usr_10"}, {"ten_a", "usr_2"}, {"ten_b", "usr_3"},
		{"ten_b", "usr_30"}, {"ten_b", "usr_1"}, {"ten_a", "usr_9"}, {"ten_a", ""}} {
		var wantKeys []string
		for k, ses := range p.sessions {
			if ses.TenantID == who[0] && ses.UserID == who[1] {
				wantKeys = append(wantKeys, k)
			}
		}
		slices.Sort(wantKeys)
		in(errRolledBack, func(tx *Tx) {
			was := maps.Clone(p.sessions)
			n, err := tx.DeleteUserSessions(ctx, who[0], who[1])
			require.NoError(t, err)
			var got []string
			for k := range was {
				if _, ok := p.sessions[k]; !ok {
					got = append(got, k)
				}
			}
			slices.Sort(got)
			require.Equal(t, wantKeys, got, "%s/%s", who[0], who[1])
			require.Equal(t, len(wantKeys), n)
		})
	}
	require.Equal(t, want, keysOf(p.sessionsByUser), "rolled back deletes leave the index as it was")
}

package memory

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/authz"
)

// authRequestAt is the request i of agent agt_1, expiring at exp.
func authRequestAt(i int, exp time.Time) *authz.AuthRequest {
	return &authz.AuthRequest{ID: fmt.Sprintf("areq_%06d", i), Kind: "ciba", TenantID: "ten_0000", ClientID: "agt_1",
		Status: "pending", CreatedAt: exp.Add(-5 * time.Minute), UpdatedAt: exp.Add(-5 * time.Minute), ExpiresAt: exp}
}

func addAgent(tx *Tx) error {
	return tx.CreateAgent(context.Background(), &authz.Agent{ID: "agt_1", TenantID: "ten_0000", Name: "a", Status: "active"})
}

// TestPruneAuthRequestsMatchesTheTable writes requests with spread
// expiries, some in transactions rolled back and some decided (an update
// keeps the expiry), prunes at several instants, each once rolled back,
// and requires each prune to delete exactly the requests the table says
// expired, and nothing else.
func TestPruneAuthRequestsMatchesTheTable(t *testing.T) {
	ctx := context.Background()
	s, in := tenantStore(t, "ten_0000")
	in(nil, func(tx *Tx) { require.NoError(t, addAgent(tx)) })
	base := time.Now().UTC().Truncate(time.Microsecond)
	exp := func(i int) time.Time { return base.Add(time.Duration((i*7919)%400) * time.Second) }
	for round := range 4 {
		err := []error{nil, errRolledBack}[round%2]
		in(err, func(tx *Tx) {
			for i := round * 100; i < round*100+100; i++ {
				require.NoError(t, tx.CreateAuthRequest(ctx, authRequestAt(i, exp(i))))
				if i%3 == 0 {
					r := authRequestAt(i, exp(i))
					r.Status = "approved"
					require.NoError(t, tx.UpdateAuthRequest(ctx, r, "pending"))
				}
			}
		})
	}
	// Expiries an int64 of nanoseconds cannot hold: the zero time goes at
	// the first prune, the year 3000 never.
	zero, far := authRequestAt(900, time.Time{}), authRequestAt(901, time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC))
	in(nil, func(tx *Tx) {
		require.NoError(t, tx.CreateAuthRequest(ctx, zero))
		require.NoError(t, tx.CreateAuthRequest(ctx, far))
	})
	for _, at := range []time.Duration{-time.Second, 0, 90 * time.Second, 200 * time.Second, 401 * time.Second} {
		before := base.Add(at)
		for _, err := range []error{errRolledBack, nil} {
			was := maps.Clone(s.d.authRequests)
			var want []string
			for id, r := range was {
				if r.ExpiresAt.Before(before) {
					want = append(want, id)
				}
			}
			slices.Sort(want)
			in(err, func(tx *Tx) {
				n, perr := tx.PruneAuthRequests(ctx, before)
				require.NoError(t, perr)
				var gone []string
				for id := range was {
					if _, ok := s.d.authRequests[id]; !ok {
						gone = append(gone, id)
					}
				}
				slices.Sort(gone)
				require.Equal(t, want, gone, "before +%v", at)
				require.Equal(t, len(want), n)
			})
			if err != nil {
				require.Equal(t, was, s.d.authRequests, "a rolled-back prune leaves every request")
			}
		}
	}
	require.Equal(t, []string{far.ID}, slices.Collect(maps.Keys(s.d.authRequests)))
	require.Equal(t, 1, s.exp.authReq.len(), "the far request keeps its place in the index")
}

// TestUnixNanoKeepsOrder: expiry index times outside the nanosecond range
// are held at its ends, in order, instead of wrapping.
func TestUnixNanoKeepsOrder(t *testing.T) {
	ts := []time.Time{{}, time.Date(1600, 1, 1, 0, 0, 0, 0, time.UTC), time.Unix(0, 0), time.Now(),
		time.Date(2262, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2263, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)}
	for i := 1; i < len(ts); i++ {
		require.LessOrEqual(t, unixNano(ts[i-1]), unixNano(ts[i]), "%v then %v", ts[i-1], ts[i])
	}
	require.Equal(t, time.Unix(0, 0).UnixNano(), unixNano(time.Unix(0, 0)))
	require.Less(t, unixNano(time.Now()), unixNano(time.Date(2263, 1, 1, 0, 0, 0, 0, time.UTC)))
}

// BenchmarkPruneAuthRequests is the issuer's minute job on a store holding
// 100,000 consent and CIBA requests of which 300 expired: a batch costs
// the requests that expired, not those still waiting.
func BenchmarkPruneAuthRequests(b *testing.B) {
	const n, due = 100_000, 300
	now := time.Now().UTC()
	s := seedStore(b, []string{"ten_0000"}, n, func(tx *Tx, j int) error {
		if j == 0 {
			if err := addAgent(tx); err != nil {
				return err
			}
		}
		exp := now.Add(time.Duration(j) * time.Millisecond)
		if j < due {
			exp = now.Add(-time.Minute - time.Duration(j)*time.Millisecond)
		} else {
			exp = exp.Add(time.Hour)
		}
		return tx.CreateAuthRequest(context.Background(), authRequestAt(j, exp))
	})
	eachRolledBack(b, s, func(tx *Tx) {
		if got, err := tx.PruneAuthRequests(context.Background(), now); err != nil || got != due {
			b.Fatal(got, err)
		}
	})
}

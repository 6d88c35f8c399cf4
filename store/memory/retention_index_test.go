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
	"github.com/perfectpay/perfectpay/charging"
	"github.com/perfectpay/perfectpay/idempotency"
	"github.com/perfectpay/perfectpay/payments"
)

// keysOf reads the whole of an ordered index.
func keysOf[K any](x *ordered[K]) []K {
	var out []K
	x.walk(func(k K) bool { out = append(out, k); return true })
	return out
}

// sweepCase runs a retention sweep at several instants and limits, each in
// a transaction rolled back, and compares the rows it touched (the keys
// of table it deleted or changed) with the first limit of want (the rows
// the table says are due, in their order) before the instant.
func sweepCase[K comparable, V any](t *testing.T, in func(error, func(*Tx)), table func() map[K]V,
	want []timedKey, id func(K) string, sweep func(tx *Tx, before time.Time, limit int) (int, error),
	instants []time.Time) {
	t.Helper()
	for _, before := range instants {
		for _, limit := range []int{0, 1, 5, 40, 1000} {
			var wantIDs []string
			for _, k := range want {
				if len(wantIDs) < limit && k.at.compare(stampOf(before)) < 0 {
					wantIDs = append(wantIDs, k.id)
				}
			}
			in(errRolledBack, func(tx *Tx) {
				was := maps.Clone(table())
				n, err := sweep(tx, before, limit)
				require.NoError(t, err)
				var got []string
				for k, v := range was {
					if now, ok := table()[k]; !ok || !equalRows(now, v) {
						got = append(got, id(k))
					}
				}
				slices.Sort(got)
				wantSet := slices.Sorted(slices.Values(wantIDs))
				require.Equal(t, wantSet, got, "before %v, limit %d", before, limit)
				require.Equal(t, len(wantIDs), n)
			})
		}
	}
}

// equalRows tells whether a row is as it was (a scrub empties its text).
func equalRows[V any](a, b V) bool { return fmt.Sprintf("%#v", a) == fmt.Sprintf("%#v", b) }

// TestScrubIndexMatchesTheTable moves charges into and out of the
// scrub's index through the store's writes (creates, updates into and out
// of settled states and reversal pending, claims taken and dropped, free
// text added and removed, a scrub), each also rolled back once, then
// compares the index with the table and ScrubCharges at several instants
// and limits with the charges the table says are due, oldest update then
// id first.
func TestScrubIndexMatchesTheTable(t *testing.T) {
	f := newPaymentsFixture(t)
	p := f.s.d.payments
	edit := func(k int, err error, change func(c *payments.Charge)) {
		f.tx(err, func(tx *Tx) {
			for i := 0; i < f.n; i += k {
				c := cloneCharge(p.charges[fmt.Sprintf("ch_%04d", i)])
				change(&c)
				require.NoError(t, tx.UpdateCharge(f.ctx, &c, c.Status))
			}
		})
	}
	claim := func(c *payments.Charge) {
		c.Claim = map[string]string{"": "capture", "capture": ""}[c.Claim]
	}
	text := func(c *payments.Charge) {
		if c.Description != "" {
			c.Description, c.Metadata = "", map[string]string{"k": "v"}
		} else {
			c.Metadata, c.FailureMessage = nil, "declined"
		}
		c.Updated = f.at(int(c.Updated.Sub(f.t0)/time.Second) + 7)
	}
	f.create(60, nil)
	f.create(20, errRolledBack)
	f.create(30, nil)
	f.flip(4, nil)
	f.flip(7, errRolledBack)
	edit(6, nil, claim)
	edit(9, errRolledBack, claim)
	edit(5, nil, text)
	edit(8, errRolledBack, text)
	edit(12, nil, claim)
	f.tx(nil, func(tx *Tx) {
		n, err := tx.ScrubCharges(f.ctx, f.at(30), 10)
		require.NoError(t, err)
		require.Equal(t, 10, n)
	})
	f.create(10, nil)
	f.flip(5, nil)

	var want []timedKey
	for _, c := range p.charges {
		if scrubbable(&c) {
			want = append(want, timedKey{stampOf(c.Updated), c.ID})
		}
	}
	slices.SortFunc(want, compareTimed)
	require.Greater(t, len(want), 40)
	require.Equal(t, want, keysOf(p.scrubbable), "the index holds exactly the charges a scrub may empty")

	var instants []time.Time
	for _, i := range []int{0, 1, 10, 30, 100, 200, 1000} {
		instants = append(instants, f.at(i))
	}
	sweepCase(t, f.tx, func() map[string]payments.Charge { return p.charges }, want,
		func(id string) string { return id },
		func(tx *Tx, before time.Time, limit int) (int, error) { return tx.ScrubCharges(f.ctx, before, limit) }, instants)
	require.Equal(t, want, keysOf(p.scrubbable), "rolled back scrubs leave the index as it was")
}

// TestDecisionAgeIndexMatchesTheTable keeps decisions by age through the
// store's writes (creates, outcomes and inputs recorded, a prune), each
// also rolled back once, then compares the index with the table and
// PruneDecisions at several cut-offs and limits with the decisions the
// table says are due, oldest then id first.
func TestDecisionAgeIndexMatchesTheTable(t *testing.T) {
	ctx := context.Background()
	s, in := tenantStore(t, "ten_a")
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(i int) time.Time { return t0.Add(time.Duration((i*7)%50) * time.Second) } // ties
	create := func(from, to int, err error) {
		in(err, func(tx *Tx) {
			for i := from; i < to; i++ {
				d := &charging.Decision{ID: fmt.Sprintf("dec_%04d", (i*37)%1000), TenantID: "ten_a", MandateID: "mdt_1",
					AgentID: "agt", Result: []string{"allow", "deny"}[i%2], CreatedAt: at(i)}
				if i%2 == 0 {
					d.ChargeID = fmt.Sprintf("ch_%04d", i)
				}
				require.NoError(t, tx.CreateDecision(ctx, d))
			}
		})
	}
	outcome := func(k int, err error) {
		in(err, func(tx *Tx) {
			for i := 0; i < 180; i += k {
				require.NoError(t, tx.SetDecisionOutcome(ctx, "ten_a", fmt.Sprintf("ch_%04d", i), "failed"))
				require.NoError(t, tx.RecordDecisionInput(ctx, &charging.Decision{ID: fmt.Sprintf("dec_%04d", (i*37)%1000),
					TenantID: "ten_a", Input: []byte(`{}`)}))
			}
		})
	}
	prune := func(before time.Time, limit int, err error) {
		in(err, func(tx *Tx) {
			_, perr := tx.PruneDecisions(ctx, before, limit)
			require.NoError(t, perr)
		})
	}
	create(0, 100, nil)
	create(100, 130, errRolledBack)
	create(100, 180, nil)
	outcome(4, nil)
	outcome(6, errRolledBack)
	prune(at(3), 5, nil)
	prune(t0.Add(time.Hour), 1000, errRolledBack)
	create(180, 200, nil)

	p := &s.d.pipeline
	var want []timedKey
	for _, d := range p.decisions {
		want = append(want, timedKey{stampOf(d.CreatedAt), d.ID})
	}
	slices.SortFunc(want, compareTimed)
	require.Len(t, want, 195)
	require.Equal(t, want, keysOf(p.byAge), "the index holds exactly the decisions")

	var instants []time.Time
	for _, i := range []int{-1, 0, 1, 7, 20, 49, 50, 100} {
		instants = append(instants, t0.Add(time.Duration(i)*time.Second))
	}
	sweepCase(t, in, func() map[string]charging.Decision { return p.decisions }, want,
		func(id string) string { return id },
		func(tx *Tx, before time.Time, limit int) (int, error) { return tx.PruneDecisions(ctx, before, limit) }, instants)
	require.Equal(t, want, keysOf(p.byAge), "rolled back prunes leave the index as it was")
}

// TestIdempotencyExpiryPruneMatchesTheTable writes idempotency records
// through the store (claims, completions and answers that move their
// expiry, releases, abandons, claims again with the same expiry, prunes),
// each also rolled back once, then checks that every record has an entry
// of its expiry in the index and compares PruneExpiredIdempotency at
// several cut-offs and limits with the records the table says expired,
// by expiry then key.
func TestIdempotencyExpiryPruneMatchesTheTable(t *testing.T) {
	ctx := context.Background()
	s, in := tenantStore(t)
	// After the clock, so that no claim takes over an expired record;
	// expiries tie.
	t0 := time.Date(2040, 1, 1, 0, 0, 0, 0, time.UTC)
	exp := func(i int) time.Time { return t0.Add(time.Duration((i*7)%40) * time.Second) }
	rec := func(i int) *idempotency.Record {
		return &idempotency.Record{TenantID: []string{"ten_a", "ten_b"}[i%2], CredentialID: []string{"k1", "k2", "k3"}[i%3],
			Key: fmt.Sprintf("idem_%03d", (i*37)%200), Method: "POST", Path: "/v1/x", RequestHash: []byte{byte(i)},
			State: idempotency.StateInProgress, CreatedAt: t0.Add(-time.Hour), LockedUntil: t0, ExpiresAt: exp(i)}
	}
	claim := func(from, to int, err error) {
		in(err, func(tx *Tx) {
			for i := from; i < to; i++ {
				_, cerr := tx.ClaimIdempotency(ctx, rec(i))
				require.NoError(t, cerr)
			}
		})
	}
	// moves completes every k-th record with a later expiry and answers
	// every other one with an earlier one.
	moves := func(k int, err error) {
		in(err, func(tx *Tx) {
			for i := 0; i < 150; i += k {
				r := rec(i)
				if _, ok := tx.d.idem[idemKey{r.TenantID, r.CredentialID, r.Key}]; !ok {
					continue
				}
				r.State, r.Status, r.ExpiresAt = idempotency.StateDone, 200, exp(i).Add(13*time.Second)
				if i%2 == 0 {
					require.NoError(t, tx.AnswerIdempotency(ctx, r))
				} else {
					require.NoError(t, tx.CompleteIdempotency(ctx, r))
				}
			}
		})
	}
	release := func(k int, err error) {
		in(err, func(tx *Tx) {
			for i := 1; i < 150; i += k {
				r := rec(i)
				if i%2 == 0 {
					require.NoError(t, tx.AbandonIdempotency(ctx, r))
				} else {
					require.NoError(t, tx.ReleaseIdempotency(ctx, r.TenantID, r.CredentialID, r.Key))
				}
			}
		})
	}
	prune := func(before time.Time, limit int, err error) {
		in(err, func(tx *Tx) {
			_, perr := tx.PruneExpiredIdempotency(ctx, before, limit)
			require.NoError(t, perr)
		})
	}
	claim(0, 100, nil)
	claim(100, 130, errRolledBack)
	claim(100, 150, nil)
	moves(4, nil)
	moves(3, errRolledBack)
	release(5, nil)
	release(7, errRolledBack)
	in(nil, func(tx *Tx) { // claimed again after release, with the same expiry
		for i := 1; i < 150; i += 10 {
			_, cerr := tx.ClaimIdempotency(ctx, rec(i))
			require.NoError(t, cerr)
		}
	})
	prune(exp(3), 4, nil)
	prune(t0.Add(time.Hour), 1000, errRolledBack)
	in(nil, func(tx *Tx) {
		_, perr := tx.PruneIdempotency(ctx, t0.Add(2*time.Second))
		require.NoError(t, perr)
	})
	claim(150, 170, nil)

	type entry struct {
		k  idemKey
		at int64
	}
	indexed := map[entry]bool{}
	for _, e := range s.exp.idem.h {
		indexed[entry{e.key, e.at}] = true
	}
	var want []timedKey
	for k, r := range s.d.idem {
		require.True(t, indexed[entry{k, r.ExpiresAt.UnixNano()}], "%v has no entry of its expiry", k)
		id := k.tenant + "/" + k.cred + "/" + k.key
		want = append(want, timedKey{stampOf(r.ExpiresAt), id}) // the ids sort as the keys do
	}
	slices.SortFunc(want, compareTimed)
	require.Greater(t, len(want), 100)
	heap := slices.Clone(s.exp.idem.h)

	var instants []time.Time
	for _, i := range []int{-1, 0, 1, 3, 20, 39, 52, 60} {
		instants = append(instants, t0.Add(time.Duration(i)*time.Second))
	}
	sweepCase(t, in, func() map[idemKey]idempotency.Record { return s.d.idem }, want,
		func(k idemKey) string { return k.tenant + "/" + k.cred + "/" + k.key },
		func(tx *Tx, before time.Time, limit int) (int, error) {
			return tx.PruneExpiredIdempotency(ctx, before, limit)
		},
		instants)
	require.ElementsMatch(t, heap, s.exp.idem.h, "rolled back prunes leave the index as it was")
}

// peopleStore is a store with the tenant ten_a and its users usr_0 to
// usr_2.
func peopleStore(t *testing.T) (*Store, func(err error, fn func(tx *Tx))) {
	s, in := tenantStore(t, "ten_a")
	in(nil, func(tx *Tx) {
		for i := range 3 {
			require.NoError(t, tx.CreateUser(context.Background(), &accounts.User{ID: fmt.Sprintf("usr_%d", i),
				TenantID: "ten_a", Email: fmt.Sprintf("u%d@example.com", i)}))
		}
	})
	return s, in
}

// TestSessionAgeIndexMatchesTheTable keeps sessions by age through the
// store's writes (creates, touches, sign-outs, a user's sessions ended,
// a prune), each also rolled back once, then compares the index with the
// table and PruneSessions at several cut-offs and limits with the
// sessions the table says are due, oldest then ref first.
func TestSessionAgeIndexMatchesTheTable(t *testing.T) {
	ctx := context.Background()
	s, in := peopleStore(t)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(i int) time.Time { return t0.Add(time.Duration((i*7)%50) * time.Second) } // ties
	hash := func(i int) []byte { return []byte(fmt.Sprintf("hash_%04d", (i*37)%1000)) }
	create := func(from, to int, err error) {
		in(err, func(tx *Tx) {
			for i := from; i < to; i++ {
				require.NoError(t, tx.CreateSession(ctx, &accounts.Session{IDHash: hash(i),
					Ref: fmt.Sprintf("ses_%04d", (i*53)%1000), TenantID: "ten_a", UserID: fmt.Sprintf("usr_%d", i%3),
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
	create(0, 100, nil)
	create(100, 130, errRolledBack)
	create(100, 150, nil)
	end(5, nil)
	end(3, errRolledBack)
	in(nil, func(tx *Tx) {
		_, err := tx.PruneSessions(ctx, at(3), 4)
		require.NoError(t, err)
	})
	in(errRolledBack, func(tx *Tx) {
		_, err := tx.DeleteUserSessions(ctx, "ten_a", "usr_1")
		require.NoError(t, err)
	})
	in(nil, func(tx *Tx) {
		_, err := tx.DeleteUserSessions(ctx, "ten_a", "usr_2")
		require.NoError(t, err)
	})
	create(150, 170, nil)

	p := s.d.people
	var want []sessionAge
	for k, ses := range p.sessions {
		want = append(want, ageOf(k, &ses))
	}
	slices.SortFunc(want, compareSessionAges)
	require.Greater(t, len(want), 60)
	require.Equal(t, want, keysOf(p.sessionsByAge), "the index holds exactly the sessions")

	byRef := make([]timedKey, len(want)) // refs are unique: the ref names the session
	refs := map[string]string{}
	for i, a := range want {
		byRef[i] = timedKey{a.at, a.ref}
		refs[a.hash] = a.ref
	}
	var instants []time.Time
	for _, i := range []int{-1, 0, 1, 7, 20, 49, 50, 100} {
		instants = append(instants, t0.Add(time.Duration(i)*time.Second))
	}
	sweepCase(t, in, func() map[string]accounts.Session { return p.sessions }, byRef,
		func(k string) string { return refs[k] },
		func(tx *Tx, before time.Time, limit int) (int, error) { return tx.PruneSessions(ctx, before, limit) }, instants)
	require.Equal(t, want, keysOf(p.sessionsByAge), "rolled back prunes leave the index as it was")
}

// TestLoginMarkAgeIndexMatchesTheTable keeps login marks by age through
// the store's writes (marks, marks seen again, a user's marks erased, a
// prune), each also rolled back once, then compares the index with the
// table and PruneLoginMarks at several cut-offs and limits with the marks
// the table says are due, oldest then key first.
func TestLoginMarkAgeIndexMatchesTheTable(t *testing.T) {
	ctx := context.Background()
	s, in := peopleStore(t)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(i int) time.Time { return t0.Add(time.Duration((i*7)%50) * time.Second) } // ties
	mark := func(from, to int, err error) {
		in(err, func(tx *Tx) {
			for i := from; i < to; i++ {
				// Marks repeat: a mark seen again keeps its first time.
				_, merr := tx.MarkLogin(ctx, "ten_a", fmt.Sprintf("usr_%d", i%3), fmt.Sprintf("dev_%03d", (i*37)%120), at(i))
				require.NoError(t, merr)
			}
		})
	}
	mark(0, 100, nil)
	mark(100, 130, errRolledBack)
	mark(100, 200, nil)
	in(errRolledBack, func(tx *Tx) {
		_, err := tx.DeleteLoginMarks(ctx, "ten_a", "usr_1")
		require.NoError(t, err)
	})
	in(nil, func(tx *Tx) {
		_, err := tx.DeleteLoginMarks(ctx, "ten_a", "usr_2")
		require.NoError(t, err)
	})
	in(nil, func(tx *Tx) {
		_, err := tx.PruneLoginMarks(ctx, at(3), 4)
		require.NoError(t, err)
	})
	mark(200, 260, nil)

	p := s.d.people
	var want []timedKey
	for k, first := range p.marks {
		want = append(want, timedKey{stampOf(first), k})
	}
	slices.SortFunc(want, compareTimed)
	require.Greater(t, len(want), 80)
	require.Equal(t, want, keysOf(p.marksByAge), "the index holds exactly the marks")

	var instants []time.Time
	for _, i := range []int{-1, 0, 1, 7, 20, 49, 50, 100} {
		instants = append(instants, t0.Add(time.Duration(i)*time.Second))
	}
	sweepCase(t, in, func() map[string]time.Time { return p.marks }, want, func(k string) string { return k },
		func(tx *Tx, before time.Time, limit int) (int, error) { return tx.PruneLoginMarks(ctx, before, limit) }, instants)
	require.Equal(t, want, keysOf(p.marksByAge), "rolled back prunes leave the index as it was")
}

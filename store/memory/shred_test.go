package memory

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/mandates"
	"github.com/perfectpay/perfectpay/payments"
	"github.com/perfectpay/perfectpay/vault"
)

// shredDue is ShredUnusedTokens's set as the tables define it: the live
// tokens created before before that no charge of their tenant made at or
// after before uses and no live mandate of their tenant names, oldest then
// id first.
func shredDue(s *Store, before time.Time) []string {
	used := map[useKey]bool{}
	for _, c := range s.d.payments.charges {
		if !c.Created.Before(before) {
			used[useKey{c.TenantID, c.PaymentMethod}] = true
		}
	}
	for _, m := range s.d.mandates.mandates {
		if namesTokens(&m) {
			for _, id := range m.Limits.PaymentMethods {
				used[useKey{m.TenantID, id}] = true
			}
		}
	}
	var due []vault.Token
	for _, t := range s.d.vault.tokens {
		if t.DeletedAt == nil && t.CreatedAt.Before(before) && !used[useKey{t.TenantID, t.ID}] {
			due = append(due, t)
		}
	}
	slices.SortFunc(due, func(a, b vault.Token) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), cmp.Compare(a.ID, b.ID))
	})
	ids := make([]string, len(due))
	for i, t := range due {
		ids[i] = t.ID
	}
	return ids
}

// TestShredIndexMatchesTheTable moves card tokens into and out of the
// shred's index through the store's writes (tokens created and deleted,
// charges made with them, by their tenant and by another, mandates naming
// them created, revoked, made active again, exhausted and expired, a
// shred), each also rolled back once, then compares the index with the
// tables and ShredUnusedTokens at several cut-offs and limits with the
// tokens the tables say are due, oldest then id first.
func TestShredIndexMatchesTheTable(t *testing.T) {
	ctx := context.Background()
	s, in := tenantStore(t, "ten_a", "ten_b")
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(i int) time.Time { return t0.Add(time.Duration(i) * time.Second) }
	tok := func(i int) string { return fmt.Sprintf("tok_%03d", (i*37)%200) }
	tenant := func(i int) string { return []string{"ten_a", "ten_b"}[(i*37)%200%2] } // a token's tenant
	in(nil, func(tx *Tx) {
		for _, tn := range []string{"ten_a", "ten_b"} {
			_, err := tx.EnsureTenantKey(ctx, &vault.TenantKey{ID: "key_" + tn, TenantID: tn, KEKVersion: 1,
				Wrapped: []byte("w"), CreatedAt: t0})
			require.NoError(t, err)
		}
	})
	tokens := func(from, to int, err error) {
		in(err, func(tx *Tx) {
			for i := from; i < to; i++ {
				require.NoError(t, tx.CreateToken(ctx, &vault.Token{ID: tok(i), TenantID: tenant(i),
					TenantKeyID: "key_" + tenant(i), WrappedDEK: []byte("d"), Ciphertext: []byte("c"),
					CreatedAt: at((i * 7) % 60)})) // ties
			}
		})
	}
	nc := 0
	charges := func(from, to int, when int, other bool, err error) {
		in(err, func(tx *Tx) {
			for i := from; i < to; i++ {
				tn := tenant(i)
				if other { // a charge of the other tenant, with the same token id
					tn = map[string]string{"ten_a": "ten_b", "ten_b": "ten_a"}[tn]
				}
				nc++
				require.NoError(t, tx.CreateCharge(ctx, &payments.Charge{ID: fmt.Sprintf("ch_%04d", nc), TenantID: tn,
					Status: payments.StatusSucceeded, Amount: 1, AmountCaptured: 1, Currency: "eur", PaymentMethod: tok(i),
					Created: at(when + i%5), Updated: at(when + i%5)}))
			}
		})
	}
	// Some mandates expire at 900 s (ExpireMandates below takes them out
	// of the live ones), the others never do.
	until := func(i int) *time.Time {
		if i%5 != 2 {
			return nil
		}
		u := at(900)
		return &u
	}
	// A reservation of the whole budget exhausts an active mandate (no
	// longer live: its cards are free) and its release makes it active
	// again (live: its cards are named again).
	spent := 0
	spend := func(from, to, k int, release bool, err error) {
		in(err, func(tx *Tx) {
			for i := from; i < to; i += k {
				id := fmt.Sprintf("mdt_%03d", i)
				m, ok := tx.d.mandates.mandates[id]
				if !ok || m.Status != mandates.StatusActive {
					continue
				}
				r, rerr := tx.Reserve(ctx, []string{id}, 10, at(510))
				require.NoError(t, rerr)
				spent++
				if release {
					require.NoError(t, tx.Release(ctx, r, false))
				}
			}
		})
	}
	expire := func(err error) {
		in(err, func(tx *Tx) {
			_, eerr := tx.ExpireMandates(ctx, at(950), 1000)
			require.NoError(t, eerr)
		})
	}
	mandate := func(from, to int, err error) {
		in(err, func(tx *Tx) {
			for i := from; i < to; i++ {
				require.NoError(t, tx.CreateMandate(ctx, &mandates.Mandate{ID: fmt.Sprintf("mdt_%03d", i), TenantID: tenant(i),
					Payer: "p", Agent: "agt", Status: []string{mandates.StatusActive, mandates.StatusPendingApproval,
						mandates.StatusSuspended, mandates.StatusExhausted}[i%4],
					Limits: mandates.Limits{Budget: 10, ValidUntil: until(i),
						PaymentMethods: []string{tok(i), tok(i + 1), tok(i)}}, CreatedAt: t0}))
			}
		})
	}
	status := func(from, to, k int, to2 string, err error) {
		in(err, func(tx *Tx) {
			for i := from; i < to; i += k {
				_, serr := tx.SetMandateStatus(ctx, tenant(i), fmt.Sprintf("mdt_%03d", i), []string{mandates.StatusActive,
					mandates.StatusPendingApproval, mandates.StatusSuspended, mandates.StatusExhausted, mandates.StatusRevoked},
					to2, at(500))
				require.NoError(t, serr)
			}
		})
	}
	deleteTokens := func(k int, err error) {
		in(err, func(tx *Tx) {
			for i := 1; i < 150; i += k {
				if tok, ok := tx.d.vault.tokens[tok(i)]; ok && tok.DeletedAt == nil {
					require.NoError(t, tx.DeleteToken(ctx, tok.TenantID, tok.ID, at(600)))
				}
			}
		})
	}
	tokens(0, 120, nil)
	tokens(120, 140, errRolledBack)
	charges(0, 60, 30, false, nil)
	charges(60, 90, 80, false, errRolledBack)
	charges(40, 80, 70, true, nil)
	charges(10, 30, 50, false, nil)
	mandate(0, 40, nil)
	mandate(40, 60, errRolledBack)
	mandate(40, 50, nil)
	status(0, 50, 3, mandates.StatusRevoked, nil)
	status(0, 50, 4, mandates.StatusActive, errRolledBack)
	status(0, 50, 6, mandates.StatusActive, nil)
	status(0, 50, 7, mandates.StatusExpired, nil)
	spend(0, 50, 1, true, nil)
	spend(0, 50, 2, true, errRolledBack)
	spend(0, 50, 2, false, errRolledBack)
	spend(0, 50, 2, false, nil)
	expire(errRolledBack)
	expire(nil)
	require.Greater(t, spent, 6, "reservations made")
	deleteTokens(9, nil)
	deleteTokens(4, errRolledBack)
	in(nil, func(tx *Tx) {
		_, err := tx.ShredUnusedTokens(ctx, at(40), at(700), 3)
		require.NoError(t, err)
	})
	// Only the memory store lets an update move a charge to another
	// token or time; the last use of the old token is found again.
	move := func(k int, err error) {
		in(err, func(tx *Tx) {
			for i := 1; i <= nc; i += k {
				c, ok := tx.d.payments.charges[fmt.Sprintf("ch_%04d", i)]
				if !ok {
					continue // made in a transaction rolled back
				}
				c = cloneCharge(c)
				c.PaymentMethod, c.Created = tok(i+3), c.Created.Add(-25*time.Second)
				tx.putCharge(c) // no store method moves a charge; its writer keeps the index for any
			}
		})
	}
	move(7, nil)
	move(5, errRolledBack)
	tokens(120, 150, nil)
	charges(120, 150, 20, false, nil) // charges of tokens made later than the charges

	// The live mandates' names of each card, counted from the mandates.
	wantNamed := map[useKey]int{}
	for _, m := range s.d.mandates.mandates {
		switch m.Status {
		case mandates.StatusPendingApproval, mandates.StatusActive, mandates.StatusSuspended:
			for _, id := range m.Limits.PaymentMethods { // a card named twice counts twice
				wantNamed[useKey{m.TenantID, id}]++
			}
		}
	}
	gotNamed := map[useKey]int{}
	for k, n := range s.d.mandates.named {
		if n != 0 {
			gotNamed[k] = n
		}
	}
	require.Equal(t, wantNamed, gotNamed, "the live mandates naming each card")

	v := s.d.vault
	var want []shredKey
	for _, tk := range v.tokens {
		k := useKey{tk.TenantID, tk.ID}
		if tk.DeletedAt != nil || namedByLive(s, k) {
			continue
		}
		due := stampOf(tk.CreatedAt)
		for _, c := range s.d.payments.charges {
			if (useKey{c.TenantID, c.PaymentMethod}) == k && stampOf(c.Created).compare(due) > 0 {
				due = stampOf(c.Created)
			}
		}
		want = append(want, shredKey{timedKey{stampOf(tk.CreatedAt), tk.ID}, due})
	}
	slices.SortFunc(want, func(a, b shredKey) int { return compareTimed(a.timedKey, b.timedKey) })
	require.Greater(t, len(want), 30)
	require.Equal(t, want, keysOf(v.shreddable), "the index holds exactly the live tokens no live mandate names")

	for _, before := range []int{-1, 0, 1, 20, 30, 40, 55, 60, 75, 86, 200} {
		due := shredDue(s, at(before))
		for _, limit := range []int{0, 1, 5, 40, 1000} {
			in(errRolledBack, func(tx *Tx) {
				n, err := tx.ShredUnusedTokens(ctx, at(before), at(800), limit)
				require.NoError(t, err)
				var got []string
				for _, tk := range v.tokens {
					if tk.DeletedAt != nil && tk.DeletedAt.Equal(at(800)) {
						got = append(got, tk.ID)
					}
				}
				wantIDs := slices.Sorted(slices.Values(due[:min(limit, len(due))]))
				slices.Sort(got)
				require.Equal(t, wantIDs, got, "before %d, limit %d", before, limit)
				require.Equal(t, len(wantIDs), n)
			})
		}
	}
	require.Equal(t, want, keysOf(v.shreddable), "rolled back shreds leave the index as it was")
}

// namedByLive says whether a live mandate (pending approval, active or
// suspended) of the token's tenant names it, read from the mandates.
func namedByLive(s *Store, k useKey) bool {
	for _, m := range s.d.mandates.mandates {
		switch m.Status {
		case mandates.StatusPendingApproval, mandates.StatusActive, mandates.StatusSuspended:
			if m.TenantID == k.tenant && slices.Contains(m.Limits.PaymentMethods, k.token) {
				return true
			}
		}
	}
	return false
}

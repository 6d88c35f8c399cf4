package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/internal/ids"
	"github.com/perfectpay/perfectpay/mandates"
	"github.com/perfectpay/perfectpay/merchants"
	"github.com/perfectpay/perfectpay/store"
)

func p64(v int64) *int64 { return &v }

// newMandate returns an active root mandate of tenant with the given budget.
func newMandate(tenantID string, budget int64) *mandates.Mandate {
	ts := now()
	return &mandates.Mandate{
		ID: ids.New("mdt"), TenantID: tenantID, Payer: "cus_1", Agent: "agt_1", Status: mandates.StatusActive,
		Limits:    mandates.Limits{Currency: "USD", Budget: budget, PaymentMethods: []string{"tok_a"}},
		CreatedAt: ts, UpdatedAt: ts,
	}
}

// childOf returns an active child of parent.
func childOf(parent *mandates.Mandate, budget int64) *mandates.Mandate {
	c := newMandate(parent.TenantID, budget)
	c.ParentID, c.Depth, c.Agent = parent.ID, parent.Depth+1, "agt_child"
	return c
}

func create[X Tx](t *testing.T, b store.Backend[X], ms ...*mandates.Mandate) {
	t.Helper()
	in(t, b, func(tx X) error {
		for _, m := range ms {
			if err := tx.CreateMandate(context.Background(), m); err != nil {
				return err
			}
		}
		return nil
	})
}

func get[X Tx](t *testing.T, b store.Backend[X], m *mandates.Mandate) *mandates.Mandate {
	t.Helper()
	var got *mandates.Mandate
	in(t, b, func(tx X) error {
		var err error
		got, err = tx.GetMandate(context.Background(), m.TenantID, m.ID)
		return err
	})
	return got
}

func testMandates[X Tx](t *testing.T, b store.Backend[X]) {
	ctx := context.Background()
	tn, other := MakeTenant(t, b), MakeTenant(t, b)
	from, until := now().Add(-time.Hour), now().Add(time.Hour)
	root := newMandate(tn.ID, 10_000)
	root.MaxAmountPerCharge, root.Period, root.PeriodBudget, root.MaxCharges = p64(5_000), mandates.PeriodWeek, p64(7_000), p64(9)
	root.PaymentMethods = []string{"tok_a", "tok_b"}
	root.AllowedMerchants, root.AllowedCategories = []string{"acct_1", "shop.example.com"}, []string{"5942"}
	root.BlockedCategories, root.AllowedCountries = []string{"7995"}, []string{"DE", "US"}
	root.ValidFrom, root.ValidUntil, root.ApprovalThreshold = &from, &until, p64(0)
	root.Description, root.Payer = "books for the office", tn.ID
	child := childOf(root, 1_000)
	create(t, b, root, child)

	got := get(t, b, root)
	assert.Equal(t, root, got, "every field round-trips")
	gotChild := get(t, b, child)
	assert.Equal(t, child, gotChild)
	assert.Nil(t, gotChild.AllowedMerchants, "absent sets stay absent")
	assert.Nil(t, gotChild.MaxAmountPerCharge)

	require.ErrorIs(t, b.InTx(ctx, func(tx X) error { return tx.CreateMandate(ctx, root) }), store.ErrConflict)
	orphan := newMandate(tn.ID, 5)
	orphan.ParentID = "mdt_missing"
	require.ErrorIs(t, b.InTx(ctx, func(tx X) error { return tx.CreateMandate(ctx, orphan) }), store.ErrNotFound)
	require.ErrorIs(t, b.InTx(ctx, func(tx X) error { _, err := tx.GetMandate(ctx, other.ID, root.ID); return err }),
		store.ErrNotFound, "another tenant's mandate is invisible")

	in(t, b, func(tx X) error {
		chain, err := tx.MandateChain(ctx, tn.ID, child.ID)
		require.NoError(t, err)
		require.Len(t, chain, 2)
		assert.Equal(t, root.ID, chain[0].ID, "root first")
		assert.Equal(t, child.ID, chain[1].ID)
		_, err = tx.MandateChain(ctx, other.ID, child.ID)
		require.ErrorIs(t, err, store.ErrNotFound)
		return nil
	})

	// Status transitions are conditional.
	in(t, b, func(tx X) error {
		at := now()
		m, err := tx.SetMandateStatus(ctx, tn.ID, child.ID, []string{mandates.StatusActive}, mandates.StatusSuspended, at)
		require.NoError(t, err)
		assert.Equal(t, mandates.StatusSuspended, m.Status)
		assert.True(t, at.Equal(m.UpdatedAt))
		m, err = tx.SetMandateStatus(ctx, tn.ID, child.ID, []string{mandates.StatusActive}, mandates.StatusSuspended, at)
		require.ErrorIs(t, err, store.ErrConflict)
		assert.Equal(t, mandates.StatusSuspended, m.Status, "the conflict shows the current status")
		_, err = tx.SetMandateStatus(ctx, other.ID, child.ID, []string{mandates.StatusSuspended}, mandates.StatusActive, at)
		require.ErrorIs(t, err, store.ErrNotFound)
		return nil
	})
	pending := newMandate(tn.ID, 100)
	pending.Status = mandates.StatusPendingApproval
	create(t, b, pending)
	in(t, b, func(tx X) error {
		m, err := tx.SetMandateStatus(ctx, tn.ID, pending.ID, []string{mandates.StatusPendingApproval}, mandates.StatusActive, now())
		require.NoError(t, err)
		assert.NotNil(t, m.ApprovedAt, "approval is stamped")
		return nil
	})

	// Listing: filters and cursor pagination, newest first.
	var page []string
	for i := range 5 {
		m := newMandate(tn.ID, 100)
		m.Agent, m.Payer = "agt_list", "cus_list"
		m.CreatedAt = now().Add(time.Duration(i) * time.Second)
		create(t, b, m)
		page = append([]string{m.ID}, page...)
	}
	list := func(f mandates.Filter) ([]string, bool) {
		var out []string
		var more bool
		in(t, b, func(tx X) error {
			ms, m, err := tx.ListMandates(ctx, f)
			for _, x := range ms {
				out = append(out, x.ID)
			}
			more = m
			return err
		})
		return out, more
	}
	first, more := list(mandates.Filter{TenantID: tn.ID, Agent: "agt_list", Limit: 2})
	assert.Equal(t, page[:2], first)
	assert.True(t, more)
	second, more := list(mandates.Filter{TenantID: tn.ID, Agent: "agt_list", Limit: 2, StartingAfter: first[1]})
	assert.Equal(t, page[2:4], second)
	assert.True(t, more)
	last, more := list(mandates.Filter{TenantID: tn.ID, Agent: "agt_list", Limit: 2, StartingAfter: second[1]})
	assert.Equal(t, page[4:], last)
	assert.False(t, more)
	byPayer, _ := list(mandates.Filter{TenantID: tn.ID, Payer: tn.ID, Limit: 10})
	assert.Equal(t, []string{root.ID}, byPayer)
	byStatus, _ := list(mandates.Filter{TenantID: tn.ID, Status: mandates.StatusSuspended, Limit: 10})
	assert.Equal(t, []string{child.ID}, byStatus)
	byParent, _ := list(mandates.Filter{TenantID: tn.ID, ParentID: root.ID, Limit: 10})
	assert.Equal(t, []string{child.ID}, byParent)
	none, _ := list(mandates.Filter{TenantID: other.ID, Limit: 10})
	assert.Empty(t, none)
	require.ErrorIs(t, b.InTx(ctx, func(tx X) error {
		_, _, err := tx.ListMandates(ctx, mandates.Filter{TenantID: other.ID, StartingAfter: root.ID, Limit: 10})
		return err
	}), store.ErrNotFound, "a cursor of another tenant")

	// Expiry.
	old := newMandate(tn.ID, 100)
	past := now().Add(-time.Minute)
	old.ValidFrom, old.ValidUntil = p64t(past.Add(-time.Hour)), &past
	create(t, b, old)
	in(t, b, func(tx X) error {
		exp, err := tx.ExpireMandates(ctx, now(), 100)
		require.NoError(t, err)
		require.Len(t, exp, 1)
		assert.Equal(t, old.ID, exp[0].ID)
		assert.Equal(t, mandates.StatusExpired, exp[0].Status)
		exp, err = tx.ExpireMandates(ctx, now(), 100)
		require.NoError(t, err)
		assert.Empty(t, exp, "expired once")
		return nil
	})
}

func p64t(t time.Time) *time.Time { return &t }

func reserve[X Tx](b store.Backend[X], chain []string, amount int64, at time.Time) (*mandates.Reservation, error) {
	var res *mandates.Reservation
	err := b.InTx(context.Background(), func(tx X) error {
		var err error
		res, err = tx.Reserve(context.Background(), chain, amount, at)
		return err
	})
	return res, err
}

func requireRefused(t *testing.T, err error, mandateID, limit string) {
	t.Helper()
	var re *mandates.RefusedError
	require.ErrorAs(t, err, &re)
	require.ErrorIs(t, err, mandates.ErrRefused)
	assert.Equal(t, mandateID, re.MandateID)
	assert.Equal(t, limit, re.Limit)
}

func testMandateReserve[X Tx](t *testing.T, b store.Backend[X]) {
	ctx := context.Background()
	tn := MakeTenant(t, b)
	parent := newMandate(tn.ID, 1_000)
	parent.Period, parent.PeriodBudget = mandates.PeriodDay, p64(600)
	child := childOf(parent, 500)
	child.MaxCharges = p64(3)
	create(t, b, parent, child)
	chain := []string{parent.ID, child.ID}
	day1 := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)

	res, err := reserve(b, chain, 200, day1)
	require.NoError(t, err)
	assert.Equal(t, chain, res.Chain)
	assert.True(t, day1.Truncate(24*time.Hour).Equal(res.Periods[parent.ID]), "the period charged is recorded")
	_, hasChildPeriod := res.Periods[child.ID]
	assert.False(t, hasChildPeriod)

	_, err = reserve(b, chain, 301, day1)
	requireRefused(t, err, child.ID, mandates.LimitBudget)
	p := get(t, b, parent)
	assert.Equal(t, int64(200), p.Spent, "a refusal by the child rolls back the parent's update")
	assert.Equal(t, int64(1), p.ChargeCount)

	_, err = reserve(b, []string{parent.ID}, 401, day1)
	requireRefused(t, err, parent.ID, mandates.LimitPeriod)
	_, err = reserve(b, []string{parent.ID}, 400, day1)
	require.NoError(t, err, "exactly the period budget")

	// The next day the period budget starts again.
	day2 := day1.Add(24 * time.Hour)
	_, err = reserve(b, chain, 250, day2)
	require.NoError(t, err)
	p = get(t, b, parent)
	assert.Equal(t, int64(850), p.Spent)
	assert.Equal(t, int64(250), p.PeriodSpent)
	assert.True(t, day2.Truncate(24*time.Hour).Equal(*p.PeriodStart))

	// Releasing a day-1 reservation on day 2 restores the budget but not
	// the new day's period spending.
	require.NoError(t, b.InTx(ctx, func(tx X) error { return tx.Release(ctx, res, false) }))
	p, c := get(t, b, parent), get(t, b, child)
	assert.Equal(t, int64(650), p.Spent)
	assert.Equal(t, int64(250), p.PeriodSpent)
	assert.Equal(t, int64(2), p.ChargeCount)
	assert.Equal(t, int64(250), c.Spent)
	assert.Equal(t, int64(1), c.ChargeCount)

	// max_charges: the third charge exhausts the child.
	_, err = reserve(b, chain, 10, day2)
	require.NoError(t, err)
	res, err = reserve(b, chain, 10, day2)
	require.NoError(t, err)
	assert.Equal(t, []string{child.ID}, res.Exhausted)
	c = get(t, b, child)
	assert.Equal(t, mandates.StatusExhausted, c.Status)
	_, err = reserve(b, chain, 10, day2)
	requireRefused(t, err, child.ID, mandates.LimitStatus)
	// A refund keeps the count: still exhausted. A decline gives it back.
	require.NoError(t, b.InTx(ctx, func(tx X) error { return tx.Release(ctx, res, true) }))
	assert.Equal(t, mandates.StatusExhausted, get(t, b, child).Status)
	res.Amount = 0
	require.NoError(t, b.InTx(ctx, func(tx X) error { return tx.Release(ctx, res, false) }))
	c = get(t, b, child)
	assert.Equal(t, mandates.StatusActive, c.Status)
	assert.Equal(t, int64(2), c.ChargeCount)

	// Budget exactly used up exhausts the mandate.
	small := newMandate(tn.ID, 100)
	create(t, b, small)
	res, err = reserve(b, []string{small.ID}, 100, day1)
	require.NoError(t, err)
	assert.Equal(t, []string{small.ID}, res.Exhausted)
	require.NoError(t, b.InTx(ctx, func(tx X) error { return tx.Release(ctx, res, false) }))
	assert.Equal(t, mandates.StatusActive, get(t, b, small).Status)

	// A suspended ancestor refuses; so does a window not yet open.
	in(t, b, func(tx X) error {
		_, err := tx.SetMandateStatus(ctx, tn.ID, parent.ID, []string{mandates.StatusActive}, mandates.StatusSuspended, now())
		return err
	})
	_, err = reserve(b, chain, 1, day2)
	requireRefused(t, err, parent.ID, mandates.LimitStatus)
	later := newMandate(tn.ID, 100)
	later.ValidFrom = p64t(day2)
	create(t, b, later)
	_, err = reserve(b, []string{later.ID}, 1, day1)
	requireRefused(t, err, later.ID, mandates.LimitWindow)
	_, err = reserve(b, []string{"mdt_missing"}, 1, day1)
	requireRefused(t, err, "mdt_missing", mandates.LimitNotFound)
}

func testMandateRevokeTree[X Tx](t *testing.T, b store.Backend[X]) {
	ctx := context.Background()
	tn := MakeTenant(t, b)
	root := newMandate(tn.ID, 1000)
	a, bb := childOf(root, 100), childOf(root, 100)
	a1 := childOf(a, 10)
	a2 := childOf(a, 10)
	a2.Status = mandates.StatusExpired
	create(t, b, root, a, bb, a1, a2)
	var revoked []string
	in(t, b, func(tx X) error {
		var err error
		revoked, err = tx.RevokeMandateTree(ctx, tn.ID, a.ID, now())
		return err
	})
	assert.Equal(t, []string{a.ID, a1.ID}, revoked, "the subtree, not the expired child")
	assert.Equal(t, mandates.StatusActive, get(t, b, root).Status)
	assert.Equal(t, mandates.StatusActive, get(t, b, bb).Status)
	assert.Equal(t, mandates.StatusExpired, get(t, b, a2).Status)
	got := get(t, b, a1)
	assert.Equal(t, mandates.StatusRevoked, got.Status)
	assert.NotNil(t, got.RevokedAt)

	in(t, b, func(tx X) error {
		var err error
		revoked, err = tx.RevokeMandateTree(ctx, tn.ID, root.ID, now())
		return err
	})
	assert.Equal(t, []string{root.ID, bb.ID}, revoked, "already revoked ones are left alone")
	in(t, b, func(tx X) error {
		var err error
		revoked, err = tx.RevokeMandateTree(ctx, tn.ID, root.ID, now())
		return err
	})
	assert.Empty(t, revoked, "revoking twice changes nothing")
	stranger := MakeTenant(t, b)
	require.ErrorIs(t, b.InTx(ctx, func(tx X) error {
		_, err := tx.RevokeMandateTree(ctx, stranger.ID, root.ID, now())
		return err
	}), store.ErrNotFound)
	_, err := reserve(b, []string{root.ID, a.ID, a1.ID}, 1, now())
	requireRefused(t, err, root.ID, mandates.LimitStatus)
}

func testMandateEvents[X Tx](t *testing.T, b store.Backend[X]) {
	ctx := context.Background()
	tn := MakeTenant(t, b)
	m := newMandate(tn.ID, 100)
	create(t, b, m)
	var written []string
	var appended []*mandates.Event
	in(t, b, func(tx X) error {
		written, appended = nil, nil
		for i, typ := range []string{"mandate.created", "mandate.approved", "decision", "mandate.revoked"} {
			e := &mandates.Event{ID: ids.New("mev"), TenantID: tn.ID, MandateID: m.ID, Type: typ, ActorType: "api_key",
				ActorID: "key_1", Data: json.RawMessage(`{"n":` + string(rune('0'+i)) + `}`), CreatedAt: now()}
			if err := tx.AppendMandateEvent(ctx, e); err != nil {
				return err
			}
			written = append(written, e.ID)
			appended = append(appended, e)
		}
		return nil
	})
	for _, e := range appended {
		assert.NotZero(t, e.Seq, "numbered once the transaction commits")
	}
	in(t, b, func(tx X) error {
		return tx.AppendMandateEvent(ctx, &mandates.Event{ID: ids.New("mev"), TenantID: tn.ID, MandateID: m.ID, Type: "x", CreatedAt: now()})
	})
	var page1, page2 []mandates.Event
	var more bool
	in(t, b, func(tx X) error {
		var err error
		page1, more, err = tx.ListMandateEvents(ctx, mandates.EventFilter{TenantID: tn.ID, MandateID: m.ID, Limit: 3})
		require.NoError(t, err)
		assert.True(t, more)
		page2, more, err = tx.ListMandateEvents(ctx, mandates.EventFilter{TenantID: tn.ID, MandateID: m.ID, AfterSeq: page1[2].Seq, Limit: 3})
		return err
	})
	assert.False(t, more)
	in(t, b, func(tx X) error {
		byID, _, err := tx.ListMandateEvents(ctx, mandates.EventFilter{TenantID: tn.ID, MandateID: m.ID, StartingAfter: written[2], Limit: 3})
		require.NoError(t, err)
		assert.Len(t, byID, 2, "a cursor by event id")
		_, _, err = tx.ListMandateEvents(ctx, mandates.EventFilter{TenantID: tn.ID, MandateID: m.ID, StartingAfter: "mev_missing", Limit: 3})
		require.ErrorIs(t, err, store.ErrNotFound)
		return nil
	})
	require.Len(t, page1, 3)
	require.Len(t, page2, 2)
	assert.Equal(t, written[:3], []string{page1[0].ID, page1[1].ID, page1[2].ID}, "oldest first")
	assert.Equal(t, "mandate.created", page1[0].Type)
	assert.JSONEq(t, `{"n":0}`, string(page1[0].Data))
	assert.Equal(t, "key_1", page1[0].ActorID)
	assert.Nil(t, page2[1].Data)
	stranger := MakeTenant(t, b)
	in(t, b, func(tx X) error {
		evs, _, err := tx.ListMandateEvents(ctx, mandates.EventFilter{TenantID: stranger.ID, MandateID: m.ID, Limit: 10})
		assert.Empty(t, evs, "another tenant sees no history")
		return err
	})
}

// testMandateReserveRace: 200 goroutines reserve random amounts at once,
// half on a child (and so on its parent), half on the parent alone. Neither
// budget is ever exceeded and the counters equal the sum of the
// reservations that succeeded.
func testMandateReserveRace[X Tx](t *testing.T, b store.Backend[X]) {
	tn := MakeTenant(t, b)
	parent := newMandate(tn.ID, 8_000)
	child := childOf(parent, 5_000)
	create(t, b, parent, child)
	r := rand.New(rand.NewPCG(42, 200)) //nolint:gosec // G404: a seeded, repeatable load, not a secret
	amounts := make([]int64, 200)
	for i := range amounts {
		amounts[i] = 1 + r.Int64N(150)
	}
	var (
		mu                     sync.Mutex
		childSum, parentSum    int64
		childCount, parentOnly int64
		refused                int
		wg                     sync.WaitGroup
	)
	start := make(chan struct{})
	for i, amount := range amounts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			chain := []string{parent.ID}
			if i%2 == 0 {
				chain = append(chain, child.ID)
			}
			_, err := reserve(b, chain, amount, now())
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				parentSum += amount
				if len(chain) == 2 {
					childSum += amount
					childCount++
				} else {
					parentOnly++
				}
			case errorsIsRefused(err):
				refused++
			default:
				t.Errorf("reservation failed: %v", err)
			}
		}()
	}
	close(start)
	wg.Wait()
	p, c := get(t, b, parent), get(t, b, child)
	assert.LessOrEqual(t, p.Spent, p.Budget)
	assert.LessOrEqual(t, c.Spent, c.Budget)
	assert.Equal(t, parentSum, p.Spent, "parent counter = sum of successful reservations")
	assert.Equal(t, childSum, c.Spent, "child counter = sum of successful reservations")
	assert.Equal(t, childCount+parentOnly, p.ChargeCount)
	assert.Equal(t, childCount, c.ChargeCount)
	assert.Positive(t, refused, "demand exceeded the budgets, so some were refused")
	assert.Greater(t, p.Spent, p.Budget-150, "refusals only when the budget was nearly used")
}

func errorsIsRefused(err error) bool {
	var re *mandates.RefusedError
	return errors.As(err, &re)
}

func testMerchants[X Tx](t *testing.T, b store.Backend[X]) {
	ctx := context.Background()
	tn, other := MakeTenant(t, b), MakeTenant(t, b)
	verified := now()
	m := &merchants.Merchant{ID: ids.New("acct"), TenantID: tn.ID, DisplayName: "Acme Books", MCC: "5942", Country: "US",
		Domains:   []merchants.Domain{{Name: "books.example.com", VerifiedAt: &verified}, {Name: "shop.example.com"}},
		CreatedAt: now(), UpdatedAt: now()}
	in(t, b, func(tx X) error { return tx.CreateMerchant(ctx, m) })
	in(t, b, func(tx X) error {
		got, err := tx.GetMerchant(ctx, m.ID)
		require.NoError(t, err)
		assert.Equal(t, m, got)
		got, err = tx.GetMerchantByTenant(ctx, tn.ID)
		require.NoError(t, err)
		assert.Equal(t, m.ID, got.ID)
		return nil
	})
	again := *m.Clone()
	again.ID = ids.New("acct")
	again.Domains = nil
	require.ErrorIs(t, b.InTx(ctx, func(tx X) error { return tx.CreateMerchant(ctx, &again) }), store.ErrConflict, "one profile per tenant")

	// Another merchant may claim the domain but not hold it verified too.
	o := &merchants.Merchant{ID: ids.New("acct"), TenantID: other.ID, DisplayName: "Impostor", MCC: "5942", Country: "US",
		Domains: []merchants.Domain{{Name: "books.example.com"}}, CreatedAt: now(), UpdatedAt: now()}
	in(t, b, func(tx X) error { return tx.CreateMerchant(ctx, o) })
	o.Domains[0].VerifiedAt = &verified
	require.ErrorIs(t, b.InTx(ctx, func(tx X) error { return tx.UpdateMerchant(ctx, o) }), store.ErrConflict)
	in(t, b, func(tx X) error {
		found, err := tx.FindMerchantsByDomain(ctx, "books.example.com")
		require.NoError(t, err)
		require.Len(t, found, 1)
		assert.Equal(t, m.ID, found[0].ID, "only the verified holder")
		found, err = tx.FindMerchantsByDomain(ctx, "shop.example.com")
		require.NoError(t, err)
		assert.Empty(t, found, "unverified domains are not found")
		return nil
	})

	m.DisplayName, m.Domains = "Acme Books & More", []merchants.Domain{{Name: "books.example.com", VerifiedAt: &verified}}
	in(t, b, func(tx X) error { return tx.UpdateMerchant(ctx, m) })
	in(t, b, func(tx X) error {
		got, err := tx.GetMerchant(ctx, m.ID)
		require.NoError(t, err)
		assert.Equal(t, "Acme Books & More", got.DisplayName)
		assert.Len(t, got.Domains, 1)
		return nil
	})
	wrong := *m.Clone()
	wrong.TenantID = other.ID
	require.ErrorIs(t, b.InTx(ctx, func(tx X) error { return tx.UpdateMerchant(ctx, &wrong) }), store.ErrNotFound)
	require.ErrorIs(t, b.InTx(ctx, func(tx X) error { _, err := tx.GetMerchant(ctx, "acct_missing"); return err }), store.ErrNotFound)
}

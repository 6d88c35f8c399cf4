package charging_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/accounts"
	"github.com/perfectpay/perfectpay/authz"
	"github.com/perfectpay/perfectpay/charging"
	"github.com/perfectpay/perfectpay/internal/apierr"
	"github.com/perfectpay/perfectpay/internal/ids"
	"github.com/perfectpay/perfectpay/mandates"
	"github.com/perfectpay/perfectpay/merchants"
	"github.com/perfectpay/perfectpay/payments"
	"github.com/perfectpay/perfectpay/policies"
	"github.com/perfectpay/perfectpay/store"
	"github.com/perfectpay/perfectpay/store/memory"
	"github.com/perfectpay/perfectpay/store/pgtest"
	"github.com/perfectpay/perfectpay/store/postgres"
	"github.com/perfectpay/perfectpay/store/repos"
	"github.com/perfectpay/perfectpay/vault"
)

// groupWorld is chargeWorld on either store: a tenant with an agent, two
// cards, a merchant and the charging service, with an approving
// processor and the real policy.
type groupWorld struct {
	db     store.Runner[repos.Tx]
	pg     *postgres.Store // nil on the memory store
	s      *charging.Service
	v      *vault.Service
	proc   *approver
	tenant string
	agent  string
	merch  string
	cards  []string
}

// eachStore runs f on the memory store and on PostgreSQL.
func eachStore(t *testing.T, f func(t *testing.T, w *groupWorld)) {
	t.Run("memory", func(t *testing.T) {
		m := memory.New()
		t.Cleanup(m.Close)
		f(t, newGroupWorld(t, m, nil, 0))
	})
	t.Run("postgres", func(t *testing.T) {
		pg := pgtest.NewStore(t)
		f(t, newGroupWorld(t, pg, pg, 0))
	})
}

func newGroupWorld[X repos.Tx](t testing.TB, b store.Backend[X], pg *postgres.Store, groupMax int) *groupWorld {
	t.Helper()
	ctx := context.Background()
	w := &groupWorld{db: store.Bind(b, func(x X) repos.Tx { return x }), pg: pg, proc: &approver{calls: map[string]int{}}}
	kek := make([]byte, 32)
	_, _ = rand.Read(kek)
	kr, err := vault.NewKeyring(map[int][]byte{1: kek}, 1, 1)
	require.NoError(t, err)
	w.v = vault.NewService(store.Bind(b, func(x X) vault.Tx { return x }), kr, payments.CardVerifier(w.proc, time.Minute), nil)
	pay := payments.NewService(store.Bind(b, func(x X) payments.Tx { return x }), w.v, w.proc,
		payments.Config{MaxAmount: 1_000_000, Timeout: time.Minute}, nil)
	eng, err := policies.New(ctx, policies.Velocity{})
	require.NoError(t, err)
	w.s = charging.New(store.Bind(b, func(x X) charging.Tx { return x }), pay, eng, charging.Config{PublicURL: "https://pay.example", GroupMax: groupMax}, nil)

	now := time.Now().UTC().Truncate(time.Microsecond)
	tenant := &accounts.Tenant{ID: ids.New("ten"), Name: "Acme", Status: accounts.TenantActive, CreatedAt: now}
	shop := &accounts.Tenant{ID: ids.New("ten"), Name: "Books", Status: accounts.TenantActive, CreatedAt: now}
	w.tenant = tenant.ID
	agent := &authz.Agent{ID: ids.New("agt"), TenantID: w.tenant, Name: "buyer", Status: authz.AgentActive,
		AuthMethod: "client_secret_basic", GrantTypes: []string{"client_credentials"}, CreatedAt: now}
	merchant := &merchants.Merchant{ID: ids.New("acct"), TenantID: shop.ID, DisplayName: "Books",
		MCC: "5942", Country: "US", CreatedAt: now, UpdatedAt: now}
	require.NoError(t, w.db.InTx(ctx, func(tx repos.Tx) error {
		for _, tn := range []*accounts.Tenant{tenant, shop} {
			if err := tx.CreateTenant(ctx, tn); err != nil {
				return err
			}
		}
		if err := tx.CreateAgent(ctx, agent); err != nil {
			return err
		}
		return tx.CreateMerchant(ctx, merchant)
	}))
	for range 2 {
		tok, err := w.v.Tokenize(ctx, w.tenant, false, vault.CardInput{Number: "4242424242424242", ExpMonth: 12,
			ExpYear: time.Now().Year() + 2, CVC: "123", Name: "Ada Lovelace"})
		require.NoError(t, err)
		w.cards = append(w.cards, tok.ID)
	}
	w.agent, w.merch = agent.ID, merchant.ID
	return w
}

// mandate creates an active mandate of the agent with budget, payable
// with both cards.
func (w *groupWorld) mandate(t testing.TB, budget int64) *mandates.Mandate {
	t.Helper()
	now := time.Now().UTC().Truncate(time.Microsecond)
	m := &mandates.Mandate{ID: ids.New("mdt"), TenantID: w.tenant, Payer: "cus_1", Agent: w.agent, Status: mandates.StatusActive,
		Limits:    mandates.Limits{Currency: "USD", Budget: budget, PaymentMethods: w.cards},
		CreatedAt: now, UpdatedAt: now, ApprovedAt: &now}
	require.NoError(t, w.db.InTx(context.Background(), func(tx repos.Tx) error { return tx.CreateMandate(context.Background(), m) }))
	return m
}

// try is one charge request of a group.
type try struct {
	amount int64
	key    string
	card   int
}

type result struct {
	out *charging.Outcome
	err error
}

// inOneGroup makes the charges tries on mandate m so that they run as
// one group, in this order: the first leads and is held, before it takes
// its batch, until each of the others, started one after the other, is
// queued behind it.
func (w *groupWorld) inOneGroup(t *testing.T, m *mandates.Mandate, tries []try) []result {
	t.Helper()
	entered, release := holdFirstLeader(w.s)
	tok := w.token(m.ID)
	out := make([]result, len(tries))
	var wg sync.WaitGroup
	for i, tr := range tries {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, err := w.s.NewRequest(charging.RawRequest{Amount: tr.amount, Currency: "usd", PaymentMethod: w.cards[tr.card],
				MerchantID: w.merch, Capture: true, IdempotencyKey: tr.key})
			if err != nil {
				out[i].err = err
				return
			}
			out[i].out, out[i].err = w.s.Charge(context.Background(), tok, req)
		}()
		if i == 0 {
			<-entered
			continue
		}
		require.Eventually(t, func() bool { return charging.GroupWaiting(w.s, m.ID) == i+1 }, time.Minute, time.Millisecond,
			"charge %d queued behind the leader", i)
	}
	close(release)
	wg.Wait()
	return out
}

func (w *groupWorld) token(mandateID string) *authz.AccessToken {
	return (&chargeWorld{agent: w.agent, tenant: w.tenant}).token(mandateID)
}

// spent is the mandate's spent amount and charge count.
func (w *groupWorld) spent(t *testing.T, m *mandates.Mandate) (int64, int64) {
	t.Helper()
	var got *mandates.Mandate
	require.NoError(t, w.db.InTx(context.Background(), func(tx repos.Tx) error {
		var err error
		got, err = tx.GetMandate(context.Background(), w.tenant, m.ID)
		return err
	}))
	return got.Spent, got.ChargeCount
}

// charges are the mandate's charges, by id, and the ledger rule holds.
func (w *groupWorld) charges(t *testing.T, m *mandates.Mandate) map[string]charging.LedgerCharge {
	t.Helper()
	var snap *charging.LedgerSnapshot
	require.NoError(t, w.db.InTx(context.Background(), func(tx repos.Tx) error {
		var err error
		snap, err = tx.LedgerSnapshot(context.Background(), w.tenant)
		return err
	}))
	assert.Empty(t, charging.CheckLedger(snap), "the ledger rule holds")
	out := map[string]charging.LedgerCharge{}
	for _, c := range snap.Charges {
		if c.MandateID == m.ID {
			out[c.ID] = c
		}
	}
	return out
}

func reasonCode(err error) string {
	var denied *charging.DeniedError
	if errors.As(err, &denied) && len(denied.Decision.Reasons) > 0 {
		return denied.Decision.Reasons[0].Code
	}
	return ""
}

// TestGroupCommitsTheChargesThatFitInArrivalOrder: charges queued on one
// mandate run as one transaction; the one its predecessors left too
// little budget for is refused in the middle of it without undoing the
// others, and a later, smaller one still fits: exactly what running them
// one by one in arrival order gives.
func TestGroupCommitsTheChargesThatFitInArrivalOrder(t *testing.T) {
	eachStore(t, func(t *testing.T, w *groupWorld) {
		m := w.mandate(t, 1000)
		res := w.inOneGroup(t, m, []try{{amount: 400, key: "a"}, {amount: 400, key: "b"}, {amount: 400, key: "c"},
			{amount: 200, key: "d"}, {amount: 100, key: "e"}})

		assert.Equal(t, charging.GroupStats{Transactions: 1, Members: 5}, w.s.GroupStats(), "five charges, one transaction")
		for i, r := range res {
			switch i {
			case 2:
				assert.Equal(t, "budget_exceeded", reasonCode(r.err), "charge %d does not fit", i)
			case 4:
				assert.Equal(t, "mandate_inactive", reasonCode(r.err), "the budget is spent: the mandate is exhausted")
			default:
				require.NoError(t, r.err, "charge %d fits", i)
				assert.Equal(t, payments.StatusSucceeded, r.out.Charge.Status)
			}
		}
		spent, count := w.spent(t, m)
		assert.Equal(t, int64(1000), spent, "the budget spent to the last unit")
		assert.Equal(t, int64(3), count)
		assert.Len(t, w.charges(t, m), 3)
		assert.Equal(t, 3, w.proc.n(payments.OpAuthorize))
	})
}

// TestGroupMemberFailureLeavesTheOthers: in one group, a charge under the
// Idempotency-Key an earlier member just used, and a charge on a card
// token deleted meanwhile, fail alone; the others commit.
func TestGroupMemberFailureLeavesTheOthers(t *testing.T) {
	eachStore(t, func(t *testing.T, w *groupWorld) {
		m := w.mandate(t, 10_000)
		// The request is checked (and the card's policy read) before the
		// card token is deleted.
		_, err := w.v.Delete(context.Background(), w.tenant, w.cards[1])
		require.NoError(t, err)
		res := w.inOneGroup(t, m, []try{{amount: 100, key: "k1"}, {amount: 100, key: "k1"}, {amount: 200, key: "k2", card: 1},
			{amount: 300, key: "k3"}})

		assert.Equal(t, charging.GroupStats{Transactions: 1, Members: 4}, w.s.GroupStats())
		require.NoError(t, res[0].err)
		first := res[0].out.Charge.ID
		// The second is answered with the first's charge: its outcome, or
		// "still in progress" while the first is with the processor.
		var pending *charging.PendingError
		if errors.As(res[1].err, &pending) {
			assert.Equal(t, first, pending.ChargeID)
		} else {
			require.NoError(t, res[1].err)
			assert.Equal(t, first, res[1].out.Charge.ID, "one charge under one key")
		}
		var inv *apierr.Invalid
		require.ErrorAs(t, res[2].err, &inv, "the deleted card token")
		require.NoError(t, res[3].err)

		spent, count := w.spent(t, m)
		assert.Equal(t, int64(400), spent, "the first and the last, once each")
		assert.Equal(t, int64(2), count)
		got := w.charges(t, m)
		assert.Len(t, got, 2)
		assert.Contains(t, got, first)
		assert.Contains(t, got, res[3].out.Charge.ID)
		assert.Equal(t, 2, w.proc.n(payments.OpAuthorize))
	})
}

// TestGroupWhoseCommitFailsChargesEachOnce: a group transaction that
// fails at its end is rolled back whole and its members run again; each
// charge is made exactly once.
func TestGroupWhoseCommitFailsChargesEachOnce(t *testing.T) {
	eachStore(t, func(t *testing.T, w *groupWorld) {
		cases := []struct {
			name string
			// fail makes the group transaction of tx fail at its end.
			fail func(ctx context.Context, tx charging.Tx) error
			// grouped: on PostgreSQL the group ran again and committed
			// (a serialization failure is retried), not its members
			// alone (the memory store retries nothing).
			grouped bool
		}{{
			name: "refused",
			fail: func(ctx context.Context, tx charging.Tx) error {
				if w.pg == nil {
					return errors.New("the commit was refused")
				}
				// Checked at COMMIT: the commit itself fails.
				return w.deferFailure(ctx, tx, "P0001")
			},
		}, {
			name:    "serialization",
			grouped: true,
			fail: func(ctx context.Context, tx charging.Tx) error {
				if w.pg == nil {
					return fmt.Errorf("%w: lost a race", store.ErrSerialization)
				}
				return w.deferFailure(ctx, tx, "40001")
			},
		}}
		if w.pg != nil {
			_, err := w.pg.Pool().Exec(context.Background(), `CREATE TABLE group_commit_fails (code text NOT NULL);
				CREATE FUNCTION group_commit_fails() RETURNS trigger LANGUAGE plpgsql AS
					$$ BEGIN RAISE EXCEPTION 'the commit was refused' USING ERRCODE = NEW.code; END $$;
				CREATE CONSTRAINT TRIGGER group_commit_fails AFTER INSERT ON group_commit_fails
					DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION group_commit_fails()`)
			require.NoError(t, err)
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				m := w.mandate(t, 10_000)
				before := w.s.GroupStats()
				authorized := w.proc.n(payments.OpAuthorize)
				var failed atomic.Int32
				entered, release := make(chan struct{}), make(chan struct{})
				var first atomic.Bool
				charging.SetGroupHooks(w.s, func(string) {
					if first.CompareAndSwap(false, true) {
						close(entered)
						<-release
					}
				}, func(ctx context.Context, tx charging.Tx) error {
					if failed.Add(1) == 1 {
						return tc.fail(ctx, tx)
					}
					return nil
				})
				// inOneGroup with the failing commit hook kept.
				tok := w.token(m.ID)
				res := make([]result, 4)
				var wg sync.WaitGroup
				for i := range res {
					wg.Add(1)
					go func() {
						defer wg.Done()
						req, err := w.s.NewRequest(charging.RawRequest{Amount: 100 * int64(i+1), Currency: "usd",
							PaymentMethod: w.cards[0], MerchantID: w.merch, Capture: true, IdempotencyKey: fmt.Sprintf("k%d", i)})
						if err == nil {
							res[i].out, res[i].err = w.s.Charge(context.Background(), tok, req)
						} else {
							res[i].err = err
						}
					}()
					if i == 0 {
						<-entered
						continue
					}
					require.Eventually(t, func() bool { return charging.GroupWaiting(w.s, m.ID) == i+1 }, time.Minute, time.Millisecond)
				}
				close(release)
				wg.Wait()

				ids := map[string]bool{}
				for i, r := range res {
					require.NoError(t, r.err, "charge %d", i)
					ids[r.out.Charge.ID] = true
				}
				assert.Len(t, ids, 4, "four charges")
				spent, count := w.spent(t, m)
				assert.Equal(t, int64(1000), spent, "each held once")
				assert.Equal(t, int64(4), count)
				got := w.charges(t, m)
				assert.Len(t, got, 4, "none doubled, none lost")
				for id := range ids {
					assert.Contains(t, got, id)
				}
				assert.Equal(t, 4, w.proc.n(payments.OpAuthorize)-authorized)
				after := w.s.GroupStats()
				if tc.grouped && w.pg != nil {
					assert.Equal(t, before.Transactions+1, after.Transactions, "the group ran again and committed")
				} else {
					assert.Equal(t, before, after, "its members committed alone")
				}
			})
		}
	})
}

// deferFailure makes the PostgreSQL transaction tx fail at COMMIT with
// SQLSTATE code (a deferred constraint trigger raises it).
func (w *groupWorld) deferFailure(ctx context.Context, tx charging.Tx, code string) error {
	_, err := tx.(*postgres.Tx).Conn().Exec(ctx, "INSERT INTO group_commit_fails (code) VALUES ($1)", code)
	return err
}

// TestGroupTakesAtMostGroupMax: five charges queued behind a held
// leader, with GroupMax 2, commit in three transactions of two, two and
// one, in arrival order.
func TestGroupTakesAtMostGroupMax(t *testing.T) {
	m := memory.New()
	t.Cleanup(m.Close)
	w := newGroupWorld(t, m, nil, 2)
	md := w.mandate(t, 1000)
	res := w.inOneGroup(t, md, []try{{amount: 300, key: "a"}, {amount: 300, key: "b"}, {amount: 300, key: "c"},
		{amount: 300, key: "d"}, {amount: 100, key: "e"}})
	assert.Equal(t, charging.GroupStats{Transactions: 2, Members: 4}, w.s.GroupStats(), "two groups of two, then one alone")
	for i, r := range res {
		if i == 3 {
			assert.Equal(t, "budget_exceeded", reasonCode(r.err))
			continue
		}
		require.NoError(t, r.err, "charge %d", i)
	}
	spent, count := w.spent(t, md)
	assert.Equal(t, int64(1000), spent)
	assert.Equal(t, int64(4), count)
}

// TestGroupMemberGoneBeforeItsTurn: a charge whose client goes away while
// it waits behind a leader leaves the queue with its context's error and
// is never made; the others still run.
func TestGroupMemberGoneBeforeItsTurn(t *testing.T) {
	eachStore(t, func(t *testing.T, w *groupWorld) {
		m := w.mandate(t, 10_000)
		entered, release := holdFirstLeader(w.s)
		tok := w.token(m.ID)
		charge := func(ctx context.Context, amount int64, key string) (*charging.Outcome, error) {
			req, err := w.s.NewRequest(charging.RawRequest{Amount: amount, Currency: "usd", PaymentMethod: w.cards[0],
				MerchantID: w.merch, Capture: true, IdempotencyKey: key})
			if err != nil {
				return nil, err
			}
			return w.s.Charge(ctx, tok, req)
		}
		res := make([]result, 3)
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		start := func(i int, ctx context.Context, amount int64) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				res[i].out, res[i].err = charge(ctx, amount, fmt.Sprintf("k%d", i))
			}()
		}
		start(0, context.Background(), 100)
		<-entered
		start(1, ctx, 200)
		require.Eventually(t, func() bool { return charging.GroupWaiting(w.s, m.ID) == 2 }, time.Minute, time.Millisecond)
		start(2, context.Background(), 400)
		require.Eventually(t, func() bool { return charging.GroupWaiting(w.s, m.ID) == 3 }, time.Minute, time.Millisecond)
		cancel()
		require.Eventually(t, func() bool { return charging.GroupWaiting(w.s, m.ID) == 2 }, time.Minute, time.Millisecond,
			"the charge whose client left is out of the queue")
		close(release)
		wg.Wait()

		require.NoError(t, res[0].err)
		require.ErrorIs(t, res[1].err, context.Canceled)
		require.NoError(t, res[2].err)
		spent, count := w.spent(t, m)
		assert.Equal(t, int64(500), spent, "the first and the third")
		assert.Equal(t, int64(2), count)
		assert.Len(t, w.charges(t, m), 2)
		assert.Equal(t, charging.GroupStats{Transactions: 1, Members: 2}, w.s.GroupStats())
	})
}

// holdFirstLeader holds the first leader of s's groups, before it takes
// its batch, until release is closed; entered is closed once it is held.
func holdFirstLeader(s *charging.Service) (entered, release chan struct{}) {
	entered, release = make(chan struct{}), make(chan struct{})
	var first atomic.Bool
	charging.SetGroupHooks(s, func(string) {
		if first.CompareAndSwap(false, true) {
			close(entered)
			<-release
		}
	}, nil)
	return entered, release
}

package storetest

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/authz"
	"github.com/perfectpay/perfectpay/charging"
	"github.com/perfectpay/perfectpay/internal/apierr"
	"github.com/perfectpay/perfectpay/internal/ids"
	"github.com/perfectpay/perfectpay/mandates"
	"github.com/perfectpay/perfectpay/merchants"
	"github.com/perfectpay/perfectpay/payments"
	"github.com/perfectpay/perfectpay/policies"
	"github.com/perfectpay/perfectpay/store"
	"github.com/perfectpay/perfectpay/vault"
)

// LedgerReader is a backend transaction that can snapshot the ledger.
type LedgerReader interface {
	LedgerSnapshot(ctx context.Context, tenantID string) (*charging.LedgerSnapshot, error)
}

// AssertLedger sweeps every mandate of b (of the tenant; "" for all) and
// fails t for each whose spent is not what the ledger rule computes from
// its charges and refunds (charging.CheckLedger). Run it when no charge is
// in flight.
func AssertLedger[X LedgerReader](t testing.TB, b store.Runner[X], tenantID string) *charging.LedgerSnapshot {
	t.Helper()
	var snap *charging.LedgerSnapshot
	require.NoError(t, b.InTx(context.Background(), func(tx X) error {
		var err error
		snap, err = tx.LedgerSnapshot(context.Background(), tenantID)
		return err
	}))
	for _, v := range charging.CheckLedger(snap) {
		t.Errorf("ledger rule broken: %s", v)
	}
	return snap
}

// scripted is a processor whose answers a test decides: it approves
// everything except the refunds named in declined (declined) or lost
// (no answer: the refund stays pending).
type scripted struct {
	mu       sync.Mutex
	declined map[int64]bool // refunds of these amounts are declined
	lost     map[int64]bool // refunds of these amounts get no answer
	calls    map[string]int
	// When hold is set, captures and voids report on entered and wait
	// for hold to close.
	hold    chan struct{}
	entered chan string
}

func (p *scripted) wait(op string) {
	p.mu.Lock()
	hold, entered := p.hold, p.entered
	p.mu.Unlock()
	if hold != nil {
		entered <- op
		<-hold
	}
}

func newScripted() *scripted {
	return &scripted{declined: map[int64]bool{}, lost: map[int64]bool{}, calls: map[string]int{}}
}

func (p *scripted) count(op string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls[op]++
}

func (p *scripted) Authorize(_ context.Context, r payments.AuthRequest) (*payments.Result, error) {
	p.count(payments.OpAuthorize)
	return &payments.Result{Approved: true, AuthCode: "A1"}, nil
}

func (p *scripted) Capture(context.Context, string, int64) (*payments.Result, error) {
	p.count(payments.OpCapture)
	p.wait(payments.OpCapture)
	return &payments.Result{Approved: true}, nil
}

func (p *scripted) Void(context.Context, string) (*payments.Result, error) {
	p.count(payments.OpVoid)
	p.wait(payments.OpVoid)
	return &payments.Result{Approved: true}, nil
}

func (p *scripted) Refund(_ context.Context, _, _ string, amount int64) (*payments.Result, error) {
	p.count(payments.OpRefund)
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.lost[amount]:
		return nil, payments.ErrUnavailable
	case p.declined[amount]:
		return &payments.Result{DeclineCode: payments.DeclineProcessingError}, nil
	}
	return &payments.Result{Approved: true}, nil
}

func (p *scripted) Verify(context.Context, *vault.Card) (*payments.Result, error) {
	return &payments.Result{Approved: true, CVCCheck: vault.CVCPass}, nil
}

// interposer commits a change of its own right before the next
// transaction the charging service opens: what another request (say a
// revocation) commits between a charge's decision and its transaction.
type interposer struct {
	store.Runner[charging.Tx]
	mu   sync.Mutex
	next func(ctx context.Context, tx charging.Tx) error
}

func (ip *interposer) InTx(ctx context.Context, fn func(tx charging.Tx) error) error {
	ip.mu.Lock()
	next := ip.next
	ip.next = nil
	ip.mu.Unlock()
	if next != nil {
		if err := ip.Runner.InTx(ctx, func(tx charging.Tx) error { return next(ctx, tx) }); err != nil {
			return err
		}
	}
	return ip.Runner.InTx(ctx, fn)
}

// ledgerWorld is a tenant with an agent, a merchant, a card and the
// charging service on a backend, with a scripted processor.
type ledgerWorld struct {
	ip    *interposer
	pay   *payments.Service
	ch    *charging.Service
	proc  *scripted
	owner payments.Owner
	agent string
	card  string
	merch string
}

func newLedgerWorld[X Tx](t *testing.T, b store.Backend[X]) *ledgerWorld {
	ctx := context.Background()
	proc := newScripted()
	v := vault.NewService(store.Bind(b, func(x X) vault.Tx { return x }), keyring(t, 0, 0, 1), payments.CardVerifier(proc, time.Second), nil)
	pay := payments.NewService(store.Bind(b, func(x X) payments.Tx { return x }), v, proc, payments.Config{
		MaxAmount: 100_000_000, Timeout: time.Minute, Retries: 0, ResolveAfter: time.Nanosecond,
	}, nil)
	eng, err := policies.New(ctx, policies.Velocity{})
	require.NoError(t, err)
	ip := &interposer{Runner: store.Bind(b, func(x X) charging.Tx { return x })}
	w := &ledgerWorld{ip: ip, pay: pay, proc: proc, ch: charging.New(ip, pay, eng, charging.Config{}, nil)}
	tn := MakeTenant(t, b)
	w.owner = payments.Owner{TenantID: tn.ID}
	a := newAgent(tn.ID)
	m := &merchants.Merchant{ID: ids.New("acct"), TenantID: MakeTenant(t, b).ID, DisplayName: "Acme Books", MCC: "5942", Country: "US",
		CreatedAt: now(), UpdatedAt: now()}
	in(t, b, func(tx X) error {
		if err := tx.CreateAgent(ctx, a); err != nil {
			return err
		}
		return tx.CreateMerchant(ctx, m)
	})
	tok, err := v.Tokenize(ctx, tn.ID, false, testCard("4242424242424242"))
	require.NoError(t, err)
	w.agent, w.card, w.merch = a.ID, tok.ID, m.ID
	return w
}

// mandate creates an active mandate of the world's agent (a child of
// parent when parent is not nil).
func (w *ledgerWorld) mandate(t *testing.T, b interface {
	InTx(ctx context.Context, fn func(tx mandates.Repo) error) error
}, budget int64, parent *mandates.Mandate) *mandates.Mandate {
	m := newMandate(w.owner.TenantID, budget)
	m.Agent, m.Limits.PaymentMethods, m.Limits.AllowedMerchants = w.agent, []string{w.card}, []string{w.merch}
	if parent != nil {
		m.ParentID, m.Depth = parent.ID, parent.Depth+1
	}
	require.NoError(t, b.InTx(context.Background(), func(tx mandates.Repo) error { return tx.CreateMandate(context.Background(), m) }))
	return m
}

func (w *ledgerWorld) token(mandateID string) *authz.AccessToken {
	details, _ := json.Marshal([]map[string]any{{"type": mandates.AuthorizationDetailsType, "mandate_id": mandateID}})
	return &authz.AccessToken{Subject: w.agent, ClientID: w.agent, TenantID: w.owner.TenantID, JTI: ids.New("jti"),
		AuthorizationDetails: details}
}

func (w *ledgerWorld) charge(t *testing.T, tok *authz.AccessToken, amount int64, key string) (*charging.Outcome, error) {
	return w.chargeCapture(t, tok, amount, key, true)
}

func (w *ledgerWorld) chargeCapture(t *testing.T, tok *authz.AccessToken, amount int64, key string, capture bool) (*charging.Outcome, error) {
	req, err := w.ch.NewRequest(charging.RawRequest{Amount: amount, Currency: "USD", PaymentMethod: w.card,
		MerchantID: w.merch, Capture: capture, IdempotencyKey: key})
	require.NoError(t, err)
	return w.ch.Charge(context.Background(), tok, req)
}

func (w *ledgerWorld) refund(t *testing.T, chargeID string, amount int64) *payments.Refund {
	r, err := w.ch.Refund(context.Background(), payments.RefundParams{Owner: w.owner, ChargeID: chargeID, Amount: &amount})
	require.NoError(t, err)
	return r
}

func spentOf[X Tx](t *testing.T, b store.Backend[X], m *mandates.Mandate) int64 {
	t.Helper()
	return get(t, b, m).Spent
}

// testLedgerRefunds: a refund gives budget back only when it succeeds; a
// failed or lost one never does, whatever its siblings do.
func testLedgerRefunds[X Tx](t *testing.T, b store.Backend[X]) {
	ctx := context.Background()
	w := newLedgerWorld(t, b)
	mb := store.Bind(b, func(x X) mandates.Repo { return x })
	m := w.mandate(t, mb, 5000, nil)
	tok := w.token(m.ID)
	out, err := w.charge(t, tok, 5000, "k1")
	require.NoError(t, err)
	require.Equal(t, payments.StatusSucceeded, out.Charge.Status)
	assert.Equal(t, mandates.StatusExhausted, get(t, b, m).Status)

	// Two refunds of 10.00 at once: one's answer is lost (it stays
	// pending), the other succeeds; then the lost one is declined.
	w.proc.lost[1000] = true
	pending := w.refund(t, out.Charge.ID, 1000)
	require.Equal(t, payments.RefundPending, pending.Status)
	assert.Equal(t, int64(5000), spentOf(t, b, m), "a pending refund gives nothing back")
	ok := w.refund(t, out.Charge.ID, 1001)
	require.Equal(t, payments.RefundSucceeded, ok.Status)
	assert.Equal(t, int64(5000-1001), spentOf(t, b, m), "a sibling's success gives back only its own amount")
	AssertLedger(t, store.Bind(b, func(x X) LedgerReader { return x }), w.owner.TenantID)

	w.proc.mu.Lock()
	delete(w.proc.lost, 1000)
	w.proc.declined[1000] = true
	w.proc.mu.Unlock()
	_, err = w.ch.Resolve(ctx, 10)
	require.NoError(t, err)
	got, err := w.pay.GetRefund(ctx, w.owner, pending.ID)
	require.NoError(t, err)
	require.Equal(t, payments.RefundFailed, got.Status)
	assert.Equal(t, int64(5000-1001), spentOf(t, b, m), "a failed refund gives nothing back")
	AssertLedger(t, store.Bind(b, func(x X) LedgerReader { return x }), w.owner.TenantID)

	// The budget left is exactly what the succeeded refund gave back.
	_, err = w.charge(t, tok, 1002, "k2")
	var denied *charging.DeniedError
	require.ErrorAs(t, err, &denied, "captured − succeeded refunds + this charge would pass the budget")
	_, err = w.charge(t, tok, 1001, "k3")
	require.NoError(t, err)
	assert.Equal(t, int64(5000), spentOf(t, b, m))

	// Many concurrent refunds on a child mandate's charge, a third of them
	// failing and a third lost: the ledger holds on the child and its parent.
	parent := w.mandate(t, mb, 10_000, nil)
	child := w.mandate(t, mb, 6000, parent)
	ctok := w.token(child.ID)
	big, err := w.charge(t, ctok, 6000, "k4")
	require.NoError(t, err)
	w.proc.mu.Lock()
	for i := range int64(30) {
		switch i % 3 {
		case 1:
			w.proc.declined[100+i] = true
		case 2:
			w.proc.lost[100+i] = true
		}
	}
	w.proc.mu.Unlock()
	var wg sync.WaitGroup
	for i := range int64(30) {
		wg.Go(func() {
			amt := 100 + i
			_, err := w.ch.Refund(ctx, payments.RefundParams{Owner: w.owner, ChargeID: big.Charge.ID, Amount: &amt})
			assert.NoError(t, err, fmt.Sprint(amt))
		})
	}
	wg.Wait()
	var back int64
	for i := range int64(30) {
		if i%3 == 0 {
			back += 100 + i
		}
	}
	assert.Equal(t, 6000-back, spentOf(t, b, child))
	assert.Equal(t, 6000-back, spentOf(t, b, parent))
	AssertLedger(t, store.Bind(b, func(x X) LedgerReader { return x }), w.owner.TenantID)
}

// testLedgerClaims: a capture and a void racing on one authorization never
// both reach the processor: the first takes the charge's claim (committed
// before its processor call) and the other is refused with ErrChargeBusy.
func testLedgerClaims[X Tx](t *testing.T, b store.Backend[X]) {
	ctx := context.Background()
	w := newLedgerWorld(t, b)
	m := w.mandate(t, store.Bind(b, func(x X) mandates.Repo { return x }), 10_000, nil)
	tok := w.token(m.ID)
	for _, first := range []string{payments.OpCapture, payments.OpVoid} {
		out, err := w.chargeCapture(t, tok, 3000, ids.New("k"), false)
		require.NoError(t, err)
		require.Equal(t, payments.StatusRequiresCapture, out.Charge.Status)
		id := out.Charge.ID
		run := func(op string) (*payments.Charge, error) {
			if op == payments.OpCapture {
				amt := int64(2000)
				return w.ch.Capture(ctx, w.owner, id, &amt)
			}
			return w.ch.Void(ctx, w.owner, id)
		}
		second := payments.OpVoid
		if first == payments.OpVoid {
			second = payments.OpCapture
		}
		w.proc.mu.Lock()
		w.proc.hold, w.proc.entered = make(chan struct{}), make(chan string, 2)
		before := map[string]int{payments.OpCapture: w.proc.calls[payments.OpCapture], payments.OpVoid: w.proc.calls[payments.OpVoid]}
		hold, entered := w.proc.hold, w.proc.entered
		w.proc.mu.Unlock()

		firstDone := make(chan error, 1)
		go func() { _, err := run(first); firstDone <- err }()
		require.Equal(t, first, <-entered, "the first operation reached the processor")
		secondDone := make(chan error, 1)
		go func() { _, err := run(second); secondDone <- err }()
		select {
		case err := <-secondDone:
			require.ErrorIs(t, err, payments.ErrChargeBusy, "the racing %s is refused", second)
		case op := <-entered:
			t.Errorf("%s reached the processor while %s was under way", op, first)
		}
		close(hold)
		require.NoError(t, <-firstDone)
		w.proc.mu.Lock()
		w.proc.hold = nil
		assert.Equal(t, before[first]+1, w.proc.calls[first])
		assert.Equal(t, before[second], w.proc.calls[second], "exactly one operation reached the processor")
		w.proc.mu.Unlock()

		c, err := w.pay.Get(ctx, w.owner, id)
		require.NoError(t, err)
		if first == payments.OpCapture {
			assert.Equal(t, payments.StatusSucceeded, c.Status)
			assert.Equal(t, int64(2000), c.AmountCaptured)
		} else {
			assert.Equal(t, payments.StatusCanceled, c.Status)
		}
		// The claim is gone with the operation: the charge's state now
		// answers (already captured / not capturable), not "busy".
		_, err = run(second)
		var pe *apierr.Invalid
		require.ErrorAs(t, err, &pe)
	}
	assert.Equal(t, int64(2000), spentOf(t, b, m), "the capture holds what it captured, the void nothing")
	AssertLedger(t, store.Bind(b, func(x X) LedgerReader { return x }), w.owner.TenantID)
}

// testRevokedBetweenVerificationAndReservation: a token, mandate, agent or
// tenant revoked after the charge was decided (allowed) but before its
// transaction is refused there, naming what was revoked; nothing is
// charged or reserved.
func testRevokedBetweenVerificationAndReservation[X Tx](t *testing.T, b store.Backend[X]) {
	w := newLedgerWorld(t, b)
	mb := store.Bind(b, func(x X) mandates.Repo { return x })
	revoke := func(kind, id string) func(ctx context.Context, tx charging.Tx) error {
		return func(ctx context.Context, tx charging.Tx) error {
			return tx.Revoke(ctx, &authz.Revocation{Kind: kind, ID: id, TenantID: w.owner.TenantID, Reason: "revoked", RevokedAt: now()})
		}
	}
	for _, tc := range []struct {
		what   string
		revoke func(m *mandates.Mandate, tok *authz.AccessToken) func(ctx context.Context, tx charging.Tx) error
	}{
		{authz.RevokedToken, func(_ *mandates.Mandate, tok *authz.AccessToken) func(ctx context.Context, tx charging.Tx) error {
			return revoke(authz.RevokedToken, tok.JTI)
		}},
		{"mandate", func(m *mandates.Mandate, _ *authz.AccessToken) func(ctx context.Context, tx charging.Tx) error {
			return func(ctx context.Context, tx charging.Tx) error {
				_, err := tx.RevokeMandateTree(ctx, m.TenantID, m.ID, now())
				return err
			}
		}},
		{authz.RevokedAgent, func(*mandates.Mandate, *authz.AccessToken) func(ctx context.Context, tx charging.Tx) error {
			return revoke(authz.RevokedAgent, w.agent)
		}},
		{authz.RevokedTenant, func(*mandates.Mandate, *authz.AccessToken) func(ctx context.Context, tx charging.Tx) error {
			return revoke(authz.RevokedTenant, w.owner.TenantID)
		}},
	} {
		m := w.mandate(t, mb, 10_000, nil)
		tok := w.token(m.ID)
		w.ip.mu.Lock()
		w.ip.next = tc.revoke(m, tok)
		w.ip.mu.Unlock()
		_, err := w.charge(t, tok, 500, ids.New("k"))
		var rev *charging.RevokedError
		require.ErrorAs(t, err, &rev, tc.what)
		assert.Equal(t, tc.what, rev.What)
		assert.Equal(t, tc.what+"_revoked", rev.Code())
		assert.Zero(t, spentOf(t, b, m), "%s: nothing reserved", tc.what)
		snap := AssertLedger(t, store.Bind(b, func(x X) LedgerReader { return x }), w.owner.TenantID)
		for _, c := range snap.Charges {
			assert.NotEqual(t, m.ID, c.MandateID, "%s: no charge made", tc.what)
		}
	}
}

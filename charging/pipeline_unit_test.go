package charging_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/authz"
	"github.com/perfectpay/perfectpay/charging"
	"github.com/perfectpay/perfectpay/internal/ids"
	"github.com/perfectpay/perfectpay/mandates"
	"github.com/perfectpay/perfectpay/merchants"
	"github.com/perfectpay/perfectpay/payments"
	"github.com/perfectpay/perfectpay/policies"
	"github.com/perfectpay/perfectpay/store"
	"github.com/perfectpay/perfectpay/store/memory"
	"github.com/perfectpay/perfectpay/store/storetest"
	"github.com/perfectpay/perfectpay/vault"
)

// approver is a processor that approves everything and counts its calls.
type approver struct {
	mu    sync.Mutex
	calls map[string]int
}

func (p *approver) count(op string) *payments.Result {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls[op]++
	return &payments.Result{Approved: true, AuthCode: "A1"}
}

func (p *approver) n(op string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.calls[op]
}

func (p *approver) Authorize(context.Context, payments.AuthRequest) (*payments.Result, error) {
	return p.count(payments.OpAuthorize), nil
}

func (p *approver) Capture(context.Context, string, int64) (*payments.Result, error) {
	return p.count(payments.OpCapture), nil
}

func (p *approver) Void(context.Context, string) (*payments.Result, error) {
	return p.count(payments.OpVoid), nil
}

func (p *approver) Refund(context.Context, string, string, int64) (*payments.Result, error) {
	return p.count(payments.OpRefund), nil
}

func (p *approver) Verify(context.Context, *vault.Card) (*payments.Result, error) {
	r := p.count("verify")
	r.CVCCheck = vault.CVCPass
	return r, nil
}

// chargeWorld is a tenant with an agent, a card, a merchant and the
// charging service on the memory store, with an approving processor and
// the real policy.
type chargeWorld struct {
	b      store.Backend[*memory.Tx]
	s      *charging.Service
	proc   *approver
	owner  payments.Owner
	agent  string
	card   string
	merch  string
	tenant string
}

func newChargeWorld(t *testing.T) *chargeWorld {
	t.Helper()
	ctx := context.Background()
	m := memory.New()
	t.Cleanup(m.Close)
	w := &chargeWorld{b: m, proc: &approver{calls: map[string]int{}}}
	kek := make([]byte, 32)
	_, _ = rand.Read(kek)
	kr, err := vault.NewKeyring(map[int][]byte{1: kek}, 1, 1)
	require.NoError(t, err)
	v := vault.NewService(store.Bind(m, func(x *memory.Tx) vault.Tx { return x }), kr, payments.CardVerifier(w.proc, time.Minute), nil)
	pay := payments.NewService(store.Bind(m, func(x *memory.Tx) payments.Tx { return x }), v, w.proc,
		payments.Config{MaxAmount: 1_000_000, Timeout: time.Minute}, nil)
	eng, err := policies.New(ctx, policies.Velocity{})
	require.NoError(t, err)
	w.s = charging.New(store.Bind(m, func(x *memory.Tx) charging.Tx { return x }), pay, eng, charging.Config{PublicURL: "https://pay.example"}, nil)

	w.tenant = storetest.MakeTenant(t, m).ID
	w.owner = payments.Owner{TenantID: w.tenant}
	now := time.Now().UTC().Truncate(time.Microsecond)
	agent := &authz.Agent{ID: ids.New("agt"), TenantID: w.tenant, Name: "buyer", Status: authz.AgentActive,
		AuthMethod: "client_secret_basic", GrantTypes: []string{"client_credentials"}, CreatedAt: now}
	merchant := &merchants.Merchant{ID: ids.New("acct"), TenantID: storetest.MakeTenant(t, m).ID, DisplayName: "Books",
		MCC: "5942", Country: "US", CreatedAt: now, UpdatedAt: now}
	require.NoError(t, m.InTx(ctx, func(tx *memory.Tx) error {
		if err := tx.CreateAgent(ctx, agent); err != nil {
			return err
		}
		return tx.CreateMerchant(ctx, merchant)
	}))
	tok, err := v.Tokenize(ctx, w.tenant, false, vault.CardInput{Number: "4242424242424242", ExpMonth: 12,
		ExpYear: time.Now().Year() + 2, CVC: "123", Name: "Ada Lovelace"})
	require.NoError(t, err)
	w.agent, w.card, w.merch = agent.ID, tok.ID, merchant.ID
	return w
}

// mandate creates an active mandate of the world's agent with budget;
// edit changes its limits first.
func (w *chargeWorld) mandate(t *testing.T, budget int64, edit func(l *mandates.Limits)) *mandates.Mandate {
	t.Helper()
	now := time.Now().UTC().Truncate(time.Microsecond)
	m := &mandates.Mandate{ID: ids.New("mdt"), TenantID: w.tenant, Payer: "cus_1", Agent: w.agent, Status: mandates.StatusActive,
		Limits:    mandates.Limits{Currency: "USD", Budget: budget, PaymentMethods: []string{w.card}},
		CreatedAt: now, UpdatedAt: now, ApprovedAt: &now}
	if edit != nil {
		edit(&m.Limits)
	}
	require.NoError(t, w.b.InTx(context.Background(), func(tx *memory.Tx) error { return tx.CreateMandate(context.Background(), m) }))
	return m
}

func (w *chargeWorld) spent(t *testing.T, m *mandates.Mandate) int64 {
	t.Helper()
	var got *mandates.Mandate
	require.NoError(t, w.b.InTx(context.Background(), func(tx *memory.Tx) error {
		var err error
		got, err = tx.GetMandate(context.Background(), w.tenant, m.ID)
		return err
	}))
	return got.Spent
}

func (w *chargeWorld) token(mandateID string) *authz.AccessToken {
	details, _ := json.Marshal([]map[string]any{{"type": mandates.AuthorizationDetailsType, "mandate_id": mandateID}})
	return &authz.AccessToken{Subject: w.agent, ClientID: w.agent, TenantID: w.tenant, JTI: ids.New("jti"), AuthorizationDetails: details}
}

func (w *chargeWorld) charge(t *testing.T, tok *authz.AccessToken, amount int64, key string, capture bool) (*charging.Outcome, error) {
	t.Helper()
	req, err := w.s.NewRequest(charging.RawRequest{Amount: amount, Currency: "usd", PaymentMethod: w.card,
		MerchantID: w.merch, Capture: capture, IdempotencyKey: key})
	require.NoError(t, err)
	return w.s.Charge(context.Background(), tok, req)
}

func (w *chargeWorld) ledgerHolds(t *testing.T) {
	t.Helper()
	var snap *charging.LedgerSnapshot
	require.NoError(t, w.b.InTx(context.Background(), func(tx *memory.Tx) error {
		var err error
		snap, err = tx.LedgerSnapshot(context.Background(), w.tenant)
		return err
	}))
	assert.Empty(t, charging.CheckLedger(snap), "the ledger rule holds")
}

func TestChargeAllowedOnceUnderAKey(t *testing.T) {
	w := newChargeWorld(t)
	m := w.mandate(t, 5000, nil)
	tok := w.token(m.ID)

	out, err := w.charge(t, tok, 1200, "k1", true)
	require.NoError(t, err)
	assert.Equal(t, payments.StatusSucceeded, out.Charge.Status)
	assert.Equal(t, policies.Allow, out.Decision.Result)
	assert.Equal(t, out.Charge.ID, out.Decision.ChargeID)
	assert.Equal(t, int64(1200), w.spent(t, m))

	again, err := w.charge(t, tok, 1200, "k1", true)
	require.NoError(t, err, "a retry gets the outcome of the charge made under its key")
	assert.Equal(t, out.Charge.ID, again.Charge.ID)
	assert.Equal(t, 1, w.proc.n(payments.OpAuthorize), "the processor was asked once")
	assert.Equal(t, int64(1200), w.spent(t, m), "and the budget moved once")

	_, err = w.charge(t, tok, 1300, "k1", true)
	var mm *charging.MismatchError
	require.ErrorAs(t, err, &mm, "the same key for another request")
	assert.Equal(t, out.Charge.ID, mm.ChargeID)
	w.ledgerHolds(t)
}

func TestChargeDeniedWithReasons(t *testing.T) {
	w := newChargeWorld(t)
	m := w.mandate(t, 1000, func(l *mandates.Limits) { per := int64(600); l.MaxAmountPerCharge = &per })

	_, err := w.charge(t, w.token(m.ID), 700, "k1", true)
	var denied *charging.DeniedError
	require.ErrorAs(t, err, &denied)
	codes := []string{}
	for _, r := range denied.Decision.Reasons {
		codes = append(codes, r.Code)
	}
	assert.Contains(t, codes, "per_charge_cap_exceeded")
	assert.Equal(t, policies.Deny, denied.Decision.Result)
	assert.Zero(t, w.spent(t, m), "a denial holds nothing")
	assert.Zero(t, w.proc.n(payments.OpAuthorize), "a denial never reaches the processor")

	_, err = w.charge(t, w.token(m.ID), 600, "k2", true)
	require.NoError(t, err)
	_, err = w.charge(t, w.token(m.ID), 500, "k3", true)
	require.ErrorAs(t, err, &denied)
	codes = codes[:0]
	for _, r := range denied.Decision.Reasons {
		codes = append(codes, r.Code)
	}
	assert.Contains(t, codes, "budget_exceeded")
	assert.Equal(t, int64(600), w.spent(t, m))
	w.ledgerHolds(t)
}

func TestChargeOnARevokedMandate(t *testing.T) {
	ctx := context.Background()
	w := newChargeWorld(t)
	m := w.mandate(t, 1000, nil)
	require.NoError(t, w.b.InTx(ctx, func(tx *memory.Tx) error {
		_, err := tx.RevokeMandateTree(ctx, w.tenant, m.ID, time.Now())
		return err
	}))
	_, err := w.charge(t, w.token(m.ID), 100, "k1", true)
	var rev *charging.RevokedError
	require.ErrorAs(t, err, &rev)
	assert.Equal(t, "mandate_revoked", rev.Code())
	assert.Equal(t, m.ID, rev.ID)
	assert.Zero(t, w.proc.n(payments.OpAuthorize))
}

func TestChargeAboveTheThresholdAsksForApproval(t *testing.T) {
	ctx := context.Background()
	w := newChargeWorld(t)
	m := w.mandate(t, 5000, func(l *mandates.Limits) { th := int64(1000); l.ApprovalThreshold = &th })
	tok := w.token(m.ID)

	_, err := w.charge(t, tok, 1500, "k1", true)
	var ar *charging.ApprovalRequiredError
	require.ErrorAs(t, err, &ar)
	require.NotNil(t, ar.Approval)
	assert.Equal(t, charging.ApprovalPending, ar.Approval.Status)
	assert.Equal(t, int64(1500), ar.Approval.Amount)
	assert.Equal(t, "https://pay.example/approvals/"+ar.Approval.ID, ar.Approval.URL)
	assert.Zero(t, w.spent(t, m), "nothing is held while a human decides")

	_, err = w.s.ResolveApproval(ctx, w.tenant, ar.Approval.ID, true, "user_1")
	require.NoError(t, err)
	req, err := w.s.NewRequest(charging.RawRequest{Amount: 1500, Currency: "usd", PaymentMethod: w.card,
		MerchantID: w.merch, Capture: true, IdempotencyKey: "k1", ApprovalID: ar.Approval.ID})
	require.NoError(t, err)
	out, err := w.s.Charge(ctx, tok, req)
	require.NoError(t, err, "the approved request goes through")
	assert.Equal(t, payments.StatusSucceeded, out.Charge.Status)
	assert.Equal(t, int64(1500), w.spent(t, m))

	a, err := w.s.GetApproval(ctx, w.tenant, ar.Approval.ID)
	require.NoError(t, err)
	assert.Equal(t, charging.ApprovalUsed, a.Status, "an approval is used once")
	w.ledgerHolds(t)
}

func TestCaptureVoidAndRefundMoveTheHold(t *testing.T) {
	ctx := context.Background()
	w := newChargeWorld(t)
	m := w.mandate(t, 10_000, nil)
	tok := w.token(m.ID)

	auth, err := w.charge(t, tok, 1000, "k1", false)
	require.NoError(t, err)
	require.Equal(t, payments.StatusRequiresCapture, auth.Charge.Status)
	assert.Equal(t, int64(1000), w.spent(t, m), "an authorization holds its amount")

	part := int64(600)
	c, err := w.s.Capture(ctx, w.owner, auth.Charge.ID, &part)
	require.NoError(t, err)
	assert.Equal(t, payments.StatusSucceeded, c.Status)
	assert.Equal(t, int64(600), w.spent(t, m), "a partial capture gives the rest back")
	w.ledgerHolds(t)

	other, err := w.charge(t, tok, 2000, "k2", false)
	require.NoError(t, err)
	assert.Equal(t, int64(2600), w.spent(t, m))
	_, err = w.s.Void(ctx, w.owner, other.Charge.ID)
	require.NoError(t, err)
	assert.Equal(t, int64(600), w.spent(t, m), "a void gives everything back")
	w.ledgerHolds(t)

	amount := int64(250)
	r, err := w.s.Refund(ctx, payments.RefundParams{Owner: w.owner, ChargeID: auth.Charge.ID, Amount: &amount})
	require.NoError(t, err)
	assert.Equal(t, payments.RefundSucceeded, r.Status)
	assert.Equal(t, int64(350), w.spent(t, m), "a succeeded refund gives its amount back")
	w.ledgerHolds(t)
}

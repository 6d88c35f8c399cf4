package mandates_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/accounts"
	"github.com/perfectpay/perfectpay/authz"
	"github.com/perfectpay/perfectpay/internal/apierr"
	"github.com/perfectpay/perfectpay/mandates"
	"github.com/perfectpay/perfectpay/store"
	"github.com/perfectpay/perfectpay/store/memory"
	"github.com/perfectpay/perfectpay/vault"
)

func setup(t *testing.T) (*mandates.Service, *memory.Store, string) {
	m := memory.New()
	tenant := &accounts.Tenant{ID: "ten_1", Name: "T", Status: accounts.TenantActive, CreatedAt: time.Now()}
	require.NoError(t, m.InTx(context.Background(), func(tx *memory.Tx) error { return tx.CreateTenant(context.Background(), tenant) }))
	// The agent and the card terms() names exist in the tenant.
	ctx := context.Background()
	kr, err := vault.NewKeyring(map[int][]byte{1: vault.GenerateKey()}, 1, 1)
	require.NoError(t, err)
	v := vault.NewService(store.Bind(m, func(x *memory.Tx) vault.Tx { return x }), kr, nil, nil)
	card, err := v.Tokenize(ctx, tenant.ID, false, vault.CardInput{Number: "4242424242424242", ExpMonth: 12, ExpYear: time.Now().Year() + 2, CVC: "123"})
	require.NoError(t, err)
	require.NoError(t, m.InTx(ctx, func(tx *memory.Tx) error {
		tok := *card
		tok.ID = "tok_a"
		if err := tx.CreateToken(ctx, &tok); err != nil {
			return err
		}
		return tx.CreateAgent(ctx, &authz.Agent{ID: "agt_1", TenantID: tenant.ID, Name: "bot", Status: authz.AgentActive,
			AuthMethod: authz.AuthClientSecretBasic, CreatedAt: time.Now(), UpdatedAt: time.Now()})
	}))
	return mandates.NewService(store.Bind(m, func(x *memory.Tx) mandates.Tx { return x }), mandates.Config{MaxDepth: 2}), m, tenant.ID
}

func terms(payer string, budget int64) *mandates.Mandate {
	return &mandates.Mandate{Payer: payer, Agent: "agt_1", Limits: mandates.Limits{Currency: "USD", Budget: budget, PaymentMethods: []string{"tok_a"}}}
}

type fakeSigner struct{ got []byte }

func (f *fakeSigner) SignMandate(_ context.Context, payload []byte) (string, error) {
	f.got = payload
	return "header.payload.sig", nil
}

func TestServiceLifecycle(t *testing.T) {
	ctx := context.Background()
	s, _, tenant := setup(t)

	m, err := s.Create(ctx, tenant, terms("cus_1", 1000))
	require.NoError(t, err)
	assert.Equal(t, mandates.StatusPendingApproval, m.Status)
	assert.Nil(t, m.ApprovedAt)

	// A pending mandate cannot be sub-delegated, suspended or resumed.
	child := terms("cus_1", 100)
	child.ParentID = m.ID
	_, err = s.Create(ctx, tenant, child)
	var fe *apierr.Invalid
	require.ErrorAs(t, err, &fe)
	assert.Equal(t, "parent_id", fe.Param)
	_, err = s.Suspend(ctx, tenant, m.ID)
	var se *apierr.Conflict
	require.ErrorAs(t, err, &se)
	assert.Equal(t, apierr.Code("mandate_"+mandates.StatusPendingApproval), se.Code)

	m, err = s.Approve(ctx, tenant, m.ID)
	require.NoError(t, err)
	assert.Equal(t, mandates.StatusActive, m.Status)
	assert.NotNil(t, m.ApprovedAt)
	_, err = s.Approve(ctx, tenant, m.ID)
	require.ErrorAs(t, err, &se, "approving twice")

	// Children up to the maximum depth, each narrower.
	parent := m
	for depth := 1; depth <= 2; depth++ {
		c := terms("cus_1", 100)
		c.ParentID = parent.ID
		parent, err = s.Create(ctx, tenant, c)
		require.NoError(t, err)
		assert.Equal(t, depth, parent.Depth)
		assert.Equal(t, mandates.StatusActive, parent.Status)
	}
	tooDeep := terms("cus_1", 10)
	tooDeep.ParentID = parent.ID
	_, err = s.Create(ctx, tenant, tooDeep)
	require.ErrorAs(t, err, &fe)
	assert.Contains(t, fe.Message, "depth 3 exceeds the maximum of 2")
	otherPayer := terms("cus_2", 10)
	otherPayer.ParentID = m.ID
	_, err = s.Create(ctx, tenant, otherPayer)
	require.ErrorAs(t, err, &fe)
	assert.Equal(t, "payer", fe.Param)

	chain, err := s.Chain(ctx, tenant, parent.ID)
	require.NoError(t, err)
	require.Len(t, chain, 3)
	assert.Equal(t, m.ID, chain[0].ID)

	got, revoked, err := s.Revoke(ctx, tenant, m.ID)
	require.NoError(t, err)
	assert.Equal(t, mandates.StatusRevoked, got.Status)
	assert.Len(t, revoked, 3)
	evs, _, err := s.Events(ctx, mandates.EventFilter{TenantID: tenant, MandateID: parent.ID, Limit: 10})
	require.NoError(t, err)
	require.Len(t, evs, 2)
	assert.Equal(t, mandates.EventRevoked, evs[1].Type)
	assert.JSONEq(t, `{"status":"revoked","cascade_from":"`+m.ID+`"}`, string(evs[1].Data))

	_, _, err = s.Events(ctx, mandates.EventFilter{TenantID: "ten_other", MandateID: m.ID, Limit: 10})
	require.ErrorIs(t, err, store.ErrNotFound)
}

func TestServiceSelfPayerAndExpiry(t *testing.T) {
	ctx := context.Background()
	s, _, tenant := setup(t)
	soon := time.Now().Add(50 * time.Millisecond)
	self := terms(mandates.PayerSelf, 500)
	self.ValidUntil = &soon
	m, err := s.Create(ctx, tenant, self)
	require.NoError(t, err)
	assert.Equal(t, tenant, m.Payer)
	assert.Equal(t, mandates.StatusActive, m.Status)
	n, err := s.ExpireDue(ctx)
	require.NoError(t, err)
	assert.Zero(t, n)
	time.Sleep(60 * time.Millisecond)
	n, err = s.ExpireDue(ctx)
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	m, err = s.Get(ctx, tenant, m.ID)
	require.NoError(t, err)
	assert.Equal(t, mandates.StatusExpired, m.Status)
	_, err = s.Resume(ctx, tenant, m.ID)
	var se *apierr.Conflict
	require.ErrorAs(t, err, &se)
	assert.Equal(t, apierr.Code("mandate_"+mandates.StatusExpired), se.Code)
}

func TestServiceResumeExhausted(t *testing.T) {
	ctx := context.Background()
	s, st, tenant := setup(t)
	m, err := s.Create(ctx, tenant, terms(mandates.PayerSelf, 100))
	require.NoError(t, err)
	require.NoError(t, st.InTx(ctx, func(tx *memory.Tx) error {
		_, err := tx.Reserve(ctx, []string{m.ID}, 100, time.Now())
		return err
	}))
	m, err = s.Suspend(ctx, tenant, m.ID)
	require.NoError(t, err, "an exhausted mandate can be suspended")
	m, err = s.Resume(ctx, tenant, m.ID)
	require.NoError(t, err)
	assert.Equal(t, mandates.StatusExhausted, m.Status, "resuming does not revive a used-up mandate")
}

func TestServiceSigned(t *testing.T) {
	ctx := context.Background()
	s, _, tenant := setup(t)
	m, err := s.Create(ctx, tenant, terms(mandates.PayerSelf, 100))
	require.NoError(t, err)
	_, _, err = s.Signed(ctx, nil, tenant, m.ID)
	require.True(t, errors.Is(err, mandates.ErrNoSigner))
	f := &fakeSigner{}
	jws, got, err := s.Signed(ctx, f, tenant, m.ID)
	require.NoError(t, err)
	assert.Equal(t, "header.payload.sig", jws)
	want, err := got.Canonical()
	require.NoError(t, err)
	assert.Equal(t, want, f.got, "the signer gets the canonical JSON")
}

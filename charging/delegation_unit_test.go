package charging_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/authz"
	"github.com/perfectpay/perfectpay/charging"
	"github.com/perfectpay/perfectpay/internal/ids"
	"github.com/perfectpay/perfectpay/mandates"
	"github.com/perfectpay/perfectpay/store"
	"github.com/perfectpay/perfectpay/store/memory"
	"github.com/perfectpay/perfectpay/store/storetest"
)

// delegation is a tenant with one root mandate granted to agt_a (budget
// 100.00, 40.00 spent), on the memory store: the delegation rules are the
// point, the conformance suite covers both stores.
type delegation struct {
	s      *charging.Service
	dt     authz.DetailType
	b      store.Backend[*memory.Tx]
	tenant string
	root   *mandates.Mandate
}

func newDelegation(t *testing.T) *delegation {
	t.Helper()
	m := memory.New()
	t.Cleanup(m.Close)
	d := &delegation{b: m}
	d.s = charging.New(store.Bind(m, func(x *memory.Tx) charging.Tx { return x }), nil, nil, charging.Config{MaxDepth: 2}, nil)
	d.dt = d.s.DetailType()
	d.tenant = storetest.MakeTenant(t, m).ID
	now := time.Now().UTC().Truncate(time.Microsecond)
	d.root = &mandates.Mandate{
		ID: ids.New("mdt"), TenantID: d.tenant, Payer: "cus_1", Agent: "agt_a", Status: mandates.StatusActive,
		Limits:    mandates.Limits{Currency: "USD", Budget: 10_000, PaymentMethods: []string{"tok_a", "tok_b"}},
		Spent:     4000,
		CreatedAt: now, UpdatedAt: now, ApprovedAt: &now,
	}
	d.create(t, d.root)
	return d
}

func (d *delegation) create(t *testing.T, ms ...*mandates.Mandate) {
	t.Helper()
	require.NoError(t, d.b.InTx(context.Background(), func(tx *memory.Tx) error {
		for _, m := range ms {
			if err := tx.CreateMandate(context.Background(), m); err != nil {
				return err
			}
		}
		return nil
	}))
}

func (d *delegation) get(t *testing.T, id string) *mandates.Mandate {
	t.Helper()
	var m *mandates.Mandate
	require.NoError(t, d.b.InTx(context.Background(), func(tx *memory.Tx) error {
		var err error
		m, err = tx.GetMandate(context.Background(), d.tenant, id)
		return err
	}))
	return m
}

func (d *delegation) ctx(agent string) authz.DetailContext {
	return authz.DetailContext{Agent: &authz.Agent{ID: agent, TenantID: d.tenant, Status: authz.AgentActive}, TenantID: d.tenant}
}

func granted(t *testing.T, raw json.RawMessage) mandates.AuthorizationDetail {
	t.Helper()
	var got mandates.AuthorizationDetail
	require.NoError(t, json.Unmarshal(raw, &got))
	require.Equal(t, mandates.AuthorizationDetailsType, got.Type)
	require.NotNil(t, got.Limits, "a granted element carries the mandate's limits")
	return got
}

func ref(id string) json.RawMessage {
	return json.RawMessage(`{"type":"payment_mandate","mandate_id":"` + id + `"}`)
}

func TestValidateGrantsOnlyTheAgentsActiveMandate(t *testing.T) {
	ctx := context.Background()
	d := newDelegation(t)

	out, err := d.dt.Validate(ctx, d.ctx("agt_a"), ref(d.root.ID))
	require.NoError(t, err)
	g := granted(t, out)
	assert.Equal(t, d.root.ID, g.MandateID)
	assert.Equal(t, int64(10_000), g.Budget)

	for _, tc := range []struct {
		name, agent string
		raw         json.RawMessage
		says        string
	}{
		{"another agent's mandate", "agt_b", ref(d.root.ID), "not granted to this agent"},
		{"an unknown mandate", "agt_a", ref("mdt_missing"), "no such mandate"},
		{"terms instead of a reference", "agt_a", json.RawMessage(`{"type":"payment_mandate","currency":"usd","budget":100,"payment_methods":["tok_a"]}`), "names an existing mandate"},
		{"not a payment_mandate", "agt_a", json.RawMessage(`{"type":"other"}`), "type"},
		{"not an object", "agt_a", json.RawMessage(`"mdt_1"`), "object"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := d.dt.Validate(ctx, d.ctx(tc.agent), tc.raw)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.says)
		})
	}

	suspended := *d.root
	suspended.ID, suspended.Status = ids.New("mdt"), mandates.StatusSuspended
	d.create(t, &suspended)
	_, err = d.dt.Validate(ctx, d.ctx("agt_a"), ref(suspended.ID))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "is suspended")
}

func TestNarrowInheritsNoMoreThanIsLeft(t *testing.T) {
	ctx := context.Background()
	d := newDelegation(t)
	parent := ref(d.root.ID)

	out, err := d.dt.Narrow(ctx, d.ctx("agt_a"), parent, parent)
	require.NoError(t, err)
	assert.Equal(t, d.root.ID, granted(t, out).MandateID, "the same agent asking for nothing new keeps the mandate")

	out, err = d.dt.Narrow(ctx, d.ctx("agt_b"), parent, parent)
	require.NoError(t, err)
	g := granted(t, out)
	require.NotEqual(t, d.root.ID, g.MandateID, "another agent gets a child mandate")
	child := d.get(t, g.MandateID)
	assert.Equal(t, d.root.ID, child.ParentID)
	assert.Equal(t, 1, child.Depth)
	assert.Equal(t, "agt_b", child.Agent)
	assert.Equal(t, d.root.Payer, child.Payer)
	assert.Equal(t, mandates.StatusActive, child.Status)
	assert.Equal(t, int64(6000), child.Budget, "inherited terms are capped at what the parent has left")
	assert.Equal(t, int64(6000), g.Budget)
	assert.Equal(t, []string{"tok_a", "tok_b"}, child.PaymentMethods)
}

func TestNarrowRefusesWiderTerms(t *testing.T) {
	ctx := context.Background()
	d := newDelegation(t)
	parent := ref(d.root.ID)
	terms := func(extra string) json.RawMessage {
		return json.RawMessage(`{"type":"payment_mandate","currency":"usd","payment_methods":["tok_a"]` + extra + `}`)
	}

	out, err := d.dt.Narrow(ctx, d.ctx("agt_b"), parent, terms(`,"budget":2500`))
	require.NoError(t, err)
	child := d.get(t, granted(t, out).MandateID)
	assert.Equal(t, int64(2500), child.Budget)
	assert.Equal(t, []string{"tok_a"}, child.PaymentMethods)

	for _, tc := range []struct {
		name string
		raw  json.RawMessage
		says string
	}{
		{"more than is left", terms(`,"budget":6001`), "more than the 6000"},
		{"a card the parent does not name", json.RawMessage(`{"type":"payment_mandate","currency":"usd","budget":100,"payment_methods":["tok_c"]}`), "payment_methods"},
		{"another currency", json.RawMessage(`{"type":"payment_mandate","currency":"eur","budget":100,"payment_methods":["tok_a"]}`), "currency"},
		{"another mandate", ref("mdt_other"), "narrows the subject token's mandate"},
		{"a mandate and terms", json.RawMessage(`{"type":"payment_mandate","mandate_id":"mdt_other","currency":"usd","budget":100,"payment_methods":["tok_a"]}`), "not both"},
		{"no budget", terms(``), "budget"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := d.dt.Narrow(ctx, d.ctx("agt_b"), parent, tc.raw)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.says)
		})
	}

	_, err = d.dt.Narrow(ctx, d.ctx("agt_b"), ref("mdt_missing"), ref("mdt_missing"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "no such mandate")
	_, err = d.dt.Narrow(ctx, d.ctx("agt_b"), json.RawMessage(`{"type":"payment_mandate"}`), json.RawMessage(`{"type":"payment_mandate"}`))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "names no mandate")
}

func TestNarrowBoundsDepth(t *testing.T) {
	ctx := context.Background()
	d := newDelegation(t) // MaxDepth 2
	out, err := d.dt.Narrow(ctx, d.ctx("agt_b"), ref(d.root.ID), ref(d.root.ID))
	require.NoError(t, err)
	first := granted(t, out).MandateID
	out, err = d.dt.Narrow(ctx, d.ctx("agt_c"), ref(first), ref(first))
	require.NoError(t, err)
	second := granted(t, out).MandateID
	assert.Equal(t, 2, d.get(t, second).Depth)

	_, err = d.dt.Narrow(ctx, d.ctx("agt_d"), ref(second), ref(second))
	require.Error(t, err, "a third delegation is deeper than allowed")
	assert.Contains(t, err.Error(), "depth")
}

func TestStateFollowsTheChain(t *testing.T) {
	ctx := context.Background()
	d := newDelegation(t)
	out, err := d.dt.Narrow(ctx, d.ctx("agt_b"), ref(d.root.ID), json.RawMessage(`{"type":"payment_mandate","currency":"usd","budget":1500,"payment_methods":["tok_a"]}`))
	require.NoError(t, err)
	childID := granted(t, out).MandateID
	out, err = d.dt.Narrow(ctx, d.ctx("agt_c"), ref(childID), ref(childID))
	require.NoError(t, err)
	grandID := granted(t, out).MandateID

	st, err := d.dt.State(ctx, d.tenant, ref(grandID))
	require.NoError(t, err)
	assert.True(t, st.Active)
	assert.Equal(t, grandID, st.Key)
	assert.Equal(t, []string{"agt_b", "agt_a"}, st.Delegators, "nearest first")
	assert.Equal(t, grandID, st.Extra["mandate"])
	assert.Equal(t, "usd", st.Extra["currency"])
	assert.Equal(t, int64(1500), st.Extra["remaining_budget"])
	assert.NotContains(t, st.Extra, "remaining_period_budget")

	require.NoError(t, d.b.InTx(ctx, func(tx *memory.Tx) error {
		_, err := tx.SetMandateStatus(ctx, d.tenant, d.root.ID, []string{mandates.StatusActive}, mandates.StatusRevoked, time.Now())
		return err
	}))
	st, err = d.dt.State(ctx, d.tenant, ref(grandID))
	require.NoError(t, err)
	assert.False(t, st.Active, "a revoked ancestor ends the grant")

	for _, raw := range []json.RawMessage{ref("mdt_missing"), json.RawMessage(`{"type":"payment_mandate"}`), json.RawMessage(`{`)} {
		st, err := d.dt.State(ctx, d.tenant, raw)
		require.NoError(t, err)
		assert.False(t, st.Active, "%s", raw)
	}
}

func TestResolveApprovalOnce(t *testing.T) {
	ctx := context.Background()
	d := newDelegation(t)
	now := time.Now().UTC().Truncate(time.Microsecond)
	approval := func(expires time.Time) *charging.Approval {
		a := &charging.Approval{ID: ids.New("apr"), Object: "approval", TenantID: d.tenant, Status: charging.ApprovalPending,
			MandateID: d.root.ID, AgentID: "agt_a", Amount: 500, Currency: "USD", PaymentMethod: "tok_a", MerchantID: "acct_1",
			Binding: "digest", CreatedAt: now, ExpiresAt: expires}
		require.NoError(t, d.b.InTx(ctx, func(tx *memory.Tx) error { return tx.CreateApproval(ctx, a) }))
		return a
	}

	a := approval(now.Add(time.Hour))
	got, err := d.s.ResolveApproval(ctx, d.tenant, a.ID, true, "user_1")
	require.NoError(t, err)
	assert.Equal(t, charging.ApprovalApproved, got.Status)
	assert.Equal(t, "user_1", got.ResolvedBy)
	require.NotNil(t, got.ResolvedAt)
	assert.Contains(t, got.URL, "/approvals/"+a.ID)
	assert.NotContains(t, got.URL, "/v1/")
	_, err = d.s.ResolveApproval(ctx, d.tenant, a.ID, false, "user_2")
	require.ErrorIs(t, err, charging.ErrApprovalClosed, "resolved once")

	denied := approval(now.Add(time.Hour))
	got, err = d.s.ResolveApproval(ctx, d.tenant, denied.ID, false, "user_1")
	require.NoError(t, err)
	assert.Equal(t, charging.ApprovalDenied, got.Status)

	expired := approval(now.Add(-time.Second))
	_, err = d.s.ResolveApproval(ctx, d.tenant, expired.ID, true, "user_1")
	require.ErrorIs(t, err, charging.ErrApprovalClosed, "an expired approval is closed")
	still, err := d.s.GetApproval(ctx, d.tenant, expired.ID)
	require.NoError(t, err)
	assert.Equal(t, charging.ApprovalPending, still.Status, "a refused resolution writes nothing")

	_, err = d.s.ResolveApproval(ctx, "ten_other", a.ID, true, "user_1")
	require.ErrorIs(t, err, store.ErrNotFound, "another tenant's approval does not exist for it")
	_, err = d.s.GetApproval(ctx, "ten_other", a.ID)
	require.ErrorIs(t, err, store.ErrNotFound)
}

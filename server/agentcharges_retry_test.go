package server_test

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/app/apptest"
	"github.com/perfectpay/perfectpay/authz"
	"github.com/perfectpay/perfectpay/idempotency"
	"github.com/perfectpay/perfectpay/payments"
	"github.com/perfectpay/perfectpay/store/memory"
	"github.com/perfectpay/perfectpay/store/postgres"
)

// forgetClaim drops the idempotency record of an agent's key on a mandate,
// as if the node holding it had died and its claim had lapsed.
func (s *shop) forgetClaim(t *testing.T, mandateID, key string) {
	t.Helper()
	tenant := s.n.Do(t, apptest.Req{Method: "GET", Path: "/v1/tenant", Key: s.key}).JSON["id"].(string)
	require.NoError(t, s.n.App.Idempotency.InTx(context.Background(), func(tx idempotency.Repo) error {
		return tx.ReleaseIdempotency(context.Background(), tenant, s.agent+":"+mandateID, key)
	}))
}

// setChargeStatus rewrites a charge's status in the store (a node that
// died mid-call leaves it pending).
func setChargeStatus(t *testing.T, n *apptest.Node, tenantID, id, status string) {
	t.Helper()
	ctx := context.Background()
	change := func(tx payments.Repo) error {
		c, err := tx.LockCharge(ctx, tenantID, id)
		if err != nil {
			return err
		}
		from := c.Status
		c.Status = status
		return tx.UpdateCharge(ctx, c, from)
	}
	if n.App.Memory != nil {
		require.NoError(t, n.App.Memory.InTx(ctx, func(tx *memory.Tx) error { return change(tx) }))
		return
	}
	require.NoError(t, n.App.Postgres.InTx(ctx, func(tx *postgres.Tx) error { return change(tx) }))
}

// TestChargeRetryGetsItsOutcome: a retry under the Idempotency-Key of a
// charge that went through gets that charge, even when the node that made
// it died before answering and its claim lapsed: never a second decision
// (which would see the budget spent by the very charge it retries). While
// the charge has no outcome the answer is 409 with Retry-After naming it.
func TestChargeRetryGetsItsOutcome(t *testing.T) {
	apptest.EachDriver(t, func(t *testing.T, driver string) {
		n := apptest.New(t, driver)
		s := newShop(t, n)
		m := s.mandate(t, map[string]any{"budget": 900, "max_amount_per_charge": 900, "approval_threshold": 900})
		tok := s.token(t, m)
		first := s.charge(t, tok, 900, nil, "crash-1")
		require.Equal(t, 200, first.Status, string(first.Body))
		id := first.JSON["id"].(string)

		s.forgetClaim(t, m, "crash-1")
		again := s.charge(t, tok, 900, nil, "crash-1")
		require.Equal(t, 200, again.Status, string(again.Body))
		assert.Equal(t, id, again.JSON["id"], "the outcome of the charge made under the key")
		assert.Equal(t, "allow", again.JSON["decision"].(map[string]any)["result"])
		spent, count := s.spent(t, m)
		assert.Equal(t, 900.0, spent)
		assert.Equal(t, 1.0, count)

		// The node died mid-call: the charge is pending until the resolver
		// completes it. The retry is told so, with the charge id.
		tenant := n.Do(t, apptest.Req{Method: "GET", Path: "/v1/tenant", Key: s.key}).JSON["id"].(string)
		setChargeStatus(t, n, tenant, id, payments.StatusPending)
		s.forgetClaim(t, m, "crash-1")
		r := s.charge(t, tok, 900, nil, "crash-1")
		require.Equal(t, 409, r.Status, string(r.Body))
		assert.Equal(t, "charge_in_progress", r.ErrorCode())
		assert.Equal(t, "1", r.Header.Get("Retry-After"))
		assert.Contains(t, r.JSON["error"].(map[string]any)["message"], id)
		setChargeStatus(t, n, tenant, id, payments.StatusSucceeded)
		r = s.charge(t, tok, 900, nil, "crash-1")
		require.Equal(t, 200, r.Status, "the 409 was not stored: the next retry gets the outcome: %s", r.Body)
		assert.Equal(t, id, r.JSON["id"])

		// A declined charge is answered as declined on a retry, too.
		declining := tokenize(t, n, s.key, "4000000000000002", "123")
		m2 := s.mandate(t, map[string]any{"payment_methods": []string{s.card, declining}})
		tok2 := s.token(t, m2)
		d := s.charge(t, tok2, 500, map[string]any{"payment_method": declining}, "crash-2")
		require.Equal(t, 402, d.Status, string(d.Body))
		s.forgetClaim(t, m2, "crash-2")
		d2 := s.charge(t, tok2, 500, map[string]any{"payment_method": declining}, "crash-2")
		require.Equal(t, 402, d2.Status, string(d2.Body))
		assert.Equal(t, d.JSON["charge"].(map[string]any)["id"], d2.JSON["charge"].(map[string]any)["id"])

		// The key with other parameters is not that charge.
		s.forgetClaim(t, m, "crash-1")
		r = s.charge(t, tok, 800, nil, "crash-1")
		require.Equal(t, 422, r.Status, string(r.Body))
		assert.Equal(t, "idempotency_key_reused", r.ErrorCode())
	})
}

// TestIdempotencyKeyScopedToMandate: the same Idempotency-Key and body
// sent with tokens for two mandates makes two charges, one on each.
func TestIdempotencyKeyScopedToMandate(t *testing.T) {
	apptest.EachDriver(t, func(t *testing.T, driver string) {
		n := apptest.New(t, driver)
		s := newShop(t, n)
		m1, m2 := s.mandate(t, nil), s.mandate(t, nil)
		r1 := s.charge(t, s.token(t, m1), 700, nil, "shared-key")
		require.Equal(t, 200, r1.Status, string(r1.Body))
		r2 := s.charge(t, s.token(t, m2), 700, nil, "shared-key")
		require.Equal(t, 200, r2.Status, string(r2.Body))
		assert.Empty(t, r2.Header.Get("Idempotent-Replayed"))
		assert.NotEqual(t, r1.JSON["id"], r2.JSON["id"])
		assert.Equal(t, m2, r2.JSON["mandate"])
		spent1, _ := s.spent(t, m1)
		spent2, _ := s.spent(t, m2)
		assert.Equal(t, 700.0, spent1)
		assert.Equal(t, 700.0, spent2)
	})
}

// TestWrongAmountUnderApprovalKey: a retry that sends another amount under
// an approval's Idempotency-Key is refused without burning the key or the
// approval: the request the approval was given for still goes through.
func TestWrongAmountUnderApprovalKey(t *testing.T) {
	apptest.EachDriver(t, func(t *testing.T, driver string) {
		n := apptest.New(t, driver)
		s := newShop(t, n)
		m := s.mandate(t, nil)
		tok := s.token(t, m)
		r := s.charge(t, tok, 4000, nil, "approve-me")
		require.Equal(t, 402, r.Status, string(r.Body))
		apr := r.JSON["approval"].(map[string]any)["id"].(string)
		r = n.Do(t, apptest.Req{Method: "POST", Path: "/v1/approvals/" + apr + "/approve", Key: s.key})
		require.Equal(t, 200, r.Status, string(r.Body))

		r = s.charge(t, tok, 4001, map[string]any{"approval": apr}, "approve-me")
		require.Equal(t, 403, r.Status, string(r.Body))
		assert.Contains(t, reasonCodes(r), "approval_invalid")
		r = s.charge(t, tok, 4000, map[string]any{"approval": apr}, "approve-me")
		require.Equal(t, 200, r.Status, string(r.Body))
		assert.Equal(t, "succeeded", r.JSON["status"])
	})
}

// TestAgentChargeInactiveAgents: a suspended agent is agent_suspended and
// a revoked one always agent_revoked, whichever check answers; a charge on
// a child mandate needs every agent up its ancestry active, even with a
// fresh token of the child's own agent that names no one else.
func TestAgentChargeInactiveAgents(t *testing.T) {
	apptest.EachDriver(t, func(t *testing.T, driver string) {
		n := apptest.New(t, driver)
		s := newShop(t, n)
		m := s.mandate(t, map[string]any{"approval_threshold": 5000})
		tokA := s.token(t, m)
		bID, bSecret := secretAgent(t, n, s.key, map[string]any{
			"grant_types": []string{authz.GrantClientCredentials, authz.GrantTokenExchange}, "scopes": []string{"charges:write"}})
		narrow := fmt.Sprintf(`[{"type":"payment_mandate","currency":"USD","budget":2000,"max_amount_per_charge":1500,"approval_threshold":1500,"payment_methods":[%q],"allowed_merchants":[%q]}]`, s.card, s.merchant)
		code, body, _ := postForm(t, n, formReq{path: "/oauth2/token", basic: [2]string{bID, bSecret}, form: url.Values{
			"grant_type": {authz.GrantTokenExchange}, "subject_token": {tokA}, "subject_token_type": {authz.TokenTypeAccessToken},
			"scope": {"charges:write"}, "authorization_details": {narrow}}})
		require.Equal(t, 200, code, body)
		child := body["authorization_details"].([]any)[0].(map[string]any)["mandate_id"].(string)
		b := &shop{n: n, key: s.key, card: s.card, merchant: s.merchant, agent: bID, secret: bSecret}
		fresh := b.token(t, child) // B's own client_credentials token: no act naming A
		require.Equal(t, 200, b.charge(t, fresh, 100, nil, "").Status)

		agentAction := func(id, action string) {
			r := n.Do(t, apptest.Req{Method: "POST", Path: "/v1/agents/" + id + "/" + action, Key: s.key})
			require.Equal(t, 200, r.Status, string(r.Body))
		}
		agentAction(s.agent, "suspend")
		r := b.charge(t, fresh, 100, nil, "")
		require.Equal(t, 403, r.Status, string(r.Body))
		assert.Equal(t, "agent_suspended", r.ErrorCode())
		assert.Contains(t, r.JSON["error"].(map[string]any)["message"], s.agent)
		agentAction(s.agent, "resume")
		require.Equal(t, 200, b.charge(t, fresh, 100, nil, "").Status)

		agentAction(s.agent, "revoke")
		for range 3 {
			r = b.charge(t, fresh, 100, nil, "")
			require.Equal(t, 403, r.Status, string(r.Body))
			assert.Equal(t, "agent_revoked", r.ErrorCode())
			assert.Contains(t, r.JSON["error"].(map[string]any)["message"], s.agent)
		}
		spent, _ := s.spent(t, child)
		assert.Equal(t, 200.0, spent, "no refused charge holds budget")

		// The token's own agent: suspended, then revoked.
		c := newShop(t, n)
		cm := c.mandate(t, nil)
		ctok := c.token(t, cm)
		agentAction2 := func(action string) {
			r := n.Do(t, apptest.Req{Method: "POST", Path: "/v1/agents/" + c.agent + "/" + action, Key: c.key})
			require.Equal(t, 200, r.Status, string(r.Body))
		}
		agentAction2("suspend")
		r = c.charge(t, ctok, 100, nil, "")
		require.Equal(t, 403, r.Status, string(r.Body))
		assert.Equal(t, "agent_suspended", r.ErrorCode())
		agentAction2("revoke")
		for range 3 {
			r = c.charge(t, ctok, 100, nil, "")
			require.Equal(t, 403, r.Status, string(r.Body))
			assert.Equal(t, "agent_revoked", r.ErrorCode(), strings.TrimSpace(string(r.Body)))
		}
	})
}

// TestExchangeTwoMandateDetailsAllOrNothing: a token exchange asking for
// two payment_mandate elements is refused before anything is made: no
// child mandate is left behind by the first element.
func TestExchangeTwoMandateDetailsAllOrNothing(t *testing.T) {
	apptest.EachDriver(t, func(t *testing.T, driver string) {
		n := apptest.New(t, driver)
		s := newShop(t, n)
		m := s.mandate(t, nil)
		tokA := s.token(t, m)
		bID, bSecret := secretAgent(t, n, s.key, map[string]any{
			"grant_types": []string{authz.GrantClientCredentials, authz.GrantTokenExchange}, "scopes": []string{"charges:write"}})
		one := fmt.Sprintf(`{"type":"payment_mandate","currency":"USD","budget":1000,"max_amount_per_charge":1000,"approval_threshold":1000,"payment_methods":[%q],"allowed_merchants":[%q]}`, s.card, s.merchant)
		two := strings.Replace(one, `"budget":1000`, `"budget":20000`, 1) // wider than the parent: refused
		count := func() int {
			r := n.Do(t, apptest.Req{Method: "GET", Path: "/v1/mandates?limit=100", Key: s.key})
			require.Equal(t, 200, r.Status, string(r.Body))
			return len(r.JSON["data"].([]any))
		}
		before := count()
		for _, details := range []string{"[" + one + "," + two + "]", "[" + one + "," + one + "]"} {
			code, body, _ := postForm(t, n, formReq{path: "/oauth2/token", basic: [2]string{bID, bSecret}, form: url.Values{
				"grant_type": {authz.GrantTokenExchange}, "subject_token": {tokA}, "subject_token_type": {authz.TokenTypeAccessToken},
				"scope": {"charges:write"}, "authorization_details": {details}}})
			assert.Equal(t, 400, code, "%v", body)
			assert.Equal(t, "invalid_authorization_details", body["error"])
			assert.Equal(t, before, count(), "no child mandate was made")
		}
	})
}

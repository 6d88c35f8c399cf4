package server_test

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/accounts"
	"github.com/perfectpay/perfectpay/app/apptest"
	"github.com/perfectpay/perfectpay/authz"
	"github.com/perfectpay/perfectpay/idempotency"
	"github.com/perfectpay/perfectpay/internal/ids"
)

// shop is a tenant with a card, a merchant to buy from and an agent.
type shop struct {
	n        *apptest.Node
	key      string // the payer tenant's secret key
	card     string
	merchant string // acct_…
	agent    string
	secret   string
}

func merchantAccount(t *testing.T, n *apptest.Node, name, mcc, country string) string {
	t.Helper()
	_, mk := n.Tenant(t)
	r := n.Do(t, apptest.Req{Method: "POST", Path: "/v1/merchants", Key: mk, Body: map[string]any{
		"display_name": name, "mcc": mcc, "country": country, "domains": []string{strings.ToLower(strings.ReplaceAll(name, " ", "")) + ".example"}}})
	require.Contains(t, []int{200, 201}, r.Status, string(r.Body))
	return r.JSON["id"].(string)
}

func newShop(t *testing.T, n *apptest.Node) *shop {
	b, sk := n.Tenant(t)
	s := &shop{n: n, key: sk}
	s.card = tokenize(t, n, apptest.Key(b, accounts.KindPublishable, accounts.ModeTest), "4242424242424242", "123")
	s.merchant = merchantAccount(t, n, "Acme Books", "5942", "US")
	s.agent, s.secret = secretAgent(t, n, sk, map[string]any{
		"grant_types": []string{authz.GrantClientCredentials, authz.GrantTokenExchange}, "scopes": []string{"charges:write"}})
	return s
}

func (s *shop) mandate(t *testing.T, terms map[string]any) string {
	t.Helper()
	body := map[string]any{"agent": s.agent, "payer": "self", "currency": "USD", "budget": 10000,
		"max_amount_per_charge": 5000, "approval_threshold": 3000, "payment_methods": []string{s.card},
		"allowed_merchants": []string{s.merchant}, "description": "books for the team"}
	for k, v := range terms {
		body[k] = v
	}
	r := s.n.Do(t, apptest.Req{Method: "POST", Path: "/v1/mandates", Key: s.key, Body: body})
	require.Equal(t, 201, r.Status, string(r.Body))
	require.Equal(t, "active", r.JSON["status"])
	return r.JSON["id"].(string)
}

func (s *shop) token(t *testing.T, mandateID string) string {
	t.Helper()
	code, body, _ := postForm(t, s.n, formReq{path: "/oauth2/token", basic: [2]string{s.agent, s.secret}, form: url.Values{
		"grant_type": {"client_credentials"}, "scope": {"charges:write"},
		"authorization_details": {fmt.Sprintf(`[{"type":"payment_mandate","mandate_id":%q}]`, mandateID)}}})
	require.Equal(t, 200, code, body)
	return body["access_token"].(string)
}

func (s *shop) charge(t *testing.T, tok string, amount int64, extra map[string]any, idem string) *apptest.Response {
	t.Helper()
	body := map[string]any{"amount": amount, "currency": "USD", "payment_method": s.card, "merchant": s.merchant,
		"description": "three paperbacks", "line_items": []map[string]any{{"name": "paperback", "quantity": 3, "unit_amount": amount / 3}}}
	for k, v := range extra {
		body[k] = v
	}
	if idem == "" {
		idem = ids.New("idem") // never a run of digits a card-number guard could refuse
	}
	return s.n.Do(t, apptest.Req{Method: "POST", Path: "/v1/charges", Key: tok, Body: body, Header: map[string]string{"Idempotency-Key": idem}})
}

func (s *shop) spent(t *testing.T, mandateID string) (spent, count float64) {
	t.Helper()
	r := s.n.Do(t, apptest.Req{Method: "GET", Path: "/v1/mandates/" + mandateID, Key: s.key})
	require.Equal(t, 200, r.Status, string(r.Body))
	return r.JSON["spent"].(float64), r.JSON["charge_count"].(float64)
}

func reasonCodes(r *apptest.Response) []string {
	var out []string
	var dec map[string]any
	if d, ok := r.JSON["decision"].(map[string]any); ok {
		dec = d
	}
	rs, _ := dec["reasons"].([]any)
	for _, x := range rs {
		out = append(out, x.(map[string]any)["code"].(string))
	}
	return out
}

func TestAgentCharges(t *testing.T) {
	apptest.EachDriver(t, func(t *testing.T, driver string) {
		n := apptest.New(t, driver)
		s := newShop(t, n)
		m := s.mandate(t, nil)
		tok := s.token(t, m)

		// Allowed: within cap, under the approval threshold.
		r := s.charge(t, tok, 1000, nil, "")
		require.Equal(t, 200, r.Status, string(r.Body))
		assert.Equal(t, "succeeded", r.JSON["status"])
		assert.Equal(t, m, r.JSON["mandate"])
		assert.Equal(t, s.merchant, r.JSON["merchant"])
		assert.Equal(t, "allow", r.JSON["decision"].(map[string]any)["result"])
		assert.Equal(t, "three paperbacks", r.JSON["purchase"].(map[string]any)["description"])
		firstCharge := r.JSON["id"].(string)
		spent, count := s.spent(t, m)
		assert.Equal(t, 1000.0, spent)
		assert.Equal(t, 1.0, count)

		// Over the per-charge cap: denied, explained with numbers.
		r = s.charge(t, tok, 6000, nil, "")
		require.Equal(t, 403, r.Status, string(r.Body))
		assert.Equal(t, "permission_error", r.ErrorType())
		assert.Equal(t, "charge_denied", r.ErrorCode())
		assert.Contains(t, reasonCodes(r), "per_charge_cap_exceeded")
		assert.Contains(t, string(r.Body), "60.00 USD")
		assert.Contains(t, string(r.Body), "50.00 USD")

		// Above the approval threshold: challenged, approved, retried.
		r = s.charge(t, tok, 4000, nil, "big-one")
		require.Equal(t, 402, r.Status, string(r.Body))
		assert.Equal(t, "approval_required", r.ErrorType())
		apr := r.JSON["approval"].(map[string]any)
		aprID := apr["id"].(string)
		assert.True(t, strings.HasSuffix(apr["url"].(string), "/approvals/"+aprID) && !strings.Contains(apr["url"].(string), "/v1/"), apr["url"])
		// Retrying before anyone approved gives the same approval back.
		r = s.charge(t, tok, 4000, map[string]any{"approval": aprID}, "big-one")
		require.Equal(t, 402, r.Status, string(r.Body))
		assert.Equal(t, aprID, r.JSON["approval"].(map[string]any)["id"])
		// The agent cannot approve its own charge.
		r = n.Do(t, apptest.Req{Method: "POST", Path: "/v1/approvals/" + aprID + "/approve", Key: tok})
		assert.Equal(t, 401, r.Status)
		r = n.Do(t, apptest.Req{Method: "POST", Path: "/v1/approvals/" + aprID + "/approve", Key: s.key})
		require.Equal(t, 200, r.Status, string(r.Body))
		assert.Equal(t, "approved", r.JSON["status"])
		// The approval is bound to that exact request.
		r = s.charge(t, tok, 4500, map[string]any{"approval": aprID}, "big-one-other")
		require.Equal(t, 403, r.Status, string(r.Body))
		assert.Contains(t, reasonCodes(r), "approval_invalid")
		r = s.charge(t, tok, 4000, map[string]any{"approval": aprID}, "big-one")
		require.Equal(t, 200, r.Status, string(r.Body))
		assert.Equal(t, "succeeded", r.JSON["status"])
		// Same key, same body: the stored answer; the approval is spent.
		r2 := s.charge(t, tok, 4000, map[string]any{"approval": aprID}, "big-one")
		require.Equal(t, 200, r2.Status)
		assert.Equal(t, "true", r2.Header.Get("Idempotent-Replayed"))
		assert.Equal(t, r.JSON["id"], r2.JSON["id"])
		r = s.charge(t, tok, 4000, map[string]any{"approval": aprID}, "big-one-again")
		assert.Equal(t, 403, r.Status, string(r.Body))
		spent, count = s.spent(t, m)
		assert.Equal(t, 5000.0, spent)
		assert.Equal(t, 2.0, count)

		// A card the mandate does not name is refused.
		r = s.charge(t, tok, 500, map[string]any{"payment_method": "tok_notonthemandate"}, "")
		require.Equal(t, 403, r.Status, string(r.Body))
		assert.Contains(t, reasonCodes(r), "payment_method_not_allowed")

		// Another merchant is refused, whatever the agent says about it.
		music := merchantAccount(t, n, "Acme Music", "5735", "US")
		r = s.charge(t, tok, 500, map[string]any{"merchant": music, "description": "books, honestly (mcc 5942)"}, "")
		require.Equal(t, 403, r.Status, string(r.Body))
		assert.Contains(t, reasonCodes(r), "merchant_not_allowed")
		// The agent cannot state merchant facts at all.
		r = s.charge(t, tok, 500, map[string]any{"mcc": "5942"}, "")
		assert.Equal(t, 400, r.Status)
		assert.Equal(t, "mcc", r.JSON["error"].(map[string]any)["param"])

		// A refund gives the budget back.
		r = n.Do(t, apptest.Req{Method: "POST", Path: "/v1/refunds", Key: s.key, Body: map[string]any{"charge": firstCharge, "amount": 400}})
		require.Equal(t, 200, r.Status, string(r.Body))
		spent, count = s.spent(t, m)
		assert.Equal(t, 4600.0, spent)
		assert.Equal(t, 2.0, count, "a refunded charge still counts")

		// Budget: 10000 - 4600 = 5400 left; a 3000 charge passes the cap
		// (needs approval? no: threshold 3000 means above it), then 2500 > 2400.
		r = s.charge(t, tok, 3000, nil, "")
		require.Equal(t, 200, r.Status, string(r.Body))
		r = s.charge(t, tok, 2500, nil, "")
		require.Equal(t, 403, r.Status, string(r.Body))
		assert.Contains(t, reasonCodes(r), "budget_exceeded")

		// History: every decision and charge is on the mandate.
		r = n.Do(t, apptest.Req{Method: "GET", Path: "/v1/mandates/" + m + "/events?limit=100", Key: s.key})
		require.Equal(t, 200, r.Status, string(r.Body))
		types := map[string]int{}
		for _, e := range r.JSON["data"].([]any) {
			types[e.(map[string]any)["type"].(string)]++
		}
		assert.GreaterOrEqual(t, types["decision.allow"], 3)
		assert.GreaterOrEqual(t, types["decision.deny"], 4)
		assert.GreaterOrEqual(t, types["decision.challenge"], 2)
		assert.GreaterOrEqual(t, types["charge.succeeded"], 3)

		// Revoking the mandate stops the next charge.
		r = n.Do(t, apptest.Req{Method: "POST", Path: "/v1/mandates/" + m + "/revoke", Key: s.key})
		require.Equal(t, 200, r.Status, string(r.Body))
		r = s.charge(t, tok, 100, nil, "")
		require.Equal(t, 403, r.Status, string(r.Body))
		assert.Equal(t, "permission_error", r.ErrorType())
		assert.Equal(t, "mandate_revoked", r.ErrorCode())
		assert.Contains(t, r.JSON["error"].(map[string]any)["message"], m)
	})
}

func TestAgentChargeDeclineReleasesBudget(t *testing.T) {
	apptest.EachDriver(t, func(t *testing.T, driver string) {
		n := apptest.New(t, driver)
		s := newShop(t, n)
		// A card that the simulated acquirer declines, on the payer's tenant.
		declining := tokenize(t, n, s.key, "4000000000000002", "123")
		m := s.mandate(t, map[string]any{"payment_methods": []string{s.card, declining}})
		tok := s.token(t, m)
		r := s.charge(t, tok, 1500, map[string]any{"payment_method": declining}, "")
		require.Equal(t, 402, r.Status, string(r.Body))
		assert.Equal(t, "card_error", r.ErrorType())
		assert.Equal(t, "generic_decline", r.JSON["error"].(map[string]any)["decline_code"])
		assert.Equal(t, "failed", r.JSON["charge"].(map[string]any)["status"])
		spent, count := s.spent(t, m)
		assert.Zero(t, spent, "a decline releases the reservation")
		assert.Zero(t, count)
	})
}

// TestAgentChargeRevocations: a revoked agent or token is refused on the
// next charge with a permission_error naming what was revoked.
func TestAgentChargeRevocations(t *testing.T) {
	apptest.EachDriver(t, func(t *testing.T, driver string) {
		n := apptest.New(t, driver)
		s := newShop(t, n)
		m := s.mandate(t, nil)
		tok := s.token(t, m)
		r := s.charge(t, tok, 100, nil, "")
		require.Equal(t, 200, r.Status, string(r.Body))
		code, _, _ := postForm(t, n, formReq{path: "/oauth2/revoke", basic: [2]string{s.agent, s.secret}, form: url.Values{"token": {tok}}})
		require.Equal(t, 200, code)
		r = s.charge(t, tok, 100, nil, "")
		require.Equal(t, 403, r.Status, string(r.Body))
		assert.Equal(t, "permission_error", r.ErrorType())
		assert.Equal(t, "token_revoked", r.ErrorCode())

		tok2 := s.token(t, m)
		r = s.charge(t, tok2, 100, nil, "")
		require.Equal(t, 200, r.Status, string(r.Body))
		r = n.Do(t, apptest.Req{Method: "POST", Path: "/v1/agents/" + s.agent + "/revoke", Key: s.key})
		require.Equal(t, 200, r.Status, string(r.Body))
		r = s.charge(t, tok2, 100, nil, "")
		require.Equal(t, 403, r.Status, string(r.Body))
		assert.Equal(t, "agent_revoked", r.ErrorCode())
	})
}

// TestDelegatedCharges: agent A hands its token to B, who exchanges it for
// a narrower child mandate; B's charges count against both budgets, and
// revoking the parent stops B.
func TestDelegatedCharges(t *testing.T) {
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
		tokB := body["access_token"].(string)
		details := body["authorization_details"].([]any)
		child := details[0].(map[string]any)["mandate_id"].(string)
		require.NotEqual(t, m, child)

		// Widening is refused at the exchange.
		wide := strings.Replace(narrow, `"budget":2000`, `"budget":20000`, 1)
		code, body, _ = postForm(t, n, formReq{path: "/oauth2/token", basic: [2]string{bID, bSecret}, form: url.Values{
			"grant_type": {authz.GrantTokenExchange}, "subject_token": {tokA}, "subject_token_type": {authz.TokenTypeAccessToken},
			"scope": {"charges:write"}, "authorization_details": {wide}}})
		assert.Equal(t, 400, code)
		assert.Equal(t, "invalid_authorization_details", body["error"])

		r := s.charge(t, tokB, 1200, nil, "")
		require.Equal(t, 200, r.Status, string(r.Body))
		assert.Equal(t, child, r.JSON["mandate"])
		spentChild, _ := s.spent(t, child)
		spentParent, _ := s.spent(t, m)
		assert.Equal(t, 1200.0, spentChild)
		assert.Equal(t, 1200.0, spentParent, "the parent's budget holds the child's spending")
		r = s.charge(t, tokB, 1000, nil, "")
		require.Equal(t, 403, r.Status, string(r.Body))
		assert.Contains(t, reasonCodes(r), "budget_exceeded")

		r = n.Do(t, apptest.Req{Method: "POST", Path: "/v1/mandates/" + m + "/revoke", Key: s.key})
		require.Equal(t, 200, r.Status, string(r.Body))
		r = s.charge(t, tokB, 100, nil, "")
		require.Equal(t, 403, r.Status, string(r.Body))
		assert.Equal(t, "mandate_revoked", r.ErrorCode())
	})
}

// TestMerchantReadsChargesMadeToIt: the merchant account sees the agent
// charges naming it, and nothing else.
func TestMerchantReadsChargesMadeToIt(t *testing.T) {
	apptest.EachDriver(t, func(t *testing.T, driver string) {
		n := apptest.New(t, driver)
		s := newShop(t, n)
		// The merchant account is its own tenant: find its key through a
		// fresh profile so the test owns it.
		_, mk := n.Tenant(t)
		r := n.Do(t, apptest.Req{Method: "POST", Path: "/v1/merchants", Key: mk, Body: map[string]any{
			"display_name": "Corner Shop", "mcc": "5942", "country": "US", "domains": []string{"corner.example"}}})
		require.Contains(t, []int{200, 201}, r.Status, string(r.Body))
		corner := r.JSON["id"].(string)
		m := s.mandate(t, map[string]any{"allowed_merchants": []string{s.merchant, corner}})
		tok := s.token(t, m)
		require.Equal(t, 200, s.charge(t, tok, 700, map[string]any{"merchant": corner}, "").Status)
		require.Equal(t, 200, s.charge(t, tok, 800, nil, "").Status)

		r = n.Do(t, apptest.Req{Method: "GET", Path: "/v1/merchant/charges", Key: mk})
		require.Equal(t, 200, r.Status, string(r.Body))
		data := r.JSON["data"].([]any)
		require.Len(t, data, 1)
		got := data[0].(map[string]any)
		assert.Equal(t, 700.0, got["amount"])
		assert.Equal(t, "merchant_charge", got["object"])
		for _, private := range []string{"payment_method", "card", "mandate", "agent", "metadata"} {
			assert.NotContains(t, got, private, "a merchant does not see the payer's %s", private)
		}
		assert.NotContains(t, string(r.Body), s.card)

		_, nobody := n.Tenant(t)
		r = n.Do(t, apptest.Req{Method: "GET", Path: "/v1/merchant/charges", Key: nobody})
		assert.Equal(t, 404, r.Status)
		assert.Equal(t, "merchant_profile_missing", r.ErrorCode())
	})
}

// TestChargeOncePerKeyAfterLapsedClaim: a node died mid-request, so the
// Idempotency-Key's claim is gone (lapsed); the client's retry must find
// the charge already made, not make a second one — for agent and merchant
// charges alike.
func TestChargeOncePerKeyAfterLapsedClaim(t *testing.T) {
	apptest.EachDriver(t, func(t *testing.T, driver string) {
		n := apptest.New(t, driver)
		s := newShop(t, n)
		m := s.mandate(t, nil)
		tok := s.token(t, m)
		first := s.charge(t, tok, 900, nil, "lapse-1")
		require.Equal(t, 200, first.Status, string(first.Body))
		forget := func(credential, key string) {
			tenant := n.Do(t, apptest.Req{Method: "GET", Path: "/v1/tenant", Key: s.key}).JSON["id"].(string)
			require.NoError(t, n.App.Idempotency.InTx(context.Background(), func(tx idempotency.Repo) error {
				return tx.ReleaseIdempotency(context.Background(), tenant, credential, key)
			}))
		}
		forget(s.agent+":"+m, "lapse-1")
		again := s.charge(t, tok, 900, nil, "lapse-1")
		require.Equal(t, 200, again.Status, string(again.Body))
		assert.Equal(t, first.JSON["id"], again.JSON["id"], "the retry finds the first charge")
		assert.Empty(t, again.Header.Get("Idempotent-Replayed"), "it was not a replay: the claim was gone")
		spent, count := s.spent(t, m)
		assert.Equal(t, 900.0, spent, "the budget was reserved once")
		assert.Equal(t, 1.0, count)

		body := map[string]any{"amount": 500, "currency": "usd", "payment_method": s.card}
		r1 := n.Do(t, apptest.Req{Method: "POST", Path: "/v1/charges", Key: s.key, Body: body, Header: map[string]string{"Idempotency-Key": "lapse-2"}})
		require.Equal(t, 200, r1.Status, string(r1.Body))
		keys := n.Do(t, apptest.Req{Method: "GET", Path: "/v1/api_keys", Key: s.key}).JSON["data"].([]any)
		var keyID string
		for _, k := range keys {
			if km := k.(map[string]any); km["type"] == "secret" && km["mode"] == "test" {
				keyID = km["id"].(string)
			}
		}
		forget(keyID, "lapse-2")
		r2 := n.Do(t, apptest.Req{Method: "POST", Path: "/v1/charges", Key: s.key, Body: body, Header: map[string]string{"Idempotency-Key": "lapse-2"}})
		require.Equal(t, 200, r2.Status, string(r2.Body))
		assert.Equal(t, r1.JSON["id"], r2.JSON["id"])
		list := n.Do(t, apptest.Req{Method: "GET", Path: "/v1/charges?limit=100", Key: s.key}).JSON["data"].([]any)
		assert.Len(t, list, 2, "one agent charge and one merchant charge, not four")
	})
}

// TestAgentChargeOnDeletedCard: the card is read in the charge
// transaction's first round trip, with the claim and the revocation check.
// A card deleted after the mandate was made is refused as a missing token
// (400, the budget untouched), and a retry under the same key gets the same answer, on both
// stores.
func TestAgentChargeOnDeletedCard(t *testing.T) {
	apptest.EachDriver(t, func(t *testing.T, driver string) {
		n := apptest.New(t, driver)
		s := newShop(t, n)
		m := s.mandate(t, nil)
		tok := s.token(t, m)
		require.Equal(t, 200, s.charge(t, tok, 500, nil, "").Status)

		r := n.Do(t, apptest.Req{Method: "DELETE", Path: "/v1/tokens/" + s.card, Key: s.key})
		require.Equal(t, 200, r.Status, string(r.Body))
		for range 2 {
			r = s.charge(t, tok, 700, nil, "idem-deleted-card")
			require.Equal(t, 400, r.Status, string(r.Body))
			e := r.JSON["error"].(map[string]any)
			assert.Equal(t, "resource_missing", e["code"])
			assert.Equal(t, "payment_method", e["param"])
		}
		spent, count := s.spent(t, m)
		assert.Equal(t, float64(500), spent, "a refused card spends nothing")
		assert.Equal(t, float64(1), count)
	})
}

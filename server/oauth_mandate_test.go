package server_test

import (
	"context"
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/app/apptest"
	"github.com/perfectpay/perfectpay/authz"
	"github.com/perfectpay/perfectpay/store/memory"
	"github.com/perfectpay/perfectpay/store/postgres"
)

// delegate exchanges tok for a token of agent (id, secret) with the given
// authorization_details ("" inherits the subject token's).
func (s *shop) delegate(t *testing.T, id, secret, tok, details string) (int, map[string]any) {
	t.Helper()
	f := url.Values{"grant_type": {authz.GrantTokenExchange}, "subject_token": {tok},
		"subject_token_type": {authz.TokenTypeAccessToken}, "scope": {"charges:write"}}
	if details != "" {
		f.Set("authorization_details", details)
	}
	code, body, _ := postForm(t, s.n, formReq{path: "/oauth2/token", basic: [2]string{id, secret}, form: f})
	return code, body
}

func mandateOf(t *testing.T, body map[string]any) string {
	t.Helper()
	d, _ := body["authorization_details"].([]any)
	require.Len(t, d, 1, body)
	return d[0].(map[string]any)["mandate_id"].(string)
}

// A child mandate made by exchange never has more than its parent has
// left, in total and in the current period.
func TestExchangeChildMandateWithinWhatIsLeft(t *testing.T) {
	apptest.EachDriver(t, func(t *testing.T, driver string) {
		n := apptest.New(t, driver)
		s := newShop(t, n)
		m := s.mandate(t, map[string]any{"period": "month", "period_budget": 6000, "approval_threshold": 5000})
		tokA := s.token(t, m)
		require.Equal(t, 200, s.charge(t, tokA, 4000, nil, "").Status)
		bID, bSecret := secretAgent(t, n, s.key, map[string]any{
			"grant_types": []string{authz.GrantClientCredentials, authz.GrantTokenExchange}, "scopes": []string{"charges:write"}})

		// Inherited terms are cut to what is left: 6000 of 10000, 2000 of 6000 this month.
		code, body := s.delegate(t, bID, bSecret, tokA, "")
		require.Equal(t, 200, code, body)
		child := mandateOf(t, body)
		require.NotEqual(t, m, child)
		r := n.Do(t, apptest.Req{Method: "GET", Path: "/v1/mandates/" + child, Key: s.key})
		require.Equal(t, 200, r.Status, string(r.Body))
		assert.Equal(t, 6000.0, r.JSON["budget"])
		assert.Equal(t, 2000.0, r.JSON["period_budget"])

		// Asking for more than is left is refused, though within the parent's terms.
		terms := func(budget, period int) string {
			return fmt.Sprintf(`[{"type":"payment_mandate","currency":"USD","budget":%d,"period":"month","period_budget":%d,`+
				`"max_amount_per_charge":1500,"approval_threshold":1500,"payment_methods":[%q],"allowed_merchants":[%q]}]`,
				budget, period, s.card, s.merchant)
		}
		for name, d := range map[string]string{"budget": terms(8000, 1000), "period budget": terms(5000, 3000)} {
			code, body = s.delegate(t, bID, bSecret, tokA, d)
			assert.Equal(t, 400, code, "%s: %v", name, body)
			assert.Equal(t, "invalid_authorization_details", body["error"], name)
			assert.Contains(t, body["error_description"], "left", name)
		}
		code, body = s.delegate(t, bID, bSecret, tokA, terms(2000, 1000))
		require.Equal(t, 200, code, body)
	})
}

// The delegation follows a child mandate: B's client_credentials token for
// the child mandate A delegated carries the exchange's act chain, so
// revoking A stops it; introspection shows what is left and turns
// inactive when an ancestor mandate is revoked.
func TestChildMandateTokensFollowTheDelegator(t *testing.T) {
	apptest.EachDriver(t, func(t *testing.T, driver string) {
		n := apptest.New(t, driver)
		s := newShop(t, n)
		m := s.mandate(t, map[string]any{"approval_threshold": 5000})
		tokA := s.token(t, m)
		r0 := s.charge(t, tokA, 1000, nil, "")
		require.Equal(t, 200, r0.Status, string(r0.Body))
		in := introspect(t, n, s.key, tokA)
		assert.Equal(t, true, in["active"])
		assert.Equal(t, m, in["mandate"])
		assert.Equal(t, 9000.0, in["remaining_budget"])
		assert.Equal(t, "usd", in["currency"])

		bID, bSecret := secretAgent(t, n, s.key, map[string]any{
			"grant_types": []string{authz.GrantClientCredentials, authz.GrantTokenExchange}, "scopes": []string{"charges:write"}})
		code, body := s.delegate(t, bID, bSecret, tokA, "")
		require.Equal(t, 200, code, body)
		child := mandateOf(t, body)

		// client_credentials for the child mandate: the same chain as the exchange.
		b := &shop{n: n, key: s.key, card: s.card, merchant: s.merchant, agent: bID, secret: bSecret}
		tokB := b.token(t, child)
		c := claims(t, tokB)
		assert.Equal(t, s.agent, c["sub"])
		assert.Equal(t, map[string]any{"sub": bID}, c["act"])
		require.Equal(t, 200, b.charge(t, tokB, 500, nil, "").Status)
		in = introspect(t, n, s.key, tokB)
		assert.Equal(t, true, in["active"])
		assert.Equal(t, 8500.0, in["remaining_budget"], "the least left along the chain")

		// Revoking the delegator stops the delegate's own token.
		r := n.Do(t, apptest.Req{Method: "POST", Path: "/v1/agents/" + s.agent + "/revoke", Key: s.key})
		require.Equal(t, 200, r.Status, string(r.Body))
		r = b.charge(t, tokB, 100, nil, "")
		require.Equal(t, 403, r.Status, string(r.Body))
		assert.Equal(t, "agent_revoked", r.ErrorCode())
		assert.Equal(t, false, introspect(t, n, s.key, tokB)["active"])
		code, body, _ = postForm(t, n, formReq{path: "/oauth2/token", basic: [2]string{bID, bSecret}, form: url.Values{
			"grant_type": {"client_credentials"}, "scope": {"charges:write"},
			"authorization_details": {fmt.Sprintf(`[{"type":"payment_mandate","mandate_id":%q}]`, child)}}})
		assert.Equal(t, 400, code, "no new token for a grant delegated by a revoked agent: %v", body)
		assert.Equal(t, "invalid_grant", body["error"])
	})
}

// Introspection is inactive once the token's mandate, or an ancestor, is
// revoked.
func TestIntrospectionFollowsMandateStatus(t *testing.T) {
	apptest.EachDriver(t, func(t *testing.T, driver string) {
		n := apptest.New(t, driver)
		s := newShop(t, n)
		m := s.mandate(t, nil)
		tokA := s.token(t, m)
		bID, bSecret := secretAgent(t, n, s.key, map[string]any{
			"grant_types": []string{authz.GrantClientCredentials, authz.GrantTokenExchange}, "scopes": []string{"charges:write"}})
		code, body := s.delegate(t, bID, bSecret, tokA, "")
		require.Equal(t, 200, code, body)
		tokB := body["access_token"].(string)
		assert.Equal(t, true, introspect(t, n, s.key, tokB)["active"])

		r := n.Do(t, apptest.Req{Method: "POST", Path: "/v1/mandates/" + m + "/revoke", Key: s.key})
		require.Equal(t, 200, r.Status, string(r.Body))
		assert.Equal(t, map[string]any{"active": false}, introspect(t, n, s.key, tokA))
		assert.Equal(t, map[string]any{"active": false}, introspect(t, n, s.key, tokB), "the parent mandate was revoked")
	})
}

// Revoking the token that was exchanged (RFC 7009) stops the child
// mandate it made: the delegate's own client_credentials tokens for it
// carry the exchange's lineage, now and after the revoked token's record
// would otherwise have been pruned.
func TestRevokingTheExchangedTokenStopsTheChildMandate(t *testing.T) {
	apptest.EachDriver(t, func(t *testing.T, driver string) {
		n := apptest.New(t, driver)
		s := newShop(t, n)
		m := s.mandate(t, map[string]any{"approval_threshold": 5000})
		tokA := s.token(t, m)
		bID, bSecret := secretAgent(t, n, s.key, map[string]any{
			"grant_types": []string{authz.GrantClientCredentials, authz.GrantTokenExchange}, "scopes": []string{"charges:write"}})
		code, body := s.delegate(t, bID, bSecret, tokA, "")
		require.Equal(t, 200, code, body)
		child := mandateOf(t, body)
		b := &shop{n: n, key: s.key, card: s.card, merchant: s.merchant, agent: bID, secret: bSecret}
		tokB := b.token(t, child)
		assert.Equal(t, []any{claims(t, tokA)["jti"]}, claims(t, tokB)["delegated_from"])
		require.Equal(t, 200, b.charge(t, tokB, 100, nil, "").Status)

		// Another delegation from another token of A stays usable.
		tokA2 := s.token(t, m)
		code, body = s.delegate(t, bID, bSecret, tokA2, "")
		require.Equal(t, 200, code, body)
		other := mandateOf(t, body)

		code, _, _ = postForm(t, n, formReq{path: "/oauth2/revoke", bearer: s.key, form: url.Values{"token": {tokA}}})
		require.Equal(t, 200, code)
		r := b.charge(t, tokB, 100, nil, "")
		require.Equal(t, 403, r.Status, string(r.Body))
		assert.Equal(t, "token_revoked", r.ErrorCode())

		// No new token for the child mandate, even once expired rows are
		// pruned: this revocation is kept.
		ccForChild := func() (int, map[string]any) {
			code, body, _ := postForm(t, n, formReq{path: "/oauth2/token", basic: [2]string{bID, bSecret}, form: url.Values{
				"grant_type": {"client_credentials"}, "scope": {"charges:write"},
				"authorization_details": {fmt.Sprintf(`[{"type":"payment_mandate","mandate_id":%q}]`, child)}}})
			return code, body
		}
		code, body = ccForChild()
		assert.Equal(t, 400, code, body)
		assert.Equal(t, "invalid_grant", body["error"])
		prune(t, n)
		code, body = ccForChild()
		assert.Equal(t, 400, code, body)
		assert.Equal(t, false, introspect(t, n, s.key, tokB)["active"])

		require.Equal(t, 200, b.charge(t, b.token(t, other), 100, nil, "").Status)
	})
}

// prune deletes the issuer's expired rows as if an hour had passed.
func prune(t *testing.T, n *apptest.Node) {
	t.Helper()
	ctx := context.Background()
	later := time.Now().Add(time.Hour)
	if n.App.Postgres != nil {
		require.NoError(t, n.App.Postgres.InTx(ctx, func(tx *postgres.Tx) error { _, err := tx.PruneAuthz(ctx, later); return err }))
		return
	}
	require.NoError(t, n.App.Memory.InTx(ctx, func(tx *memory.Tx) error { _, err := tx.PruneAuthz(ctx, later); return err }))
}

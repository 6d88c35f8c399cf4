package server_test

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/accounts"
	"github.com/perfectpay/perfectpay/app/apptest"
)

// publishableOf creates a publishable key of the shop's tenant.
func publishableOf(t *testing.T, n *apptest.Node, s *shop) string {
	t.Helper()
	r := n.Do(t, apptest.Req{Method: "POST", Path: "/v1/api_keys", Key: s.key, Body: map[string]any{"type": "publishable"}})
	require.Equal(t, 201, r.Status, string(r.Body))
	return r.JSON["secret"].(string)
}

// TestCustomerErasure: after erasure no personal field of the customer is
// readable through the API or in the store, their card tokens no longer
// decrypt, another payer's card is untouched, and the audit trail still
// verifies.
func TestCustomerErasure(t *testing.T) {
	apptest.EachDriver(t, func(t *testing.T, driver string) {
		n := apptest.New(t, driver)
		ctx := context.Background()
		s := newShop(t, n)
		mk := func(email, name string) string {
			r := n.Do(t, apptest.Req{Method: "POST", Path: "/v1/customers", Key: s.key, Body: map[string]any{"email": email, "name": name}})
			require.Equal(t, 201, r.Status, string(r.Body))
			return r.JSON["id"].(string)
		}
		ada, bob := mk("ada.lovelace@example.com", "Ada Lovelace"), mk("bob@example.com", "Bob")
		adaCard := s.card
		bobCard := tokenize(t, n, publishableOf(t, n, s), "5555555555554444", "123")
		for _, m := range []struct{ payer, card string }{{ada, adaCard}, {bob, bobCard}} {
			r := n.Do(t, apptest.Req{Method: "POST", Path: "/v1/mandates", Key: s.key, Body: map[string]any{
				"agent": s.agent, "payer": m.payer, "currency": "USD", "budget": 10000, "payment_methods": []string{m.card},
				"allowed_merchants": []string{s.merchant}}})
			require.Equal(t, 201, r.Status, string(r.Body))
		}

		r := n.Do(t, apptest.Req{Method: "POST", Path: "/v1/customers/" + ada + "/erase", Key: s.key})
		require.Equal(t, 200, r.Status, string(r.Body))
		assert.Equal(t, []any{adaCard}, r.JSON["card_tokens_shredded"])
		assert.Equal(t, 1.0, r.JSON["mandates"])

		r = n.Do(t, apptest.Req{Method: "GET", Path: "/v1/customers/" + ada, Key: s.key})
		require.Equal(t, 200, r.Status, string(r.Body))
		assert.Equal(t, accounts.ErasedEmail(ada), r.JSON["email"])
		assert.Empty(t, r.JSON["name"])
		r = n.Do(t, apptest.Req{Method: "GET", Path: "/v1/customers?limit=100", Key: s.key})
		assert.NotContains(t, string(r.Body), "ada.lovelace")
		assert.NotContains(t, string(r.Body), "Lovelace")
		assert.Contains(t, string(r.Body), "bob@example.com", "another customer is untouched")
		r = n.Do(t, apptest.Req{Method: "GET", Path: "/v1/tokens/" + adaCard, Key: s.key})
		assert.Equal(t, 404, r.Status, "the card token is shredded: %s", r.Body)
		r = n.Do(t, apptest.Req{Method: "GET", Path: "/v1/tokens/" + bobCard, Key: s.key})
		assert.Equal(t, 200, r.Status, string(r.Body))

		// Nothing in the store names her; the trail still verifies.
		if n.App.Postgres != nil {
			var hits int
			require.NoError(t, n.App.Postgres.Pool().QueryRow(ctx, `SELECT
				(SELECT count(*) FROM users WHERE email ILIKE '%lovelace%' OR name ILIKE '%lovelace%') +
				(SELECT count(*) FROM audit_events WHERE data ILIKE '%lovelace%') +
				(SELECT count(*) FROM vault_tokens WHERE id = $1 AND (ciphertext IS NOT NULL OR wrapped_dek IS NOT NULL))`, adaCard).Scan(&hits))
			assert.Zero(t, hits)
		}
		res, err := n.App.Audit.Verify(ctx)
		require.NoError(t, err)
		assert.True(t, res.OK, "%+v", res)
		erased := auditEvents(t, n, s.key, map[string][]string{"action": {"customer.erased"}})
		require.Len(t, erased, 1)
		assert.Equal(t, ada, erased[0]["target"])
		assert.False(t, strings.Contains(string(mustJSON(t, erased[0])), "ada.lovelace"))

		// Erasing again is harmless; unknown ids and another tenant's are not found.
		r = n.Do(t, apptest.Req{Method: "POST", Path: "/v1/customers/" + ada + "/erase", Key: s.key})
		assert.Equal(t, 200, r.Status, string(r.Body))
		r = n.Do(t, apptest.Req{Method: "POST", Path: "/v1/customers/usr_nope/erase", Key: s.key})
		assert.Equal(t, 404, r.Status, string(r.Body))
		other := newShop(t, n)
		r = n.Do(t, apptest.Req{Method: "POST", Path: "/v1/customers/" + bob + "/erase", Key: other.key})
		assert.Equal(t, 404, r.Status, string(r.Body))
	})
}

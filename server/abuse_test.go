package server_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/abuse"
	"github.com/perfectpay/perfectpay/accounts"
	"github.com/perfectpay/perfectpay/app"
	"github.com/perfectpay/perfectpay/app/apptest"
	"github.com/perfectpay/perfectpay/audit"
	"github.com/perfectpay/perfectpay/server"
	"github.com/perfectpay/perfectpay/webhooks"
)

func cardTestingNode(t *testing.T, driver string) (*apptest.Node, *testClock) {
	n, clk := defended(t, driver, "", func(c *app.Config) {
		c.Abuse.TrustedProxies = []string{"127.0.0.0/8", "::1"}
		c.Abuse.CardTesting = abuse.CardTestingConfig{
			Window: time.Hour, Cooldown: time.Hour, MaxDistinctCards: 5, MaxTokenizations: 50,
			MaxDeclineRatio: 0.5, DeclineMinCharges: 4, SmallAmount: 100, MaxSmallCharges: 5, MaxIncorrectCVC: 2,
		}
	})
	n.App.Defences.CardTesting.SetClock(clk.Now)
	return n, clk
}

// A burst of many cards from one publishable key and IP is detected and
// blocked for the cool-down, while another source keeps tokenizing.
func TestCardTestingBurstFromOneSourceIsBlocked(t *testing.T) {
	apptest.EachDriver(t, func(t *testing.T, driver string) {
		n, clk := cardTestingNode(t, driver)
		boot, _ := n.Tenant(t)
		pk := apptest.Key(boot, accounts.KindPublishable, accounts.ModeTest)
		other, _ := n.Tenant(t)
		pk2 := apptest.Key(other, accounts.KindPublishable, accounts.ModeTest)
		tokenizeFrom := func(ip, key, number string) *apptest.Response {
			return n.Do(t, apptest.Req{Method: "POST", Path: "/v1/tokens", Key: key, Body: cardBody(number, "123"),
				Header: map[string]string{"X-Forwarded-For": ip}})
		}
		cards := []string{"4242424242424242", "4000000000000002", "4000000000009995", "4000000000009987",
			"4000000000009979", "4000000000000069", "4000000000000119"}
		for i, c := range cards[:6] {
			r := tokenizeFrom("203.0.113.66", pk, c)
			require.Equal(t, 200, r.Status, "card %d: %s", i+1, r.Body)
			// Normal traffic from another source goes on throughout.
			r = tokenizeFrom("198.51.100.20", pk2, "4242424242424242")
			require.Equal(t, 200, r.Status, "the other source, after card %d: %s", i+1, r.Body)
		}
		r := tokenizeFrom("203.0.113.66", pk, cards[6])
		require.Equal(t, http.StatusTooManyRequests, r.Status, "the sixth distinct card tripped the block: %s", r.Body)
		assert.Equal(t, "rate_limit_error", r.ErrorType())
		assert.Equal(t, "3600", r.Header.Get("Retry-After"))
		r = tokenizeFrom("203.0.113.66", pk2, "4242424242424242")
		assert.Equal(t, http.StatusTooManyRequests, r.Status, "the IP is blocked, whatever key it uses")
		r = tokenizeFrom("198.51.100.21", pk, "4242424242424242")
		assert.Equal(t, http.StatusTooManyRequests, r.Status, "the publishable key is blocked, from any IP")
		assert.Equal(t, 200, tokenizeFrom("198.51.100.20", pk2, "4242424242424242").Status)

		evs, _, err := n.App.Webhooks.ListEvents(context.Background(), webhooks.EventFilter{TenantID: boot.Tenant.ID, Type: server.ActionCardTestingDetected, Limit: 10})
		require.NoError(t, err)
		var kinds []string
		for _, e := range evs {
			var ev struct {
				Object abuse.Block `json:"object"`
			}
			require.NoError(t, json.Unmarshal(e.Data, &ev))
			assert.Equal(t, "6 distinct cards in 1h0m0s, limit 5", ev.Object.Reason)
			kinds = append(kinds, ev.Object.Source.Kind)
		}
		assert.ElementsMatch(t, []string{"key", "ip"}, kinds, "the key and the IP, each once, to the tenant")
		entries, err := n.App.Audit.List(context.Background(), audit.Filter{TenantID: boot.Tenant.ID, Action: server.ActionCardTestingDetected})
		require.NoError(t, err)
		assert.Len(t, entries, 2, "each block audited")
		evs, _, err = n.App.Webhooks.ListEvents(context.Background(), webhooks.EventFilter{TenantID: other.Tenant.ID, Type: server.ActionCardTestingDetected, Limit: 10})
		require.NoError(t, err)
		assert.Empty(t, evs, "nothing for the bystander")

		clk.Advance(time.Hour)
		assert.Equal(t, 200, tokenizeFrom("203.0.113.66", pk, "4242424242424242").Status, "the cool-down is over")
	})
}

// One card charged again and again with tiny amounts that keep being
// declined for a wrong CVC is blocked; the merchant's other cards are not.
func TestCardTestingOfOneCardIsBlocked(t *testing.T) {
	apptest.EachDriver(t, func(t *testing.T, driver string) {
		n, _ := cardTestingNode(t, driver)
		boot, sk := n.Tenant(t)
		pk := apptest.Key(boot, accounts.KindPublishable, accounts.ModeTest)
		bad := tokenize(t, n, pk, "4000000000000127", "999")
		good := tokenize(t, n, pk, "4242424242424242", "123")
		pay := func(tok string, amount int) *apptest.Response {
			return charge(t, n, sk, map[string]any{"amount": amount, "currency": "usd", "payment_method": tok}, "")
		}
		for i := range 3 {
			r := pay(bad, 50+i)
			require.Equal(t, http.StatusPaymentRequired, r.Status, "attempt %d: %s", i+1, r.Body)
			require.Equal(t, 200, pay(good, 2500).Status)
		}
		r := pay(bad, 60)
		require.Equal(t, http.StatusTooManyRequests, r.Status, "the card is blocked after 3 incorrect_cvc declines: %s", r.Body)
		assert.Equal(t, 200, pay(good, 2500).Status, "the merchant's other cards go on")

		evs, _, err := n.App.Webhooks.ListEvents(context.Background(), webhooks.EventFilter{TenantID: boot.Tenant.ID, Type: server.ActionCardTestingDetected, Limit: 10})
		require.NoError(t, err)
		require.Len(t, evs, 1)
		var ev struct {
			Object abuse.Block `json:"object"`
		}
		require.NoError(t, json.Unmarshal(evs[0].Data, &ev))
		assert.Equal(t, "card", ev.Object.Source.Kind)
		assert.Equal(t, "3 incorrect_cvc declines in 1h0m0s, limit 2", ev.Object.Reason)
		assert.NotContains(t, string(evs[0].Data), "4000000000000127")
	})
}

// Small charges that succeed, on a card this node already knows (so its
// answers are not read back), count as they did: past max_small_charges
// the card is blocked, and another card of the merchant goes on.
func TestCardTestingCountsSmallChargesOfAKnownCard(t *testing.T) {
	n, _ := cardTestingNode(t, "memory")
	boot, sk := n.Tenant(t)
	pk := apptest.Key(boot, accounts.KindPublishable, accounts.ModeTest)
	probed := tokenize(t, n, pk, "4242424242424242", "123")
	other := tokenize(t, n, pk, "5555555555554444", "123")
	pay := func(tok string, amount int) *apptest.Response {
		return charge(t, n, sk, map[string]any{"amount": amount, "currency": "usd", "payment_method": tok}, "")
	}
	for i := range 6 {
		r := pay(probed, 50+i)
		require.Equal(t, 200, r.Status, "small charge %d: %s", i+1, r.Body)
	}
	r := pay(probed, 2500)
	require.Equal(t, http.StatusTooManyRequests, r.Status, "six small charges passed the limit of 5: %s", r.Body)
	assert.Equal(t, 200, pay(other, 2500).Status)
	evs, _, err := n.App.Webhooks.ListEvents(context.Background(), webhooks.EventFilter{TenantID: boot.Tenant.ID, Type: server.ActionCardTestingDetected, Limit: 10})
	require.NoError(t, err)
	require.Len(t, evs, 1)
	assert.Contains(t, string(evs[0].Data), `"kind":"card"`)
}

package server_test

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/accounts"
	"github.com/perfectpay/perfectpay/app/apptest"
)

var nextYear = strconv.Itoa(time.Now().Year() + 1)

func cardBody(number, cvc string) map[string]any {
	return map[string]any{"card": map[string]any{"number": number, "exp_month": 12, "exp_year": nextYear, "cvc": cvc, "name": "Grace Hopper"}}
}

// tokenize creates a token with the tenant's test publishable key.
func tokenize(t *testing.T, n *apptest.Node, pk, number, cvc string) string {
	t.Helper()
	r := n.Do(t, apptest.Req{Method: "POST", Path: "/v1/tokens", Key: pk, Body: cardBody(number, cvc)})
	require.Equal(t, 200, r.Status, string(r.Body))
	return r.JSON["id"].(string)
}

func TestTokens(t *testing.T) {
	apptest.EachDriver(t, func(t *testing.T, driver string) {
		n := apptest.New(t, driver)
		b, sk := n.Tenant(t)
		pk := apptest.Key(b, accounts.KindPublishable, accounts.ModeTest)

		r := n.Do(t, apptest.Req{Method: "POST", Path: "/v1/tokens", Key: pk, Body: cardBody("4242 4242 4242 4242", "314")})
		require.Equal(t, 200, r.Status, string(r.Body))
		assert.Equal(t, "*", r.Header.Get("Access-Control-Allow-Origin"), "browsers may tokenize directly")
		id := r.JSON["id"].(string)
		assert.True(t, strings.HasPrefix(id, "tok_"))
		card := r.JSON["card"].(map[string]any)
		assert.Equal(t, "visa", card["brand"])
		assert.Equal(t, "4242", card["last4"])
		assert.Equal(t, "pass", card["cvc_check"])
		assert.NotEmpty(t, card["fingerprint"])
		assert.NotContains(t, string(r.Body), "4242424242424242")
		// The CVC as a value (quoted or bare): a bare "314" can occur by
		// chance inside a timestamp or an id.
		for _, form := range []string{`"314"`, `:314,`, `:314}`} {
			assert.NotContains(t, string(r.Body), form)
		}
		assert.NotContains(t, card, "cvc")
		assert.Equal(t, false, r.JSON["livemode"])

		// The same masked view with a secret key; a publishable key cannot read.
		r = n.Do(t, apptest.Req{Method: "GET", Path: "/v1/tokens/" + id, Key: sk})
		require.Equal(t, 200, r.Status)
		assert.Equal(t, card, r.JSON["card"])
		r = n.Do(t, apptest.Req{Method: "GET", Path: "/v1/tokens/" + id, Key: pk})
		assert.Equal(t, 403, r.Status)
		r = n.Do(t, apptest.Req{Method: "GET", Path: "/v1/tokens/" + id, Key: apptest.Key(b, accounts.KindSecret, accounts.ModeLive)})
		assert.Equal(t, 404, r.Status, "test tokens are invisible to live keys")
		_, sk2 := n.Tenant(t)
		r = n.Do(t, apptest.Req{Method: "GET", Path: "/v1/tokens/" + id, Key: sk2})
		assert.Equal(t, 404, r.Status, "and to other tenants")

		// CORS preflight needs no credentials.
		req, _ := http.NewRequest(http.MethodOptions, n.URL+"/v1/tokens", nil)
		req.Header.Set("Origin", "https://shop.example")
		req.Header.Set("Access-Control-Request-Method", "POST")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, 204, resp.StatusCode)
		assert.Equal(t, "*", resp.Header.Get("Access-Control-Allow-Origin"))
		assert.Contains(t, resp.Header.Get("Access-Control-Allow-Headers"), "Authorization")
		r = n.Do(t, apptest.Req{Method: "POST", Path: "/v1/tokens", Key: "pk_test_wrong", Body: cardBody("4242424242424242", "123")})
		assert.Equal(t, 401, r.Status)
		assert.Equal(t, "*", r.Header.Get("Access-Control-Allow-Origin"), "errors are readable by the page too")

		// Validation, card errors as Stripe reports them.
		for _, tc := range []struct {
			body        any
			status      int
			code, param string
		}{
			{cardBody("4242424242424241", "123"), 402, "invalid_number", "card[number]"},
			{cardBody("424242424242", "123"), 402, "invalid_number", "card[number]"},
			{cardBody("4242x42424242424", "123"), 402, "invalid_number", "card[number]"},
			{cardBody("9999999999999995", "123"), 402, "invalid_number", "card[number]"},
			{cardBody("378282246310005", "123"), 402, "invalid_cvc", "card[cvc]"},
			{cardBody("4242424242424242", "1234"), 402, "invalid_cvc", "card[cvc]"},
			{cardBody("4242424242424242", ""), 400, "parameter_missing", "card[cvc]"},
			{map[string]any{"card": map[string]any{"number": "4242424242424242", "exp_month": 1, "exp_year": 2020, "cvc": "123"}}, 402, "expired_card", "card[exp_year]"},
			{map[string]any{"card": map[string]any{"number": "4242424242424242", "exp_month": 13, "exp_year": nextYear, "cvc": "123"}}, 402, "invalid_expiry_month", "card[exp_month]"},
			{map[string]any{}, 400, "parameter_missing", "card"},
			{map[string]any{"card": map[string]any{"number": "4242424242424242", "pin": "1234"}}, 400, "unknown_parameter", "pin"},
		} {
			r := n.Do(t, apptest.Req{Method: "POST", Path: "/v1/tokens", Key: pk, Body: tc.body})
			assert.Equal(t, tc.status, r.Status, string(r.Body))
			assert.Equal(t, tc.code, r.ErrorCode(), string(r.Body))
			if tc.param != "" {
				assert.Equal(t, tc.param, r.JSON["error"].(map[string]any)["param"])
			}
			assert.NotContains(t, string(r.Body), "42424242", "errors never echo the card")
		}
		r = n.Do(t, apptest.Req{Method: "POST", Path: "/v1/tokens", Key: pk, Body: `{"card":{"number":"4242424242424242","cvc":"123",`})
		assert.Equal(t, 400, r.Status)
		assert.NotContains(t, string(r.Body), "4242")

		// Every brand.
		for number, brand := range map[string]string{
			"5555555555554444": "mastercard", "2223003122003222": "mastercard", "378282246310005": "amex",
			"6011111111111117": "discover", "3566002020360505": "jcb", "36227206271667": "diners", "6200000000000005": "unionpay",
		} {
			cvc := "123"
			if brand == "amex" {
				cvc = "1234"
			}
			r := n.Do(t, apptest.Req{Method: "POST", Path: "/v1/tokens", Key: sk, Body: cardBody(number, cvc)})
			require.Equal(t, 200, r.Status, number+string(r.Body))
			assert.Equal(t, brand, r.JSON["card"].(map[string]any)["brand"], number)
		}

		// Restricted keys need tokens:write; publishable keys cannot delete.
		rk := n.Do(t, apptest.Req{Method: "POST", Path: "/v1/api_keys", Key: sk, Body: map[string]any{"type": "restricted", "scopes": []string{"charges:read"}}}).JSON["secret"].(string)
		r = n.Do(t, apptest.Req{Method: "POST", Path: "/v1/tokens", Key: rk, Body: cardBody("4242424242424242", "123")})
		assert.Equal(t, 403, r.Status)
		r = n.Do(t, apptest.Req{Method: "DELETE", Path: "/v1/tokens/" + id, Key: pk})
		assert.Equal(t, 403, r.Status)

		// DELETE destroys the token.
		r = n.Do(t, apptest.Req{Method: "DELETE", Path: "/v1/tokens/" + id, Key: sk})
		require.Equal(t, 200, r.Status)
		assert.Equal(t, true, r.JSON["deleted"])
		r = n.Do(t, apptest.Req{Method: "GET", Path: "/v1/tokens/" + id, Key: sk})
		assert.Equal(t, 404, r.Status)
		r = n.Do(t, apptest.Req{Method: "DELETE", Path: "/v1/tokens/" + id, Key: sk})
		assert.Equal(t, 404, r.Status)
		r = n.Do(t, apptest.Req{Method: "POST", Path: "/v1/charges", Key: sk, Body: map[string]any{"amount": 100, "currency": "usd", "payment_method": id}})
		assert.Equal(t, 400, r.Status)
		assert.Equal(t, "resource_missing", r.ErrorCode())
	})
}

package server_test

import (
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/accounts"
	"github.com/perfectpay/perfectpay/app/apptest"
	"github.com/perfectpay/perfectpay/payments"
)

// wireError is what a client sees of an error answer.
type wireError struct {
	Status                     int
	Type, Code, Param, Message string
}

func (w wireError) String() string {
	return fmt.Sprintf("{%d, %q, %q, %q, %q}", w.Status, w.Type, w.Code, w.Param, w.Message)
}

// seen reads the error answer of r; ids, the generated parts of a
// message, are replaced by their placeholders.
func seen(r *apptest.Response, ids map[string]string) wireError {
	e, _ := r.JSON["error"].(map[string]any)
	s := func(k string) string { v, _ := e[k].(string); return v }
	msg := s("message")
	for id, placeholder := range ids {
		msg = strings.ReplaceAll(msg, id, placeholder)
	}
	return wireError{Status: r.Status, Type: s("type"), Code: s("code"), Param: s("param"), Message: msg}
}

// TestErrorAnswersOnTheWire pins, on both stores, the error answers of
// each domain's typical refusals and of every list's bad limit, so the
// error machinery behind them can change without any client noticing.
func TestErrorAnswersOnTheWire(t *testing.T) {
	apptest.EachDriver(t, func(t *testing.T, driver string) {
		n := apptest.New(t, driver)
		s := newShop(t, n)
		b, _ := n.Tenant(t)
		pk := apptest.Key(b, accounts.KindPublishable, accounts.ModeTest)
		mandate := s.mandate(t, nil)
		tok := s.token(t, mandate)
		_, mk := n.Tenant(t)
		r := n.Do(t, apptest.Req{Method: "POST", Path: "/v1/merchants", Key: mk, Body: map[string]any{
			"display_name": "Pin Shop", "mcc": "5942", "country": "US", "domains": []string{"pinshop.example"}}})
		require.Contains(t, []int{200, 201}, r.Status, string(r.Body))
		shop := r.JSON["id"].(string)
		r = n.Do(t, apptest.Req{Method: "POST", Path: "/v1/webhook_endpoints", Key: s.key, Body: map[string]any{
			"url": "https://hooks.example/pp", "enabled_events": []string{"*"}}})
		require.Equal(t, 201, r.Status, string(r.Body))
		endpoint := r.JSON["id"].(string)
		r = n.Do(t, apptest.Req{Method: "GET", Path: "/v1/events", Key: s.key})
		require.Equal(t, 200, r.Status, string(r.Body))
		data := r.JSON["data"].([]any)
		require.NotEmpty(t, data)
		event := data[0].(map[string]any)["id"].(string)
		gone, _ := secretAgent(t, n, s.key, nil)
		r = n.Do(t, apptest.Req{Method: "POST", Path: "/v1/agents/" + gone + "/revoke", Key: s.key})
		require.Equal(t, 200, r.Status, string(r.Body))
		r = n.Do(t, apptest.Req{Method: "POST", Path: "/v1/api_keys", Key: s.key, Body: map[string]any{"type": "secret"}})
		require.Equal(t, 201, r.Status, string(r.Body))
		spent := r.JSON["id"].(string)
		r = n.Do(t, apptest.Req{Method: "POST", Path: "/v1/api_keys/" + spent + "/revoke", Key: s.key})
		require.Equal(t, 200, r.Status, string(r.Body))
		placeholders := map[string]string{shop: "{shop}", spent: "{spent}", s.agent: "{agent}", mandate: "{mandate}", s.card: "{card}", s.merchant: "{merchant}", gone: "{gone}"}

		cases := []struct {
			name string
			req  apptest.Req
			want wireError
		}{
			{"agent input", apptest.Req{Method: "POST", Path: "/v1/agents", Key: s.key, Body: map[string]any{
				"name": "x", "token_endpoint_auth_method": "client_secret_jwt"}},
				wireError{400, "invalid_request_error", "parameter_invalid", "token_endpoint_auth_method", "token_endpoint_auth_method must be private_key_jwt or client_secret_basic"}},
			{"agent not found", apptest.Req{Method: "GET", Path: "/v1/agents/agt_missing", Key: s.key},
				wireError{404, "invalid_request_error", "resource_missing", "id", "No such agent: 'agt_missing'"}},
			{"card number", apptest.Req{Method: "POST", Path: "/v1/tokens", Key: pk, Body: cardBody("4242424242424241", "123")},
				wireError{402, "card_error", "invalid_number", "card[number]", "The card number is not a valid credit card number."}},
			{"card expiry", apptest.Req{Method: "POST", Path: "/v1/tokens", Key: pk, Body: map[string]any{
				"card": map[string]any{"number": "4242424242424242", "exp_month": 13, "exp_year": nextYear, "cvc": "123"}}},
				wireError{402, "card_error", "invalid_expiry_month", "card[exp_month]", "The card's expiration month is invalid."}},
			{"card missing", apptest.Req{Method: "POST", Path: "/v1/tokens", Key: pk, Body: map[string]any{
				"card": map[string]any{"exp_month": 12, "exp_year": nextYear, "cvc": "123"}}},
				wireError{400, "invalid_request_error", "parameter_missing", "card[number]", "Missing required card parameter."}},
			{"charge currency", apptest.Req{Method: "POST", Path: "/v1/charges", Key: s.key, Body: map[string]any{
				"amount": 100, "currency": "xyz", "payment_method": s.card}},
				wireError{400, "invalid_request_error", "invalid_currency", "currency", "Invalid currency: \"xyz\" is not a supported ISO 4217 code."}},
			{"charge amount", apptest.Req{Method: "POST", Path: "/v1/charges", Key: s.key, Body: map[string]any{
				"amount": 0, "currency": "usd", "payment_method": s.card}},
				wireError{400, "invalid_request_error", "amount_too_small", "amount", "Amount must be at least 1 (minor units of the currency)."}},
			{"charge payment method", apptest.Req{Method: "POST", Path: "/v1/charges", Key: s.key, Body: map[string]any{
				"amount": 100, "currency": "usd", "payment_method": "tok_missing"}},
				wireError{400, "invalid_request_error", "resource_missing", "payment_method", "No such token: 'tok_missing'."}},
			{"charge not found", apptest.Req{Method: "GET", Path: "/v1/charges/ch_missing", Key: s.key},
				wireError{404, "invalid_request_error", "resource_missing", "id", "No such charge: 'ch_missing'"}},
			{"webhook url", apptest.Req{Method: "POST", Path: "/v1/webhook_endpoints", Key: s.key, Body: map[string]any{
				"url": "ftp://hooks.example/pp", "enabled_events": []string{"*"}}},
				wireError{400, "invalid_request_error", "parameter_invalid", "url", "Invalid url: the URL must use https."}},
			{"webhook events", apptest.Req{Method: "POST", Path: "/v1/webhook_endpoints", Key: s.key, Body: map[string]any{
				"url": "https://hooks.example/pp", "enabled_events": []string{"Charge Succeeded"}}},
				wireError{400, "invalid_request_error", "parameter_invalid", "enabled_events", "Invalid enabled_events: \"Charge Succeeded\" is not an event type (like \"charge.succeeded\") or \"*\"."}},
			{"webhook not found", apptest.Req{Method: "GET", Path: "/v1/webhook_endpoints/we_missing", Key: s.key},
				wireError{404, "invalid_request_error", "resource_missing", "id", "No such webhook_endpoint: 'we_missing'"}},
			{"mandate budget", apptest.Req{Method: "POST", Path: "/v1/mandates", Key: s.key, Body: mandateBody(map[string]any{"budget": -1})},
				wireError{400, "invalid_request_error", "parameter_invalid", "budget", "budget must be between 1 and 999999999999 (minor units of the currency)."}},
			{"mandate currency", apptest.Req{Method: "POST", Path: "/v1/mandates", Key: s.key, Body: mandateBody(map[string]any{"currency": "xyz"})},
				wireError{400, "invalid_request_error", "parameter_invalid", "currency", "currency \"XYZ\" is not a supported ISO 4217 currency code."}},
			{"mandate missing", apptest.Req{Method: "POST", Path: "/v1/mandates", Key: s.key, Body: mandateBody(map[string]any{"agent": nil})},
				wireError{400, "invalid_request_error", "parameter_missing", "agent", "agent is required: the client id of the agent that may spend."}},
			{"mandate state", apptest.Req{Method: "POST", Path: "/v1/mandates/" + mandate + "/resume", Key: s.key},
				wireError{409, "invalid_request_error", "mandate_active", "id", "Cannot resume mandate {mandate}: it is active."}},
			{"agent revoked", apptest.Req{Method: "POST", Path: "/v1/agents/" + gone + "/resume", Key: s.key},
				wireError{409, "invalid_request_error", "agent_revoked", "id", "The agent {gone} is revoked."}},
			{"key type", apptest.Req{Method: "POST", Path: "/v1/api_keys", Key: s.key, Body: map[string]any{"type": "master"}},
				wireError{400, "invalid_request_error", "parameter_invalid", "type", "Type must be one of secret, publishable, restricted."}},
			{"key scopes", apptest.Req{Method: "POST", Path: "/v1/api_keys", Key: s.key, Body: map[string]any{"type": "restricted"}},
				wireError{400, "invalid_request_error", "parameter_missing", "scopes", "A restricted key needs at least one scope."}},
			{"key mode", apptest.Req{Method: "POST", Path: "/v1/api_keys", Key: s.key, Body: map[string]any{"type": "secret", "mode": "live"}},
				wireError{403, "permission_error", "mode_mismatch", "mode", "A test-mode key cannot act on live-mode keys."}},
			{"key not active", apptest.Req{Method: "POST", Path: "/v1/api_keys/" + spent + "/roll", Key: s.key},
				wireError{400, "invalid_request_error", "api_key_not_active", "id", "The key {spent} is revoked, expired or already rolled."}},
			{"domain unproven", apptest.Req{Method: "POST", Path: "/v1/merchants/" + shop + "/domains/pinshop.example/verify", Key: mk},
				wireError{400, "invalid_request_error", "domain_challenge_missing", "domain", "No challenge for pinshop.example yet: POST /v1/merchants/{shop}/domains/pinshop.example/challenge first."}},
			{"domain unclaimed", apptest.Req{Method: "POST", Path: "/v1/merchants/" + shop + "/domains/other.example/verify", Key: mk},
				wireError{404, "invalid_request_error", "resource_missing", "domain", "Merchant {shop} does not claim other.example: add it to the profile's domains (POST /v1/merchants) first."}},
			{"mandate not found", apptest.Req{Method: "GET", Path: "/v1/mandates/mdt_missing", Key: s.key},
				wireError{404, "invalid_request_error", "resource_missing", "id", "No such mandate: 'mdt_missing'"}},
			{"merchant mcc", apptest.Req{Method: "POST", Path: "/v1/merchants", Key: s.key, Body: map[string]any{
				"display_name": "Shop", "mcc": "12", "country": "US"}},
				wireError{400, "invalid_request_error", "parameter_invalid", "mcc", "mcc must be an ISO 18245 merchant category code (4 digits)."}},
			{"merchant country", apptest.Req{Method: "POST", Path: "/v1/merchants", Key: s.key, Body: map[string]any{
				"display_name": "Shop", "mcc": "5942", "country": "XX"}},
				wireError{400, "invalid_request_error", "parameter_invalid", "country", "country \"XX\" is not an ISO 3166-1 alpha-2 code."}},
			{"agent charge payment method", apptest.Req{Method: "POST", Path: "/v1/charges", Key: tok,
				Header: map[string]string{"Idempotency-Key": "pin-1"}, Body: map[string]any{
					"amount": 100, "currency": "USD", "payment_method": "card_1", "merchant": s.merchant}},
				wireError{400, "invalid_request_error", "parameter_invalid", "payment_method", "payment_method must be a card token id (tok_…)."}},
			{"agent charge merchant", apptest.Req{Method: "POST", Path: "/v1/charges", Key: tok,
				Header: map[string]string{"Idempotency-Key": "pin-2"}, Body: map[string]any{
					"amount": 100, "currency": "USD", "payment_method": s.card, "merchant": "acct_missing"}},
				wireError{400, "invalid_request_error", "resource_missing", "merchant", "No such merchant: 'acct_missing'."}},
			{"agent charge amount", apptest.Req{Method: "POST", Path: "/v1/charges", Key: tok,
				Header: map[string]string{"Idempotency-Key": "pin-3"}, Body: map[string]any{
					"amount": -5, "currency": "USD", "payment_method": s.card, "merchant": s.merchant}},
				wireError{400, "invalid_request_error", "parameter_invalid", "amount", "amount must be a positive integer in the currency's minor units (e.g. 1050 for 10.50 USD)."}},
			{"agent charge currency", apptest.Req{Method: "POST", Path: "/v1/charges", Key: tok,
				Header: map[string]string{"Idempotency-Key": "pin-4"}, Body: map[string]any{
					"amount": 100, "currency": "XYZ", "payment_method": s.card, "merchant": s.merchant}},
				wireError{400, "invalid_request_error", "invalid_currency", "currency", "Invalid currency: \"XYZ\" is not a supported ISO 4217 code."}},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				got := seen(n.Do(t, tc.req), placeholders)
				assert.Equal(t, tc.want, got, "on the wire: %s", got)
			})
		}

		t.Run("processor down", func(t *testing.T) {
			r := n.Do(t, apptest.Req{Method: "POST", Path: "/v1/charges", Key: s.key, Header: map[string]string{"Idempotency-Key": "pin-auth"},
				Body: map[string]any{"amount": 100, "currency": "usd", "payment_method": s.card, "capture": false}})
			require.Equal(t, 200, r.Status, string(r.Body))
			n.App.Simulator.InjectFault(payments.OpCapture, payments.FaultError, 3)
			r = n.Do(t, apptest.Req{Method: "POST", Path: "/v1/charges/" + r.JSON["id"].(string) + "/capture", Key: s.key,
				Header: map[string]string{"Idempotency-Key": "pin-capture"}})
			assert.Equal(t, wireError{503, "api_error", "processor_unavailable", "", "The card processor did not answer. Nothing was changed; retry the request."}, seen(r, nil))
			assert.Equal(t, "1", r.Header.Get("Retry-After"))
		})

		// authorization_details refused at the token endpoint keep RFC 6749's shape.
		for _, tc := range []struct{ name, details, want string }{
			{"details type", `[{"type":"payment_order"}]`, "400 invalid_authorization_details: authorization_details[0]: unknown type 'payment_order' (supported: [payment_mandate])"},
			{"details mandate", `[{"type":"payment_mandate","mandate_id":"mdt_missing"}]`, "400 invalid_authorization_details: authorization_details[0]: no such mandate: mdt_missing"},
			{"details json", `[{"type":"payment_mandate"`, "400 invalid_authorization_details: authorization_details must be a JSON array of objects"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				code, body, _ := postForm(t, n, formReq{path: "/oauth2/token", basic: [2]string{s.agent, s.secret}, form: url.Values{
					"grant_type": {"client_credentials"}, "scope": {"charges:write"}, "authorization_details": {tc.details}}})
				got := fmt.Sprintf("%d %v: %v", code, body["error"], body["error_description"])
				assert.Equal(t, tc.want, got)
			})
		}

		lists := []struct {
			path, key string
		}{
			{"/v1/agents", s.key},
			{"/v1/charges", s.key},
			{"/v1/merchant/charges", mk},
			{"/v1/events", s.key},
			{"/v1/events/" + event + "/attempts", s.key},
			{"/v1/mandates", s.key},
			{"/v1/mandates/" + mandate + "/events", s.key},
			{"/v1/merchants", s.key},
			{"/v1/webhook_endpoints/" + endpoint + "/attempts", s.key},
		}
		badLimit := wireError{400, "invalid_request_error", "parameter_invalid", "limit", "limit must be an integer between 1 and 100."}
		for _, l := range lists {
			for _, v := range []string{"0", "101", "-1", "ten", "1.5"} {
				t.Run("limit "+v+" "+l.path, func(t *testing.T) {
					got := seen(n.Do(t, apptest.Req{Method: "GET", Path: l.path + "?limit=" + url.QueryEscape(v), Key: l.key}), nil)
					assert.Equal(t, badLimit, got, "on the wire: %s", got)
				})
			}
		}
	})
}

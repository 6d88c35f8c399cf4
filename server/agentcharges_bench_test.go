package server_test

import (
	"fmt"
	"net/url"
	"testing"

	"github.com/perfectpay/perfectpay/accounts"
	"github.com/perfectpay/perfectpay/app/apptest"
	"github.com/perfectpay/perfectpay/authz"
)

// BenchmarkAgentChargeInProcess is one agent charge end to end in one
// process on the memory store (HTTP handler, idempotency, token check,
// decision, charge transaction, simulated acquirer, result transaction):
// the server's own CPU per charge without PostgreSQL or a network, which a
// busy machine disturbs much less than the e2e benchmark.
//
//	go test ./server/ -run '^$' -bench AgentChargeInProcess -benchtime 3000x -count 5 -cpu 1
func BenchmarkAgentChargeInProcess(b *testing.B) {
	n := apptest.New(b, "memory")
	tb, key := n.Tenant(b)
	must := func(r *apptest.Response, want int) map[string]any {
		if r.Status != want {
			b.Fatalf("setup: %d %s", r.Status, r.Body)
		}
		return r.JSON
	}
	card := must(n.Do(b, apptest.Req{Method: "POST", Path: "/v1/tokens", Key: apptest.Key(tb, accounts.KindPublishable, accounts.ModeTest),
		Body: cardBody("4242424242424242", "123")}), 200)["id"].(string)
	_, mk := n.Tenant(b)
	merchant := must(n.Do(b, apptest.Req{Method: "POST", Path: "/v1/merchants", Key: mk, Body: map[string]any{
		"display_name": "Acme Books", "mcc": "5942", "country": "US", "domains": []string{"acmebooks.example"}}}), 201)["id"].(string)
	agent, secret := secretAgent(b, n, key, map[string]any{"grant_types": []string{authz.GrantClientCredentials}, "scopes": []string{"charges:write"}})
	m := must(n.Do(b, apptest.Req{Method: "POST", Path: "/v1/mandates", Key: key, Body: map[string]any{
		"agent": agent, "payer": "self", "currency": "USD", "budget": 90_000_000, "max_amount_per_charge": 90_000_000,
		"approval_threshold": 90_000_000, "payment_methods": []string{card}, "allowed_merchants": []string{merchant}}}), 201)["id"].(string)
	code, form, _ := postForm(b, n, formReq{path: "/oauth2/token", basic: [2]string{agent, secret}, form: url.Values{
		"grant_type": {"client_credentials"}, "scope": {"charges:write"},
		"authorization_details": {fmt.Sprintf(`[{"type":"payment_mandate","mandate_id":%q}]`, m)}}})
	if code != 200 {
		b.Fatalf("token: %d %v", code, form)
	}
	tok := form["access_token"].(string)
	body := map[string]any{"amount": 100, "currency": "USD", "payment_method": card, "merchant": merchant,
		"description": "printer paper"}
	i := 0
	for b.Loop() {
		i++
		r := n.Do(b, apptest.Req{Method: "POST", Path: "/v1/charges", Key: tok, Body: body,
			Header: map[string]string{"Idempotency-Key": fmt.Sprintf("bench-k%dx", i)}})
		if r.Status != 200 {
			b.Fatalf("charge %d: %d %s", i, r.Status, r.Body)
		}
	}
}

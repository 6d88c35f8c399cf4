package server_test

import (
	"fmt"
	"net/url"
	"syscall"
	"testing"
	"time"

	"github.com/perfectpay/perfectpay/abuse"
	"github.com/perfectpay/perfectpay/accounts"
	"github.com/perfectpay/perfectpay/app"
	"github.com/perfectpay/perfectpay/app/apptest"
	"github.com/perfectpay/perfectpay/authz"
)

// BenchmarkAgentChargeDefences is BenchmarkAgentChargeInProcess with every
// abuse and fraud defence off, then on (rate limits, auth-failure guard,
// card-testing detector, velocity windows, anomaly detector, rules
// screener), in the same run. The limits and thresholds are set high
// enough never to trip: the figure is what checking them costs. Off and
// on alternate, five rounds, so a machine's changing load falls on both;
// cpu-ns/op is the process's CPU time (user + system) per charge, which
// other processes on a busy machine disturb far less than wall time.
//
//	go test ./server/ -run '^$' -bench AgentChargeDefences -benchtime 2000x -cpu 1
func BenchmarkAgentChargeDefences(b *testing.B) {
	high := abuse.Limit{Rate: 1_000_000, Per: time.Second, Burst: 1_000_000}
	for i := range 10 {
		on := i%2 == 1
		name := "off"
		if on {
			name = "on"
		}
		b.Run(name, func(b *testing.B) {
			n := apptest.New(b, "memory", func(c *app.Config) {
				if !on {
					return
				}
				c.Abuse.Enabled = true
				c.Abuse.Limits = abuse.Limits{IP: high, Key: high, Agent: high, TokenClient: high, Tokenize: high, Charge: high}
				c.Fraud.Enabled = true
				for i := range c.Fraud.VelocityLimits {
					c.Fraud.VelocityLimits[i].Limit = 1_000_000_000
				}
			})
			chargeLoop(b, n, nil)
		})
	}
}

// agentChargeSetup makes a tenant, a card, a merchant, an agent and a
// mandate large enough for any benchmark, and returns the agent's token
// and the body of a charge of amount on them.
func agentChargeSetup(tb testing.TB, n *apptest.Node, amount int) (string, map[string]any) {
	boot, key := n.Tenant(tb)
	must := func(r *apptest.Response, want int) map[string]any {
		if r.Status != want {
			tb.Fatalf("setup: %d %s", r.Status, r.Body)
		}
		return r.JSON
	}
	card := must(n.Do(tb, apptest.Req{Method: "POST", Path: "/v1/tokens", Key: apptest.Key(boot, accounts.KindPublishable, accounts.ModeTest),
		Body: cardBody("4242424242424242", "123")}), 200)["id"].(string)
	_, mk := n.Tenant(tb)
	merchant := must(n.Do(tb, apptest.Req{Method: "POST", Path: "/v1/merchants", Key: mk, Body: map[string]any{
		"display_name": "Acme Books", "mcc": "5942", "country": "US", "domains": []string{"acmebooks.example"}}}), 201)["id"].(string)
	agent, secret := secretAgent(tb, n, key, map[string]any{"grant_types": []string{authz.GrantClientCredentials}, "scopes": []string{"charges:write"}})
	m := must(n.Do(tb, apptest.Req{Method: "POST", Path: "/v1/mandates", Key: key, Body: map[string]any{
		"agent": agent, "payer": "self", "currency": "USD", "budget": 90_000_000, "max_amount_per_charge": 90_000_000,
		"approval_threshold": 90_000_000, "payment_methods": []string{card}, "allowed_merchants": []string{merchant}}}), 201)["id"].(string)
	code, form, _ := postForm(tb, n, formReq{path: "/oauth2/token", basic: [2]string{agent, secret}, form: url.Values{
		"grant_type": {"client_credentials"}, "scope": {"charges:write"},
		"authorization_details": {fmt.Sprintf(`[{"type":"payment_mandate","mandate_id":%q}]`, m)}}})
	if code != 200 {
		tb.Fatalf("token: %d %v", code, form)
	}
	return form["access_token"].(string), map[string]any{"amount": amount, "currency": "USD", "payment_method": card,
		"merchant": merchant, "description": "printer paper"}
}

// chargeOK makes the i-th charge of a benchmark (its own
// Idempotency-Key) and stops the benchmark unless it succeeded.
func chargeOK(b *testing.B, n *apptest.Node, tok string, body map[string]any, i int) {
	r := n.Do(b, apptest.Req{Method: "POST", Path: "/v1/charges", Key: tok, Body: body,
		Header: map[string]string{"Idempotency-Key": fmt.Sprintf("bench-k%dx", i)}})
	if r.Status != 200 {
		b.Fatalf("charge %d: %d %s", i, r.Status, r.Body)
	}
}

// chargeLoop makes one charge per iteration and reports the process's CPU
// per charge. With warmed non-nil, 300 charges go first, then warmed runs.
func chargeLoop(b *testing.B, n *apptest.Node, warmed func()) {
	tok, body := agentChargeSetup(b, n, 2500)
	i := 0
	if warmed != nil {
		for ; i < 300; i++ {
			chargeOK(b, n, tok, body, i+1)
		}
		warmed()
	}
	var ru0, ru1 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	for b.Loop() {
		i++
		chargeOK(b, n, tok, body, i)
	}
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	cpu := time.Duration(ru1.Utime.Nano()-ru0.Utime.Nano()) + time.Duration(ru1.Stime.Nano()-ru0.Stime.Nano())
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(i), "cpu-ns/op")
}

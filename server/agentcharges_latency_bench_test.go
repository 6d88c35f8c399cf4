package server_test

import (
	"fmt"
	"net/url"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/perfectpay/perfectpay/accounts"
	"github.com/perfectpay/perfectpay/app/apptest"
	"github.com/perfectpay/perfectpay/authz"
)

// BenchmarkAgentChargeLatency64 is the latency of agent charges at 64
// concurrent clients, in one process (HTTP handler over loopback to an
// httptest server), on each store: each client charges its own mandate,
// so no two wait on one mandate row. It reports p50, p99 and p99.9.
//
//	go test ./server/ -run '^$' -bench AgentChargeLatency64 -benchtime 3000x
func BenchmarkAgentChargeLatency64(b *testing.B) {
	for _, driver := range apptest.Drivers {
		b.Run(driver, func(b *testing.B) {
			const clients = 64
			n := apptest.New(b, driver)
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
			toks := make([]string, clients)
			for i := range toks {
				m := must(n.Do(b, apptest.Req{Method: "POST", Path: "/v1/mandates", Key: key, Body: map[string]any{
					"agent": agent, "payer": "self", "currency": "USD", "budget": 90_000_000, "max_amount_per_charge": 90_000_000,
					"approval_threshold": 90_000_000, "payment_methods": []string{card}, "allowed_merchants": []string{merchant}}}), 201)["id"].(string)
				code, form, _ := postForm(b, n, formReq{path: "/oauth2/token", basic: [2]string{agent, secret}, form: url.Values{
					"grant_type": {"client_credentials"}, "scope": {"charges:write"},
					"authorization_details": {fmt.Sprintf(`[{"type":"payment_mandate","mandate_id":%q}]`, m)}}})
				if code != 200 {
					b.Fatalf("token: %d %v", code, form)
				}
				toks[i] = form["access_token"].(string)
			}
			body := map[string]any{"amount": 100, "currency": "USD", "payment_method": card, "merchant": merchant, "description": "paper"}
			per := max(1, b.N/clients)
			lat := make([][]time.Duration, clients)
			var wg sync.WaitGroup
			b.ResetTimer()
			start := time.Now()
			for c := range clients {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range per {
						t0 := time.Now()
						r := n.Do(b, apptest.Req{Method: "POST", Path: "/v1/charges", Key: toks[c], Body: body,
							Header: map[string]string{"Idempotency-Key": fmt.Sprintf("lat-%d-%dx", c, i)}})
						lat[c] = append(lat[c], time.Since(t0))
						if r.Status != 200 {
							b.Errorf("charge: %d %s", r.Status, r.Body)
							return
						}
					}
				}()
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			all := slices.Concat(lat...)
			slices.Sort(all)
			q := func(p float64) float64 {
				return float64(all[min(len(all)-1, int(p*float64(len(all))))].Microseconds()) / 1000
			}
			b.ReportMetric(float64(len(all))/elapsed.Seconds(), "charges/s")
			b.ReportMetric(q(0.50), "p50_ms")
			b.ReportMetric(q(0.99), "p99_ms")
			b.ReportMetric(q(0.999), "p99.9_ms")
		})
	}
}

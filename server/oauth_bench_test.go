package server_test

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/perfectpay/perfectpay/app"
	"github.com/perfectpay/perfectpay/app/apptest"
	"github.com/perfectpay/perfectpay/authz"
)

// BenchmarkTokenEndpoint measures tokens/s at POST /oauth2/token over real
// HTTP on loopback, client and server in this process (so they share the
// machine's cores), 16 concurrent clients. Client-side signing of
// assertions happens before the timer starts.
func BenchmarkTokenEndpoint(b *testing.B) {
	for _, driver := range apptest.Drivers {
		b.Run(driver, func(b *testing.B) {
			n := apptest.New(b, driver, func(c *app.Config) { c.Log.Level = "error" })
			_, key := n.Tenant(b)
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
			tokenURL := n.URL + "/oauth2/token"
			post := func(b *testing.B, form url.Values, id, secret string) {
				req, _ := http.NewRequest("POST", tokenURL, strings.NewReader(form.Encode()))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				if id != "" {
					req.SetBasicAuth(id, secret)
				}
				resp, err := client.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					b.Fatalf("status %d", resp.StatusCode)
				}
			}
			run := func(b *testing.B, fn func(b *testing.B, i int)) {
				var next atomic.Int64
				b.SetParallelism(8)
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						fn(b, int(next.Add(1)-1))
					}
				})
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tokens/s")
			}

			id, secret := secretAgent(b, n, key, map[string]any{
				"grant_types": []string{authz.GrantClientCredentials, authz.GrantTokenExchange}})
			b.Run("client_secret_basic", func(b *testing.B) {
				form := url.Values{"grant_type": {"client_credentials"}}
				run(b, func(b *testing.B, _ int) { post(b, form, id, secret) })
			})

			jid, k := jwtAgent(b, n, key, nil)
			b.Run("private_key_jwt", func(b *testing.B) {
				forms := make([]url.Values, b.N)
				for i := range forms {
					forms[i] = url.Values{"grant_type": {"client_credentials"},
						"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
						"client_assertion":      {k.assertion(b, jid, issuer(n)+"/oauth2/token", nil)}}
				}
				run(b, func(b *testing.B, i int) { post(b, forms[i], "", "") })
			})

			b.Run("token_exchange", func(b *testing.B) {
				sub, err := jwtToken(b, n, jid, k, url.Values{"scope": {"charges:read charges:write"}})
				if err != nil {
					b.Fatal(err)
				}
				form := url.Values{"grant_type": {authz.GrantTokenExchange}, "subject_token": {sub.AccessToken},
					"subject_token_type": {authz.TokenTypeAccessToken}, "scope": {"charges:write"}}
				run(b, func(b *testing.B, _ int) { post(b, form, id, secret) })
			})
		})
	}
}

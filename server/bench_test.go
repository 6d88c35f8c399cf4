package server_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/perfectpay/perfectpay/app"
	"github.com/perfectpay/perfectpay/app/apptest"
)

// Benchmarks of the foundation over loopback HTTP (httptest server, keep-
// alive client, 16 concurrent clients). The reported req/s is the figure
// written to BENCHMARKS.md.
func benchHTTP(b *testing.B, driver string, mk func(i int64, key string) *http.Request) {
	n := apptest.New(b, driver, func(c *app.Config) { c.Log.Level = "error" })
	_, sk := n.Tenant(b)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	var seq atomic.Int64
	b.SetParallelism(8) // 8 × GOMAXPROCS(2) = 16 clients
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req := mk(seq.Add(1), sk)
			req.URL.Scheme, req.URL.Host = "http", n.HTTP.Listener.Addr().String()
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode >= 300 {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
}

func BenchmarkAuthenticatedGET(b *testing.B) {
	for _, d := range apptest.Drivers {
		b.Run(d, func(b *testing.B) {
			benchHTTP(b, d, func(_ int64, key string) *http.Request {
				r, _ := http.NewRequest("GET", "http://x/v1/tenant", nil)
				r.Header.Set("Authorization", "Bearer "+key)
				return r
			})
		})
	}
}

// BenchmarkIdempotentAuditedPOST creates a restricted key per request with
// a fresh Idempotency-Key: claim + key insert + audit entry + stored
// response + access audit entry.
func BenchmarkIdempotentAuditedPOST(b *testing.B) {
	for _, d := range apptest.Drivers {
		b.Run(d, func(b *testing.B) {
			benchHTTP(b, d, func(i int64, key string) *http.Request {
				r, _ := http.NewRequest("POST", "http://x/v1/api_keys", bytes.NewReader([]byte(`{"type":"restricted","scopes":["charges:read"]}`)))
				r.Header.Set("Authorization", "Bearer "+key)
				r.Header.Set("Content-Type", "application/json")
				r.Header.Set("Idempotency-Key", fmt.Sprintf("bench-%s-%d", randID(), i)) // no long digit run (card number guard)
				return r
			})
		})
	}
}

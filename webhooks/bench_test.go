package webhooks_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/internal/egress"
	"github.com/perfectpay/perfectpay/webhooks"
)

// BenchmarkDispatch measures end-to-end deliveries per second to a local
// receiver (HTTP/1.1 keep-alive on loopback, answering 204 at once): emit
// b.N events into the outbox, then let a running dispatcher (concurrency
// 16, batch 100) claim, sign, send and record them all.
func BenchmarkDispatch(b *testing.B) {
	for _, backend := range backends {
		b.Run(backend, func(b *testing.B) {
			h := newHarness(b, backend, func(_ *egress.Policy, o *webhooks.DispatcherOptions) {
				o.Concurrency, o.BatchSize = 16, 100
			})
			rc := newReceiver(b, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
			h.endpoint(rc.srv.URL)
			for range b.N {
				h.emit("test.ping")
			}
			o := h.opts
			o.Clock, o.Interval, o.Concurrency, o.BatchSize = webhooks.SystemClock{}, 5*time.Millisecond, 16, 100
			d := webhooks.NewDispatcher(h.db, o)
			b.ResetTimer()
			start := time.Now()
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { d.Run(ctx); close(done) }()
			for rc.count() < b.N {
				time.Sleep(time.Millisecond)
			}
			elapsed := time.Since(start)
			b.StopTimer()
			cancel()
			<-done
			require.GreaterOrEqual(b, rc.count(), b.N)
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "deliveries/s")
		})
	}
}

package charging_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/perfectpay/perfectpay/charging"
	"github.com/perfectpay/perfectpay/store/pgtest"
)

// BenchmarkHotMandateCharges measures agent charges per second on one
// mandate through the pipeline on PostgreSQL (no HTTP: the service with
// an approving processor), 16 concurrent clients, with grouping off
// (group_max 1) and on (the default), and how many charges a group
// transaction held on average.
//
//	go test ./charging/ -run '^$' -bench HotMandateCharges -benchtime 2000x
func BenchmarkHotMandateCharges(b *testing.B) {
	for _, groupMax := range []int{1, charging.DefaultGroupMax} {
		b.Run(fmt.Sprintf("group_max=%d", groupMax), func(b *testing.B) {
			pg := pgtest.NewStore(b)
			w := newGroupWorld(b, pg, pg, groupMax)
			m := w.mandate(b, 1<<50)
			tok := w.token(m.ID)
			ctx := context.Background()
			var next, failed atomic.Int64
			b.SetParallelism(16)
			b.ResetTimer()
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					req, err := w.s.NewRequest(charging.RawRequest{Amount: 1, Currency: "usd", PaymentMethod: w.cards[0],
						MerchantID: w.merch, Capture: true, IdempotencyKey: fmt.Sprintf("k%d", next.Add(1))})
					if err == nil {
						_, err = w.s.Charge(ctx, tok, req)
					}
					if err != nil && failed.Add(1) == 1 {
						b.Errorf("charge: %v", err)
					}
				}
			})
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "charges/s")
			st := w.s.GroupStats()
			b.ReportMetric(float64(st.Members)/float64(b.N), "grouped-fraction")
			if st.Transactions > 0 {
				b.ReportMetric(float64(st.Members)/float64(st.Transactions), "members/group")
			}
		})
	}
}

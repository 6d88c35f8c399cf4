package memory

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/events"
	"github.com/perfectpay/perfectpay/webhooks"
)

// TestDeliveryListsMatchTheTable lists each event's deliveries through the
// store's lists after fan-outs, deliveries created one by one, claims,
// completions and cancellations, each also rolled back once, and compares
// them with the deliveries themselves filtered and sorted.
func TestDeliveryListsMatchTheTable(t *testing.T) {
	tenants := []string{"ten_a", "ten_b"}
	s, in := tenantStore(t, tenants...)
	ctx := context.Background()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	in(nil, func(tx *Tx) {
		for i, tn := range tenants {
			for k := range 3 {
				require.NoError(t, tx.CreateEndpoint(ctx, &webhooks.Endpoint{ID: fmt.Sprintf("we_%d_%d", i, k), TenantID: tn,
					Events: []string{webhooks.WildcardEvents}, Status: webhooks.EndpointEnabled, CreatedAt: t0}))
			}
		}
	})
	n := 0
	enqueue := func(count int, err error) {
		if err != nil {
			defer func(old int) { n = old }(n)
		}
		in(err, func(tx *Tx) {
			for range count {
				at := t0.Add(time.Duration(n/2) * time.Second)
				e := &events.Event{ID: fmt.Sprintf("evt_%03d", n), TenantID: tenants[n%2], Type: "charge.succeeded", CreatedAt: at}
				require.NoError(t, tx.EnqueueEvent(ctx, e))
				for k := range n % 3 {
					require.NoError(t, tx.CreateDelivery(ctx, &webhooks.Delivery{ID: fmt.Sprintf("whd_%03d_%d", n, k),
						TenantID: e.TenantID, EventID: e.ID, EndpointID: "we_x", Status: webhooks.DeliveryPending,
						NextAttemptAt: at, CreatedAt: at.Add(-time.Duration(k) * time.Millisecond), UpdatedAt: at}))
				}
				n++
			}
		})
	}
	settle := func(limit int, err error) {
		in(err, func(tx *Tx) {
			claimed, cerr := tx.ClaimDeliveries(ctx, t0.Add(time.Hour), t0.Add(2*time.Hour), limit, "tok")
			require.NoError(t, cerr)
			for i, c := range claimed {
				d := c.Delivery
				d.Status = []string{webhooks.DeliverySucceeded, webhooks.DeliveryPending}[i%2]
				ok, derr := tx.CompleteDelivery(ctx, &d)
				require.NoError(t, derr)
				require.True(t, ok)
			}
			_, cerr = tx.CancelDeliveries(ctx, "ten_b", "we_1_1", "endpoint deleted", t0.Add(time.Hour))
			require.NoError(t, cerr)
		})
	}
	enqueue(20, nil)
	enqueue(10, errRolledBack)
	settle(15, nil)
	settle(30, errRolledBack)
	enqueue(15, nil)
	settle(10, nil)

	w := &s.d.webhooks
	var all []webhooks.Delivery
	for _, d := range w.deliveries {
		all = append(all, d)
	}
	slices.SortFunc(all, func(a, b webhooks.Delivery) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), strings.Compare(a.ID, b.ID))
	})
	require.Len(t, all, 35*3+(12*0+12*1+11*2))
	total := 0
	for _, l := range w.byEvent {
		total += len(l)
	}
	require.Equal(t, len(all), total, "the lists hold every delivery once")

	in(nil, func(tx *Tx) {
		for i := range n + 2 {
			for _, tn := range tenants {
				ev := fmt.Sprintf("evt_%03d", i)
				var want []webhooks.Delivery
				for _, d := range all {
					if d.TenantID == tn && d.EventID == ev {
						want = append(want, cloneDelivery(d))
					}
				}
				got, err := tx.ListDeliveries(ctx, tn, ev)
				require.NoError(t, err)
				require.Equal(t, want, got, "%s of %s", ev, tn)
			}
		}
	})
}

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
	"github.com/perfectpay/perfectpay/store"
	"github.com/perfectpay/perfectpay/webhooks"
)

// TestFanOutMatchesTheTable queues events of each tenant and type through
// the store's lists of endpoints after creates, updates (of status,
// subscriptions and health), an update that tries to move an endpoint to
// another tenant, deletes and an id deleted and created again for another
// tenant, each also rolled back once, and compares the deliveries with
// the endpoints themselves filtered, in the order they were created; and
// ListEndpoints with the endpoints filtered and sorted.
func TestFanOutMatchesTheTable(t *testing.T) {
	tenants := []string{"ten_a", "ten_b", "ten_c"}
	s, in := tenantStore(t, tenants...)
	ctx := context.Background()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	// created is every endpoint id in the order it was created, as the
	// test saw it committed.
	var created []string
	n := 0
	create := func(count int, err error) {
		if err != nil {
			defer func(old int, oldCreated []string) { n, created = old, oldCreated }(n, created)
		}
		in(err, func(tx *Tx) {
			for range count {
				i := n
				n++
				ep := &webhooks.Endpoint{ID: fmt.Sprintf("we_%03d", i), TenantID: tenants[i%3], URL: "https://example.com",
					Events:    [][]string{{webhooks.WildcardEvents}, {"charge.succeeded"}, {"refund.created", "charge.failed"}}[i%3/2+i%2],
					Status:    webhooks.EndpointEnabled,
					CreatedAt: t0.Add(time.Duration(i%4) * time.Second)}
				require.NoError(t, tx.CreateEndpoint(ctx, ep))
				created = append(created, ep.ID)
			}
		})
	}
	update := func(k int, err error) {
		in(err, func(tx *Tx) {
			for j, id := range created {
				if j%k != 0 {
					continue
				}
				e := cloneEndpoint(tx.d.webhooks.endpoints[id])
				switch j / k % 4 {
				case 0:
					_, derr := tx.DisableEndpoint(ctx, e.TenantID, id, "failing", t0)
					require.NoError(t, derr)
				case 1:
					e.Events = []string{"charge.failed"}
					require.NoError(t, tx.UpdateEndpoint(ctx, &e))
				case 2:
					e.Status = webhooks.EndpointEnabled
					e.Events = []string{webhooks.WildcardEvents}
					require.NoError(t, tx.UpdateEndpoint(ctx, &e))
				case 3:
					_, merr := tx.MarkEndpointFailing(ctx, id, t0)
					require.NoError(t, merr)
				}
				// The store refuses to move an endpoint to another tenant.
				e.TenantID = tenants[(slices.Index(tenants, e.TenantID)+1)%3]
				require.ErrorIs(t, tx.UpdateEndpoint(ctx, &e), store.ErrNotFound)
			}
		})
	}
	remove := func(k int, err error) {
		if err != nil {
			defer func(oldCreated []string) { created = oldCreated }(created)
		}
		in(err, func(tx *Tx) {
			var kept []string
			for j, id := range created {
				if j%k == 1 {
					require.NoError(t, tx.DeleteEndpoint(ctx, tx.d.webhooks.endpoints[id].TenantID, id))
				} else {
					kept = append(kept, id)
				}
			}
			created = kept
		})
	}
	create(30, nil)
	create(10, errRolledBack)
	update(2, nil)
	update(3, errRolledBack)
	remove(5, errRolledBack)
	remove(4, nil)
	create(12, nil)
	update(5, nil)
	// An id deleted, then created again for another tenant.
	in(nil, func(tx *Tx) {
		e := tx.d.webhooks.endpoints[created[0]]
		require.NoError(t, tx.DeleteEndpoint(ctx, e.TenantID, e.ID))
		e.TenantID = tenants[(slices.Index(tenants, e.TenantID)+1)%3]
		require.NoError(t, tx.CreateEndpoint(ctx, &e))
		created = append(created[1:], e.ID)
	})
	in(errRolledBack, func(tx *Tx) {
		e := tx.d.webhooks.endpoints[created[1]]
		require.NoError(t, tx.DeleteEndpoint(ctx, e.TenantID, e.ID))
		e.TenantID = tenants[(slices.Index(tenants, e.TenantID)+2)%3]
		require.NoError(t, tx.CreateEndpoint(ctx, &e))
	})

	w := &s.d.webhooks
	require.Len(t, w.endpoints, len(created))
	total := 0
	for tn, l := range w.byTenant {
		require.Len(t, slices.Compact(slices.Sorted(slices.Values(l))), len(l), "%s lists an endpoint twice", tn)
		total += len(l)
	}
	require.Equal(t, len(w.endpoints), total, "the lists hold every endpoint once")
	statuses := map[string]int{}
	for _, e := range w.endpoints {
		statuses[e.Status]++
	}
	require.Positive(t, statuses[webhooks.EndpointEnabled])
	require.Positive(t, statuses[webhooks.EndpointDisabled])

	ev := 0
	in(nil, func(tx *Tx) {
		for _, tn := range append(tenants, "ten_none") {
			for _, typ := range []string{"charge.succeeded", "charge.failed", "refund.created", "payout.paid"} {
				var want []string
				for _, id := range created {
					e := w.endpoints[id]
					if e.TenantID == tn && e.Status == webhooks.EndpointEnabled && e.Subscribed(typ) {
						want = append(want, id)
					}
				}
				e := &events.Event{ID: fmt.Sprintf("evt_%03d", ev), TenantID: tn, Type: typ, CreatedAt: t0}
				ev++
				require.NoError(t, tx.EnqueueEvent(ctx, e))
				var got []string
				for _, id := range w.byEvent[e.ID] {
					d := w.deliveries[id]
					require.Equal(t, e.ID, d.EventID)
					require.Equal(t, tn, d.TenantID)
					got = append(got, d.EndpointID)
				}
				require.Equal(t, want, got, "%s %s", tn, typ)
				if tn != "ten_none" && typ != "payout.paid" {
					require.NotEmpty(t, got, "%s %s", tn, typ)
				}
			}

			var want []webhooks.Endpoint
			for _, e := range w.endpoints {
				if e.TenantID == tn {
					want = append(want, cloneEndpoint(e))
				}
			}
			slices.SortFunc(want, func(a, b webhooks.Endpoint) int {
				return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), strings.Compare(a.ID, b.ID))
			})
			got, err := tx.ListEndpoints(ctx, tn)
			require.NoError(t, err)
			require.Equal(t, want, got, tn)
		}
	})
}

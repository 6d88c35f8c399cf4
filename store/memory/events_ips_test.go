package memory

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/events"
	"github.com/perfectpay/perfectpay/payments"
)

// forgetEventIPsByScan is what ForgetEventIPs did before eventIPs: every
// event of the table read and decoded; the events it changes are those
// whose "object" holds an "ip" and names the person as its "user", a JSON
// string, and they keep every other member. It returns the new data of
// the events it changes.
func forgetEventIPsByScan(t *testing.T, evs map[string]events.Event, tenantID, userID string) map[string][]byte {
	out := map[string][]byte{}
	for id, e := range evs {
		if e.TenantID != tenantID {
			continue
		}
		var top, object map[string]json.RawMessage
		if json.Unmarshal(e.Data, &top) != nil || json.Unmarshal(top["object"], &object) != nil || object["ip"] == nil {
			continue
		}
		var user any
		if json.Unmarshal(object["user"], &user) != nil || user != any(userID) {
			continue
		}
		delete(object, "ip")
		b, err := json.Marshal(object)
		require.NoError(t, err)
		top["object"] = b
		b, err = json.Marshal(top)
		require.NoError(t, err)
		out[id] = b
	}
	return out
}

// TestEventIPIndexMatchesTheTable keeps eventIPs through the outbox's
// writes (charges' events; sign-ins' with an "ip" and a "user", of two
// tenants, of users whose id starts another's, some beside other members;
// objects with an "ip" of null, an "ip" but no "user" or a "user" that is
// a number, null or true, a "user" but no "ip", an "ip" deeper down, a
// key written with escapes, an "OBJECT", a "user" outside the object;
// data that is no JSON) and erasures, each also rolled back once. It then
// checks the index lists, for each person, exactly the events of the
// table an erasure by a scan changes, in the order they were written, and
// compares what ForgetEventIPs changes for every person, of each tenant,
// with what the scan changes, data included.
func TestEventIPIndexMatchesTheTable(t *testing.T) {
	ctx := context.Background()
	s, in := tenantStore(t)
	users := []string{"usr_1", "usr_10", "usr_2"}
	tenants := []string{"ten_a", "ten_b"}
	datas := []func(i int, u string) string{
		func(i int, u string) string {
			return fmt.Sprintf(`{"object":{"id":"ch_%d","object":"charge","amount":5}}`, i)
		},
		func(i int, u string) string {
			return fmt.Sprintf(`{"object":{"object":"login","user":%q,"ip":"192.0.2.%d","kind":"payer"}}`, u, i%250)
		},
		func(i int, u string) string { return fmt.Sprintf(`{"object":{"user":%q,"ip":null}}`, u) },
		func(i int, u string) string { return `{"object":{"ip":"192.0.2.1"}}` },
		func(i int, u string) string { return `{"object":{"ip":"192.0.2.1","user":7}}` },
		func(i int, u string) string { return fmt.Sprintf(`{"object":{"user":%q,"new_ip":true}}`, u) },
		func(i int, u string) string {
			return fmt.Sprintf(`{"object":{"user":%q,"card":{"ip":"192.0.2.1"}}}`, u)
		},
		func(i int, u string) string { return fmt.Sprintf(`{"object":{"user":%q,"\u0069p":"192.0.2.1"}}`, u) },
		func(i int, u string) string { return fmt.Sprintf(`{"object":{"user":%q,"i\u0070":"192.0.2.1"}}`, u) },
		func(i int, u string) string { return fmt.Sprintf(`{"OBJECT":{"user":%q,"ip":"192.0.2.1"},"x":1}`, u) },
		func(i int, u string) string { return fmt.Sprintf(`{"object":{"user":%q,"ip":"192.0.2.1"`, u) },
		func(i int, u string) string {
			return fmt.Sprintf(`{"object":{"object":"login","user":%q,"ip":"192.0.2.1","note":"a \u0026 b"}}`, u)
		},
		func(i int, u string) string {
			return fmt.Sprintf(`{"livemode":true,"object":{"user": %q ,"ip":"192.0.2.1"},"x":{"ip":"192.0.2.2"}}`, u)
		},
		func(i int, u string) string { return `{"object":{"user":null,"ip":"192.0.2.1"}}` },
		func(i int, u string) string { return `{"object":{"user":true,"ip":"192.0.2.1"}}` },
		func(i int, u string) string { return fmt.Sprintf(`{"user":%q,"object":{"ip":"192.0.2.1"}}`, u) },
	}
	enqueue := func(from, to int, err error) {
		in(err, func(tx *Tx) {
			for i := from; i < to; i++ {
				data := datas[i%len(datas)](i, users[(i/len(datas))%len(users)])
				require.NoError(t, tx.EnqueueEvent(ctx, &events.Event{ID: fmt.Sprintf("evt_%04d", i),
					TenantID: tenants[(i/7)%2], Type: "x", Data: []byte(data), CreatedAt: benchT0}))
			}
		})
	}
	forget := func(tenantID, userID string, err error) {
		in(err, func(tx *Tx) {
			_, ferr := tx.ForgetEventIPs(ctx, tenantID, userID)
			require.NoError(t, ferr)
		})
	}
	enqueue(0, 200, nil)
	enqueue(200, 260, errRolledBack)
	enqueue(200, 300, nil)
	forget("ten_a", "usr_1", errRolledBack)
	forget("ten_a", "usr_2", nil)
	enqueue(300, 400, nil)
	forget("ten_b", "usr_10", nil)
	enqueue(400, 450, nil)

	position := map[string]int{}
	for i, id := range s.d.eventOrder {
		position[id] = i
	}
	want := map[personKey][]string{}
	total := 0
	for _, tn := range tenants {
		for _, u := range append(slices.Clone(users), "usr_9", "") {
			changed := forgetEventIPsByScan(t, s.d.events, tn, u)
			if len(changed) == 0 {
				continue
			}
			ids := slices.Collect(maps.Keys(changed))
			slices.SortFunc(ids, func(a, b string) int { return cmp.Compare(position[a], position[b]) })
			want[personKey{tn, u}] = ids
			total += len(ids)
		}
	}
	require.Greater(t, total, 40)
	require.Contains(t, want, personKey{"ten_a", "usr_2"}, "events written since the erasure")
	require.Equal(t, want, map[personKey][]string(s.d.people.eventIPs), "the index lists exactly the events an erasure changes")

	for _, tn := range append(slices.Clone(tenants), "ten_c", "") {
		for _, u := range append(slices.Clone(users), "usr_9", "") {
			changed := forgetEventIPsByScan(t, s.d.events, tn, u)
			in(errRolledBack, func(tx *Tx) {
				was := maps.Clone(s.d.events)
				n, err := tx.ForgetEventIPs(ctx, tn, u)
				require.NoError(t, err)
				got := map[string][]byte{}
				for id, e := range s.d.events {
					if !bytes.Equal(e.Data, was[id].Data) {
						got[id] = e.Data
					}
				}
				require.Equal(t, changed, got, "%s/%s", tn, u)
				require.Equal(t, len(changed), n)
				require.NotContains(t, s.d.people.eventIPs, personKey{tn, u})
			})
		}
	}
	require.Equal(t, want, map[personKey][]string(s.d.people.eventIPs), "rolled back erasures leave the index as it was")
}

// benchChargeEvent is the j-th charge event of the event benchmarks, as
// payments emits it.
func benchChargeEvent(b *testing.B, j int) *events.Event {
	c := payments.Charge{ID: fmt.Sprintf("ch_%06d", j), Object: "charge", Status: "succeeded", Amount: 1250,
		AmountCaptured: 1250, Currency: "eur", Captured: true, Paid: true, PaymentMethod: fmt.Sprintf("tok_%06d", j),
		Description: "Order 1", Metadata: map[string]string{"order": fmt.Sprint(j)}, MandateID: "mdt_1",
		AgentID: "agt_1", MerchantID: "acct_1", AuthCode: "123456", Created: benchAt(j)}
	data, err := json.Marshal(map[string]any{"object": c})
	if err != nil {
		b.Fatal(err)
	}
	return &events.Event{ID: fmt.Sprintf("evt_%06d", j), TenantID: "ten_a", Type: "charge.succeeded", Data: data,
		CreatedAt: benchAt(j)}
}

// BenchmarkForgetEventIPs: 100,000 events of a tenant, 99,000 about
// charges and 1,000 suspicious sign-ins of 100 customers, each holding the
// address it came from; one customer's 10 addresses forgotten (an
// erasure), rolled back.
//
//	go test ./store/memory/ -run '^$' -bench ForgetEventIPs
func BenchmarkForgetEventIPs(b *testing.B) {
	ctx := context.Background()
	s := seedStore(b, nil, retentionRows, func(tx *Tx, j int) error {
		e := benchChargeEvent(b, j)
		if j%100 == 0 {
			data, err := json.Marshal(map[string]any{"object": map[string]any{"object": "login",
				"user": fmt.Sprintf("cus_%02d", (j/100)%100), "kind": "payer", "new_ip": true, "new_user_agent": false,
				"ip": "192.0.2.1", "created": benchAt(j)}})
			if err != nil {
				return err
			}
			e.Type, e.Data = "user.suspicious_login", data
		}
		return tx.EnqueueEvent(ctx, e)
	})
	eachRolledBack(b, s, func(tx *Tx) {
		if n, err := tx.ForgetEventIPs(ctx, "ten_a", "cus_42"); err != nil || n != 10 {
			b.Fatalf("forgot %d, %v", n, err)
		}
	})
}

// BenchmarkEnqueueChargeEvent: a charge's event written to the outbox of
// an empty store, rolled back: what an ordinary event costs the store.
//
//	go test ./store/memory/ -run '^$' -bench EnqueueChargeEvent
func BenchmarkEnqueueChargeEvent(b *testing.B) {
	ctx := context.Background()
	s := seedStore(b, nil, 0, nil)
	e := benchChargeEvent(b, 1)
	e.CreatedAt = time.Now()
	eachRolledBack(b, s, func(tx *Tx) {
		if err := tx.EnqueueEvent(ctx, e); err != nil {
			b.Fatal(err)
		}
	})
}

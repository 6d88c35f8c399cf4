package webhooks_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/accounts"
	"github.com/perfectpay/perfectpay/events"
	"github.com/perfectpay/perfectpay/internal/egress"
	"github.com/perfectpay/perfectpay/internal/ids"
	"github.com/perfectpay/perfectpay/store"
	"github.com/perfectpay/perfectpay/store/memory"
	"github.com/perfectpay/perfectpay/store/pgtest"
	"github.com/perfectpay/perfectpay/store/postgres"
	"github.com/perfectpay/perfectpay/webhooks"
	"github.com/perfectpay/perfectpay/webhooks/verify"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// catchUp moves the clock forward to at least t.
func (c *fakeClock) catchUp(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.t.Before(t) {
		c.t = t
	}
}

type harness struct {
	t       testing.TB
	db      store.Runner[webhooks.Tx]
	svc     *webhooks.Service
	disp    *webhooks.Dispatcher
	clock   *fakeClock
	tenant  string
	box     *webhooks.SecretBox
	opts    webhooks.DispatcherOptions
	backend string
}

type harnessOpt func(*egress.Policy, *webhooks.DispatcherOptions)

var backends = []string{"memory", "postgres"}

func eachBackend(t *testing.T, fn func(t *testing.T, backend string)) {
	for _, b := range backends {
		t.Run(b, func(t *testing.T) { fn(t, b) })
	}
}

func newHarness(t testing.TB, backend string, opts ...harnessOpt) *harness {
	t.Helper()
	policy := egress.Policy{AllowHTTPLoopback: true}
	dopt := webhooks.DispatcherOptions{Timeout: 2 * time.Second, Concurrency: 4}
	for _, o := range opts {
		o(&policy, &dopt)
	}
	box, err := webhooks.NewSecretBox(make([]byte, 32))
	require.NoError(t, err)
	var db store.Runner[webhooks.Tx]
	var acc store.Runner[accounts.Repo]
	switch backend {
	case "postgres":
		pg := pgtest.NewStore(t)
		db = store.Bind(pg, func(x *postgres.Tx) webhooks.Tx { return x })
		acc = store.Bind(pg, func(x *postgres.Tx) accounts.Repo { return x })
	default:
		m := memory.New()
		db = store.Bind(m, func(x *memory.Tx) webhooks.Tx { return x })
		acc = store.Bind(m, func(x *memory.Tx) accounts.Repo { return x })
	}
	clock := &fakeClock{t: time.Now().Add(time.Second).Truncate(time.Millisecond)}
	tenant := &accounts.Tenant{ID: ids.New("ten"), Name: "T", Status: accounts.TenantActive, CreatedAt: time.Now().UTC()}
	require.NoError(t, acc.InTx(context.Background(), func(tx accounts.Repo) error { return tx.CreateTenant(context.Background(), tenant) }))
	dopt.Clock, dopt.Box = clock, box
	if dopt.Client == nil {
		dopt.Client = egress.NewHTTPClient(policy, nil, dopt.Timeout, nil)
	}
	return &harness{
		t: t, db: db, clock: clock, tenant: tenant.ID, box: box, opts: dopt, backend: backend,
		svc:  webhooks.NewService(db, webhooks.ServiceOptions{Policy: policy, Box: box, Clock: clock}),
		disp: webhooks.NewDispatcher(db, dopt),
	}
}

func (h *harness) endpoint(url string, events ...string) (*webhooks.Endpoint, string) {
	h.t.Helper()
	if len(events) == 0 {
		events = []string{"test.ping"}
	}
	e, secret, err := h.svc.CreateEndpoint(context.Background(), h.tenant, webhooks.EndpointInput{URL: url, Events: events})
	require.NoError(h.t, err)
	return e, secret
}

func (h *harness) emit(typ string) string {
	h.t.Helper()
	var id string
	require.NoError(h.t, h.db.InTx(context.Background(), func(tx webhooks.Tx) error {
		o := &captureOutbox{Outbox: tx}
		err := events.Emit(context.Background(), o, h.tenant, typ, map[string]any{"id": "obj_1", "n": 1})
		id = o.id
		return err
	}))
	// Events are stamped with the wall clock: however long the setup took
	// on a busy machine, the event is due on the dispatcher's clock now.
	h.clock.catchUp(time.Now().Add(time.Millisecond))
	return id
}

type captureOutbox struct {
	events.Outbox
	id string
}

func (c *captureOutbox) EnqueueEvent(ctx context.Context, e *events.Event) error {
	c.id = e.ID
	return c.Outbox.EnqueueEvent(ctx, e)
}

func (h *harness) runOnce() int {
	h.t.Helper()
	n, err := h.disp.RunOnce(context.Background())
	require.NoError(h.t, err)
	return n
}

func (h *harness) deliveries(eventID string) []webhooks.Delivery {
	h.t.Helper()
	ds, err := h.svc.ListDeliveries(context.Background(), h.tenant, eventID)
	require.NoError(h.t, err)
	return ds
}

func (h *harness) attempts(eventID string) []webhooks.Attempt {
	h.t.Helper()
	as, _, err := h.svc.ListAttempts(context.Background(), webhooks.AttemptFilter{TenantID: h.tenant, EventID: eventID, Limit: 100})
	require.NoError(h.t, err)
	return as
}

// receiver records what it is sent and answers with respond.
type receiver struct {
	mu      sync.Mutex
	reqs    []*http.Request
	bodies  [][]byte
	respond func(w http.ResponseWriter, r *http.Request)
	srv     *httptest.Server
}

func newReceiver(t testing.TB, respond func(w http.ResponseWriter, r *http.Request)) *receiver {
	rc := &receiver{respond: respond}
	rc.srv = httptest.NewServer(http.HandlerFunc(rc.serve))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) serve(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	rc.reqs = append(rc.reqs, r)
	rc.bodies = append(rc.bodies, b)
	rc.mu.Unlock()
	if rc.respond != nil {
		rc.respond(w, r)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (rc *receiver) count() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return len(rc.reqs)
}

func (rc *receiver) last() (*http.Request, []byte) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.reqs[len(rc.reqs)-1], rc.bodies[len(rc.bodies)-1]
}

func status(code int) func(w http.ResponseWriter, r *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(code) }
}

func TestDeliverySignedAndRecorded(t *testing.T) {
	eachBackend(t, func(t *testing.T, backend string) {
		h := newHarness(t, backend)
		rc := newReceiver(t, nil)
		ep, secret := h.endpoint(rc.srv.URL+"/hook", "charge.succeeded")
		_, _ = h.endpoint(rc.srv.URL+"/other", "mandate.created")
		id := h.emit("charge.succeeded")
		assert.Equal(t, 1, h.runOnce())
		require.Equal(t, 1, rc.count())
		req, body := rc.last()
		assert.Equal(t, "/hook", req.URL.Path)
		assert.Equal(t, id, req.Header.Get("webhook-id"))
		assert.Equal(t, "application/json", req.Header.Get("Content-Type"))
		v, err := verify.New(secret)
		require.NoError(t, err)
		v.Now = h.clock.Now
		require.NoError(t, v.Verify(body, req.Header))
		var payload map[string]any
		require.NoError(t, json.Unmarshal(body, &payload))
		assert.Equal(t, id, payload["id"])
		assert.Equal(t, "event", payload["object"])
		assert.Equal(t, "charge.succeeded", payload["type"])
		assert.Equal(t, map[string]any{"object": map[string]any{"id": "obj_1", "n": float64(1)}}, payload["data"])

		ds := h.deliveries(id)
		require.Len(t, ds, 1)
		assert.Equal(t, webhooks.DeliverySucceeded, ds[0].Status)
		assert.Equal(t, 204, ds[0].LastStatus)
		atts := h.attempts(id)
		require.Len(t, atts, 1)
		assert.Equal(t, ep.ID, atts[0].EndpointID)
		assert.Equal(t, 204, atts[0].StatusCode)
		assert.Equal(t, "succeeded", atts[0].Outcome)
		assert.Equal(t, 1, atts[0].Attempt)
		assert.Equal(t, 0, h.runOnce(), "nothing left")

		// Redelivery sends the same webhook-id again.
		_, err = h.svc.Redeliver(context.Background(), h.tenant, id, "")
		require.NoError(t, err)
		assert.Equal(t, 1, h.runOnce())
		req2, _ := rc.last()
		assert.Equal(t, id, req2.Header.Get("webhook-id"))
		assert.Len(t, h.attempts(id), 2)
	})
}

func TestRetriesBackoffThenFailedAndEndpointDisabled(t *testing.T) {
	eachBackend(t, func(t *testing.T, backend string) {
		h := newHarness(t, backend)
		rc := newReceiver(t, status(http.StatusInternalServerError))
		watcher := newReceiver(t, nil)
		ep, _ := h.endpoint(rc.srv.URL, "test.ping")
		_, _ = h.endpoint(watcher.srv.URL, "webhook_endpoint.disabled")
		id := h.emit("test.ping")

		schedule := webhooks.DefaultRetrySchedule
		require.Equal(t, 1, h.runOnce(), "first attempt at once")
		for i := 1; i < len(schedule); i++ {
			h.clock.Advance(schedule[i] - time.Second)
			assert.Equal(t, 0, h.runOnce(), "attempt %d is not due before %s", i+1, schedule[i])
			h.clock.Advance(time.Second)
			assert.Equal(t, 1, h.runOnce(), "attempt %d is due after %s", i+1, schedule[i])
			assert.Equal(t, i+1, rc.count())
		}
		assert.Equal(t, 1, h.runOnce(), "the endpoint was disabled: its event goes to the other endpoint")
		assert.Equal(t, 1, watcher.count())
		h.clock.Advance(48 * time.Hour)
		assert.Equal(t, 0, h.runOnce(), "no attempt after the last")
		assert.Equal(t, len(schedule), rc.count())

		ds := h.deliveries(id)
		require.Len(t, ds, 1)
		assert.Equal(t, webhooks.DeliveryFailed, ds[0].Status)
		assert.Equal(t, len(schedule), ds[0].Attempts)
		assert.Equal(t, 500, ds[0].LastStatus)
		atts := h.attempts(id)
		require.Len(t, atts, len(schedule), "every attempt is recorded")
		assert.Equal(t, "failed", atts[0].Outcome, "newest first")
		for i, a := range atts[1:] {
			assert.Equal(t, "retry", a.Outcome)
			assert.Equal(t, len(schedule)-1-i, a.Attempt)
			assert.Equal(t, "HTTP 500", a.Error)
			require.NotNil(t, a.NextAttemptAt)
		}

		// The attempts spanned more than 72 h of failure: the endpoint is
		// disabled and the tenant is told.
		got, err := h.svc.GetEndpoint(context.Background(), h.tenant, ep.ID)
		require.NoError(t, err)
		assert.Equal(t, webhooks.EndpointDisabled, got.Status)
		assert.Equal(t, webhooks.DisabledFailing, got.DisabledReason)
		evs, _, err := h.svc.ListEvents(context.Background(), webhooks.EventFilter{TenantID: h.tenant, Type: "webhook_endpoint.disabled", Limit: 10})
		require.NoError(t, err)
		require.Len(t, evs, 1)
		assert.Contains(t, string(evs[0].Data), ep.ID)
		assert.NotContains(t, string(evs[0].Data), "secret")
	})
}

func TestSuccessEndsFailureStreak(t *testing.T) {
	h := newHarness(t, "memory")
	var fail atomic.Bool
	fail.Store(true)
	rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request) {
		if fail.Load() {
			w.WriteHeader(500)
			return
		}
		w.WriteHeader(200)
	})
	ep, _ := h.endpoint(rc.srv.URL)
	h.emit("test.ping")
	h.runOnce()
	got, _ := h.svc.GetEndpoint(context.Background(), h.tenant, ep.ID)
	require.NotNil(t, got.FailingSince)
	fail.Store(false)
	h.clock.Advance(5 * time.Second)
	require.Equal(t, 1, h.runOnce())
	got, _ = h.svc.GetEndpoint(context.Background(), h.tenant, ep.ID)
	assert.Nil(t, got.FailingSince)
	assert.Equal(t, webhooks.EndpointEnabled, got.Status)
}

func TestGoneDisablesEndpoint(t *testing.T) {
	eachBackend(t, func(t *testing.T, backend string) {
		h := newHarness(t, backend)
		rc := newReceiver(t, status(http.StatusGone))
		ep, _ := h.endpoint(rc.srv.URL)
		first := h.emit("test.ping")
		second := h.emit("test.ping")
		h.disp = webhooks.NewDispatcher(h.db, func() webhooks.DispatcherOptions { o := h.opts; o.BatchSize = 1; return o }())
		require.Equal(t, 1, h.runOnce())
		got, err := h.svc.GetEndpoint(context.Background(), h.tenant, ep.ID)
		require.NoError(t, err)
		assert.Equal(t, webhooks.EndpointDisabled, got.Status)
		assert.Equal(t, webhooks.DisabledGone, got.DisabledReason)
		statuses := map[string]int{}
		for _, ev := range []string{first, second} {
			ds := h.deliveries(ev)
			require.Len(t, ds, 1)
			statuses[ds[0].Status]++
		}
		assert.Equal(t, map[string]int{webhooks.DeliveryFailed: 1, webhooks.DeliveryCanceled: 1}, statuses,
			"the 410 delivery failed; the other one was cancelled")
		h.clock.Advance(time.Hour)
		assert.Equal(t, 0, h.runOnce())
		assert.Equal(t, 1, rc.count(), "nothing more is sent to a gone endpoint")
		evs, _, err := h.svc.ListEvents(context.Background(), webhooks.EventFilter{TenantID: h.tenant, Type: "webhook_endpoint.disabled", Limit: 10})
		require.NoError(t, err)
		assert.Len(t, evs, 1)

		// Redelivery to a disabled endpoint is refused.
		_, err = h.svc.Redeliver(context.Background(), h.tenant, first, ep.ID)
		require.ErrorIs(t, err, webhooks.ErrEndpointDisabled)
	})
}

func TestRetryAfterHonoured(t *testing.T) {
	eachBackend(t, func(t *testing.T, backend string) {
		h := newHarness(t, backend)
		var answers atomic.Int32
		var dateHeader atomic.Value
		dateHeader.Store("")
		rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request) {
			switch answers.Add(1) {
			case 1:
				w.Header().Set("Retry-After", "120")
				w.WriteHeader(http.StatusTooManyRequests)
			case 2:
				w.Header().Set("Retry-After", dateHeader.Load().(string))
				w.WriteHeader(http.StatusServiceUnavailable)
			case 3:
				w.Header().Set("Retry-After", "1") // shorter than the schedule: the schedule wins
				w.WriteHeader(http.StatusTooManyRequests)
			default:
				w.WriteHeader(http.StatusOK)
			}
		})
		h.endpoint(rc.srv.URL)
		id := h.emit("test.ping")
		require.Equal(t, 1, h.runOnce())

		h.clock.Advance(119 * time.Second)
		assert.Equal(t, 0, h.runOnce(), "Retry-After: 120 holds the retry back (the schedule says 5 s)")
		dateHeader.Store(h.clock.Now().Add(time.Second + 3*time.Hour).UTC().Format(http.TimeFormat))
		h.clock.Advance(time.Second)
		require.Equal(t, 1, h.runOnce())

		h.clock.Advance(3*time.Hour - 2*time.Second)
		assert.Equal(t, 0, h.runOnce(), "an HTTP-date Retry-After holds it back too")
		h.clock.Advance(3 * time.Second)
		require.Equal(t, 1, h.runOnce())

		h.clock.Advance(29 * time.Minute)
		assert.Equal(t, 0, h.runOnce(), "Retry-After: 1 does not shorten the 30 min step")
		h.clock.Advance(time.Minute)
		require.Equal(t, 1, h.runOnce())
		ds := h.deliveries(id)
		assert.Equal(t, webhooks.DeliverySucceeded, ds[0].Status)
		atts := h.attempts(id)
		require.Len(t, atts, 4)
		assert.Equal(t, 429, atts[3].StatusCode)
		assert.Equal(t, 503, atts[2].StatusCode)
	})
}

func TestRedirectsNotFollowed(t *testing.T) {
	h := newHarness(t, "memory")
	target := newReceiver(t, nil)
	rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.srv.URL+"/elsewhere", http.StatusTemporaryRedirect)
	})
	h.endpoint(rc.srv.URL)
	id := h.emit("test.ping")
	require.Equal(t, 1, h.runOnce())
	assert.Equal(t, 0, target.count(), "the redirect target is never contacted")
	atts := h.attempts(id)
	require.Len(t, atts, 1)
	assert.Equal(t, 307, atts[0].StatusCode)
	assert.Equal(t, "retry", atts[0].Outcome)
	assert.Contains(t, atts[0].Error, "redirects are not followed")
}

func TestTimeout(t *testing.T) {
	h := newHarness(t, "memory", func(_ *egress.Policy, o *webhooks.DispatcherOptions) { o.Timeout = 150 * time.Millisecond })
	release := make(chan struct{})
	rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	defer close(release)
	h.endpoint(rc.srv.URL)
	id := h.emit("test.ping")
	require.Equal(t, 1, h.runOnce())
	atts := h.attempts(id)
	require.Len(t, atts, 1)
	assert.Equal(t, 0, atts[0].StatusCode)
	assert.Equal(t, "timeout", atts[0].Error)
	assert.Equal(t, "retry", atts[0].Outcome)
}

func TestSecretRotationOverlap(t *testing.T) {
	eachBackend(t, func(t *testing.T, backend string) {
		h := newHarness(t, backend)
		rc := newReceiver(t, nil)
		ep, oldSecret := h.endpoint(rc.srv.URL)
		hour := time.Hour
		rotated, newSecret, err := h.svc.RotateSecret(context.Background(), h.tenant, ep.ID, &hour)
		require.NoError(t, err)
		require.NotEqual(t, oldSecret, newSecret)
		require.NotNil(t, rotated.PrevSecretExpiresAt)
		verifiers := func() (oldOK, newOK bool) {
			req, body := rc.last()
			vo, _ := verify.New(oldSecret)
			vn, _ := verify.New(newSecret)
			vo.Now, vn.Now = h.clock.Now, h.clock.Now
			return vo.Verify(body, req.Header) == nil, vn.Verify(body, req.Header) == nil
		}

		h.emit("test.ping")
		require.Equal(t, 1, h.runOnce())
		req, _ := rc.last()
		assert.Len(t, strings.Fields(req.Header.Get("webhook-signature")), 2, "two signatures during the overlap")
		oldOK, newOK := verifiers()
		assert.True(t, oldOK, "receivers still on the old secret verify")
		assert.True(t, newOK, "receivers on the new secret verify")

		h.clock.Advance(hour + time.Second)
		h.emit("test.ping")
		h.clock.Advance(time.Second)
		require.Equal(t, 1, h.runOnce())
		req, _ = rc.last()
		assert.Len(t, strings.Fields(req.Header.Get("webhook-signature")), 1)
		oldOK, newOK = verifiers()
		assert.False(t, oldOK, "the old secret stops signing when the overlap ends")
		assert.True(t, newOK)

		// Rotation with no overlap drops the old secret at once.
		zero := time.Duration(0)
		_, newest, err := h.svc.RotateSecret(context.Background(), h.tenant, ep.ID, &zero)
		require.NoError(t, err)
		h.emit("test.ping")
		h.clock.Advance(time.Second)
		require.Equal(t, 1, h.runOnce())
		req, body := rc.last()
		vn, _ := verify.New(newSecret)
		vz, _ := verify.New(newest)
		vn.Now, vz.Now = h.clock.Now, h.clock.Now
		require.Error(t, vn.Verify(body, req.Header))
		require.NoError(t, vz.Verify(body, req.Header))
	})
}

func TestLeaseLapseAfterCrash(t *testing.T) {
	eachBackend(t, func(t *testing.T, backend string) {
		h := newHarness(t, backend)
		rc := newReceiver(t, nil)
		h.endpoint(rc.srv.URL)
		id := h.emit("test.ping")
		// A dispatcher claims the delivery and dies before sending it.
		var claimed []webhooks.Claimed
		now := h.clock.Now()
		require.NoError(t, h.db.InTx(context.Background(), func(tx webhooks.Tx) error {
			var err error
			claimed, err = tx.ClaimDeliveries(context.Background(), now, now.Add(35*time.Second), 10, "dead")
			return err
		}))
		require.Len(t, claimed, 1)
		h.clock.Advance(34 * time.Second)
		assert.Equal(t, 0, h.runOnce(), "still leased to the dead dispatcher")
		h.clock.Advance(time.Second)
		assert.Equal(t, 1, h.runOnce(), "the lease lapsed: another dispatcher delivers")
		assert.Equal(t, 1, rc.count())
		ds := h.deliveries(id)
		assert.Equal(t, webhooks.DeliverySucceeded, ds[0].Status)
		assert.Equal(t, 2, ds[0].Attempts, "the lost attempt counts")
	})
}

func TestDeletedEndpointCancelsDeliveries(t *testing.T) {
	h := newHarness(t, "memory")
	rc := newReceiver(t, nil)
	ep, _ := h.endpoint(rc.srv.URL)
	id := h.emit("test.ping")
	_, err := h.svc.DeleteEndpoint(context.Background(), h.tenant, ep.ID)
	require.NoError(t, err)
	assert.Equal(t, 0, h.runOnce())
	ds := h.deliveries(id)
	require.Len(t, ds, 1)
	assert.Equal(t, webhooks.DeliveryCanceled, ds[0].Status)
	assert.Equal(t, 0, rc.count())
}

func TestRunDeliversEverything(t *testing.T) {
	eachBackend(t, func(t *testing.T, backend string) {
		h := newHarness(t, backend)
		var got sync.Map
		rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request) {
			got.Store(r.Header.Get("webhook-id"), true)
			w.WriteHeader(200)
		})
		h.endpoint(rc.srv.URL)
		const n = 50
		var want []string
		for range n {
			want = append(want, h.emit("test.ping"))
		}
		o := h.opts
		o.Clock, o.Interval = webhooks.SystemClock{}, 20*time.Millisecond
		d := webhooks.NewDispatcher(h.db, o)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { d.Run(ctx); close(done) }()
		// The receiver's answer is not the end of a delivery: the dispatcher
		// records it afterwards. Stop it once every delivery is recorded as
		// succeeded (a generous deadline, polled on the test goroutine).
		pending := func() []string {
			var out []string
			for _, id := range want {
				ds := h.deliveries(id)
				if len(ds) != 1 || ds[0].Status != webhooks.DeliverySucceeded {
					out = append(out, id)
				}
			}
			return out
		}
		for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(20 * time.Millisecond) {
			left := pending()
			if len(left) == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("after 2 minutes %d of %d deliveries are not recorded as succeeded (received %d)", len(left), n, rc.count())
			}
		}
		cancel()
		<-done
		for _, id := range want {
			_, ok := got.Load(id)
			assert.True(t, ok, id)
			assert.Equal(t, webhooks.DeliverySucceeded, h.deliveries(id)[0].Status)
		}
	})
}

// --- SSRF (the policy and dialer are tested in internal/egress) ----------

// TestHostnameResolvingToPrivateRefusedEndToEnd runs a real delivery over
// TLS to a name that resolves to loopback: refused, the server untouched;
// then allowed by config, delivered.
func TestHostnameResolvingToPrivateRefusedEndToEnd(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer srv.Close()
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	port := srv.Listener.Addr().(*net.TCPAddr).Port
	resolver := func(_ context.Context, _, host string) ([]netip.Addr, error) {
		return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
	}
	for _, allow := range []bool{false, true} {
		policy := egress.Policy{}
		if allow {
			policy.Allowed = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
		}
		tlsConf := &tls.Config{RootCAs: pool, ServerName: "example.com"} // httptest's certificate names example.com
		client := egress.NewHTTPClient(policy, resolver, 2*time.Second, tlsConf)
		h := newHarness(t, "memory", func(p *egress.Policy, o *webhooks.DispatcherOptions) {
			*p = policy
			o.Client = client
		})
		h.endpoint("https://rebind.example:" + strconv.Itoa(port) + "/hook")
		id := h.emit("test.ping")
		require.Equal(t, 1, h.runOnce())
		atts := h.attempts(id)
		require.Len(t, atts, 1)
		if !allow {
			assert.Equal(t, 0, atts[0].StatusCode)
			assert.Contains(t, atts[0].Error, "refused")
			assert.Contains(t, atts[0].Error, "loopback")
			assert.Equal(t, int32(0), hits.Load(), "no request reached the server")
		} else {
			assert.Equal(t, 200, atts[0].StatusCode, atts[0].Error)
			assert.Equal(t, int32(1), hits.Load())
		}
	}
}

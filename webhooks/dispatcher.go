package webhooks

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/perfectpay/perfectpay/audit"
	"github.com/perfectpay/perfectpay/events"
	"github.com/perfectpay/perfectpay/internal/egress"
	"github.com/perfectpay/perfectpay/internal/ids"
	"github.com/perfectpay/perfectpay/store"
)

// DefaultRetrySchedule is the delay before each attempt: immediately, then
// 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h and 24 h after the attempt
// before — about three days and three hours in all — then failed.
var DefaultRetrySchedule = []time.Duration{
	0, 5 * time.Second, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour,
	5 * time.Hour, 10 * time.Hour, 14 * time.Hour, 20 * time.Hour, 24 * time.Hour,
}

// Doer sends an HTTP request (*http.Client fits; tests inject their own).
type Doer interface {
	Do(*http.Request) (*http.Response, error)
}

// DispatcherOptions configure a Dispatcher. Zero values take the defaults.
type DispatcherOptions struct {
	// Interval is how long an idle dispatcher waits before looking again.
	Interval time.Duration
	// BatchSize is the most deliveries claimed in one statement.
	BatchSize int
	// Concurrency is the most requests in flight on this node.
	Concurrency int
	// Timeout bounds one request (connect, TLS, headers and body).
	Timeout time.Duration
	// Lease is how long a claimed delivery stays invisible to other
	// dispatchers; after a crash it becomes due again when the lease ends.
	// Default 2×Timeout + 5 s.
	Lease time.Duration
	// RetrySchedule is the delay before each attempt; its first entry is
	// the first attempt (0) and its length is the number of attempts.
	RetrySchedule []time.Duration
	// DisableAfter disables an endpoint whose deliveries have all failed
	// for this long (default 72 h).
	DisableAfter time.Duration
	// MaxRetryAfter caps a receiver's Retry-After (default 24 h).
	MaxRetryAfter time.Duration
	Client        Doer
	Clock         Clock
	Box           *SecretBox
	Log           *slog.Logger
	UserAgent     string
}

// Dispatcher delivers the outbox. Any number may run, on any nodes: each
// claims due deliveries (FOR UPDATE SKIP LOCKED), so none is sent by two
// dispatchers at once while its lease holds. Delivery is at least once: a
// dispatcher that dies mid-request leaves the delivery claimed until its
// lease lapses, then another sends it again. Order is not promised, not
// even per endpoint: retries and parallel dispatchers reorder events.
type Dispatcher struct {
	db  store.Runner[Tx]
	opt DispatcherOptions
}

// NewDispatcher returns a dispatcher on db.
func NewDispatcher(db store.Runner[Tx], o DispatcherOptions) *Dispatcher {
	if o.Interval <= 0 {
		o.Interval = 500 * time.Millisecond
	}
	if o.BatchSize <= 0 {
		o.BatchSize = 100
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 16
	}
	if o.Timeout <= 0 {
		o.Timeout = 15 * time.Second
	}
	if o.Lease <= 0 {
		o.Lease = 2*o.Timeout + 5*time.Second
	}
	if len(o.RetrySchedule) == 0 {
		o.RetrySchedule = DefaultRetrySchedule
	}
	if o.DisableAfter <= 0 {
		o.DisableAfter = 72 * time.Hour
	}
	if o.MaxRetryAfter <= 0 {
		o.MaxRetryAfter = 24 * time.Hour
	}
	if o.Clock == nil {
		o.Clock = SystemClock{}
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.UserAgent == "" {
		o.UserAgent = "PerfectPay-Webhooks/1.0"
	}
	if o.Client == nil {
		o.Client = egress.NewHTTPClient(egress.Policy{}, nil, o.Timeout, nil)
	}
	return &Dispatcher{db: db, opt: o}
}

func (d *Dispatcher) now() time.Time { return d.opt.Clock.Now().UTC().Truncate(time.Microsecond) }

// Run dispatches until ctx ends: it claims as many due deliveries as it
// has free request slots, sends them concurrently, and sleeps Interval
// when nothing is due. Requests in flight at shutdown are abandoned and
// their deliveries released (due again at once, on any node).
func (d *Dispatcher) Run(ctx context.Context) {
	slots := make(chan struct{}, d.opt.Concurrency)
	var wg sync.WaitGroup
	defer wg.Wait()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		for {
			free := d.opt.Concurrency - len(slots)
			if free == 0 {
				// Wait for a slot, then claim again.
				select {
				case <-ctx.Done():
					return
				case slots <- struct{}{}:
					<-slots
				}
				continue
			}
			n := min(free, d.opt.BatchSize)
			claimed, err := d.claim(ctx, n)
			if err != nil {
				if ctx.Err() == nil {
					d.opt.Log.Error("webhooks: claim failed", "err", err)
				}
				break
			}
			for _, c := range claimed {
				slots <- struct{}{}
				wg.Add(1)
				go func() {
					defer wg.Done()
					defer func() { <-slots }()
					d.deliver(ctx, c)
				}()
			}
			if len(claimed) < n {
				break
			}
		}
		timer.Reset(d.opt.Interval)
	}
}

// RunOnce claims one batch of due deliveries, sends them (concurrently)
// and records the outcomes. It returns how many it claimed. Tests drive
// the dispatcher with it and a fake clock.
func (d *Dispatcher) RunOnce(ctx context.Context) (int, error) {
	claimed, err := d.claim(ctx, d.opt.BatchSize)
	if err != nil {
		return 0, err
	}
	sem := make(chan struct{}, d.opt.Concurrency)
	var wg sync.WaitGroup
	for _, c := range claimed {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			d.deliver(ctx, c)
		}()
	}
	wg.Wait()
	return len(claimed), nil
}

func (d *Dispatcher) claim(ctx context.Context, n int) ([]Claimed, error) {
	now := d.now()
	token := ids.Random(20)
	var out []Claimed
	err := d.db.InTx(ctx, func(tx Tx) error {
		var err error
		out, err = tx.ClaimDeliveries(ctx, now, now.Add(d.opt.Lease), n, token)
		return err
	})
	return out, err
}

// EventPayload is the JSON body delivered for an event.
func EventPayload(e *events.Event) ([]byte, error) {
	return json.Marshal(struct {
		ID      string          `json:"id"`
		Object  string          `json:"object"`
		Type    string          `json:"type"`
		Created time.Time       `json:"created"`
		Data    json.RawMessage `json:"data"`
	}{e.ID, "event", e.Type, e.CreatedAt.UTC(), e.Data})
}

// result is what one request came to.
type result struct {
	status     int
	err        string
	retryAfter time.Duration
	latency    time.Duration
}

// deliver sends one claimed delivery and records the outcome.
func (d *Dispatcher) deliver(ctx context.Context, c Claimed) {
	del := c.Delivery
	ep := c.Endpoint
	if ep == nil || ep.Status != EndpointEnabled {
		reason := "endpoint deleted"
		if ep != nil {
			reason = "endpoint disabled"
		}
		now := d.now()
		del.Status, del.LastError, del.UpdatedAt, del.CompletedAt = DeliveryCanceled, reason, now, &now
		d.complete(ctx, c, nil, del)
		return
	}
	res := d.send(ctx, c)
	if ctx.Err() != nil && res.status == 0 {
		// Shutting down: give the delivery back without counting the attempt.
		del.Status, del.NextAttemptAt, del.Attempts = DeliveryPending, d.now(), del.Attempts-1
		d.complete(context.Background(), c, nil, del)
		return
	}
	now := d.now()
	att := &Attempt{
		ID: ids.New(attemptPrefix), TenantID: del.TenantID, DeliveryID: del.ID, EventID: del.EventID,
		EndpointID: ep.ID, Attempt: del.Attempts, URL: ep.URL, StatusCode: res.status,
		LatencyMS: res.latency.Milliseconds(), Error: res.err, CreatedAt: now,
	}
	del.LastStatus, del.LastError, del.UpdatedAt = res.status, res.err, now
	switch {
	case res.status >= 200 && res.status < 300:
		del.Status, del.CompletedAt, att.Outcome = DeliverySucceeded, &now, "succeeded"
	case res.status == http.StatusGone:
		del.Status, del.CompletedAt, att.Outcome = DeliveryFailed, &now, "failed"
	case del.Attempts >= len(d.opt.RetrySchedule):
		del.Status, del.CompletedAt, att.Outcome = DeliveryFailed, &now, "failed"
	default:
		wait := d.opt.RetrySchedule[del.Attempts]
		if res.retryAfter > wait {
			wait = min(res.retryAfter, d.opt.MaxRetryAfter)
		}
		next := now.Add(wait)
		del.Status, del.NextAttemptAt, att.Outcome, att.NextAttemptAt = DeliveryPending, next, "retry", &next
	}
	d.complete(ctx, c, att, del)
}

// send makes the request.
func (d *Dispatcher) send(ctx context.Context, c Claimed) result {
	body, err := EventPayload(&c.Event)
	if err != nil {
		return result{err: "encode event: " + err.Error()}
	}
	now := d.opt.Clock.Now()
	keys, err := signingKeys(d.opt.Box, c.Endpoint, now)
	if err != nil {
		d.opt.Log.Error("webhooks: cannot open endpoint secret", "endpoint", c.Endpoint.ID, "err", err)
		return result{err: "signing secret unavailable"}
	}
	rctx, cancel := context.WithTimeout(ctx, d.opt.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodPost, c.Endpoint.URL, bytes.NewReader(body))
	if err != nil {
		return result{err: "bad URL: " + err.Error()}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", d.opt.UserAgent)
	SignHeaders(req.Header, keys, c.Event.ID, now, body)
	start := time.Now()
	resp, err := d.opt.Client.Do(req)
	if err != nil {
		return result{err: describeErr(err), latency: time.Since(start)}
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	r := result{status: resp.StatusCode, latency: time.Since(start)}
	if r.status < 200 || r.status >= 300 {
		r.err = fmt.Sprintf("HTTP %d", r.status)
		if r.status >= 300 && r.status < 400 {
			r.err += " (redirects are not followed)"
		}
	}
	if r.status == http.StatusTooManyRequests || r.status == http.StatusServiceUnavailable {
		r.retryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), now)
	}
	return r
}

// describeErr is an attempt's error text: short, with no secrets (the URL
// is the tenant's own and already listed with the attempt).
func describeErr(err error) string {
	var ue interface{ Unwrap() error }
	if errors.As(err, &ue) {
		if inner := ue.Unwrap(); inner != nil && strings.HasPrefix(err.Error(), "Post ") {
			err = inner
		}
	}
	if errors.Is(err, context.DeadlineExceeded) || strings.Contains(err.Error(), "Client.Timeout") {
		return "timeout"
	}
	s := err.Error()
	if len(s) > 300 {
		s = s[:300]
	}
	return s
}

// parseRetryAfter reads delay-seconds or an HTTP date; 0 when absent or bad.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n <= 0 {
			return 0
		}
		if n > int64((365 * 24 * time.Hour).Seconds()) {
			n = int64((365 * 24 * time.Hour).Seconds())
		}
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// complete writes the attempt and the delivery's outcome in one
// transaction, and keeps the endpoint's failure streak: a success ends it;
// a failure starts it; an endpoint failing for DisableAfter, or answering
// 410 Gone, is disabled and the tenant is told by an event.
func (d *Dispatcher) complete(ctx context.Context, c Claimed, att *Attempt, del Delivery) {
	ctx = context.WithoutCancel(ctx)
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	ep := c.Endpoint
	err := d.db.InTx(ctx, func(tx Tx) error {
		if att != nil {
			if err := tx.AppendAttempt(ctx, att); err != nil {
				return err
			}
		}
		ok, err := tx.CompleteDelivery(ctx, &del)
		if err != nil {
			return err
		}
		if !ok {
			d.opt.Log.Warn("webhooks: lease lost before completion; another dispatcher owns the delivery", "delivery", del.ID)
		}
		if att == nil || ep == nil {
			return nil
		}
		now := att.CreatedAt
		switch {
		case att.Outcome == "succeeded":
			if ep.FailingSince != nil {
				return tx.MarkEndpointHealthy(ctx, ep.ID)
			}
			return nil
		case att.StatusCode == http.StatusGone:
			return d.disable(ctx, tx, ep, DisabledGone, now)
		default:
			since, err := tx.MarkEndpointFailing(ctx, ep.ID, now)
			if errors.Is(err, store.ErrNotFound) {
				return nil // deleted meanwhile
			}
			if err != nil {
				return err
			}
			if now.Sub(since) >= d.opt.DisableAfter {
				return d.disable(ctx, tx, ep, DisabledFailing, now)
			}
			return nil
		}
	})
	if err != nil {
		// The lease will lapse and the delivery will be sent again.
		d.opt.Log.Error("webhooks: recording a delivery failed", "delivery", del.ID, "err", err)
	}
}

func (d *Dispatcher) disable(ctx context.Context, tx Tx, ep *Endpoint, reason string, now time.Time) error {
	changed, err := tx.DisableEndpoint(ctx, ep.TenantID, ep.ID, reason, now)
	if err != nil || !changed {
		return err
	}
	e, err := tx.GetEndpoint(ctx, ep.TenantID, ep.ID)
	if err != nil {
		return err
	}
	d.opt.Log.Warn("webhooks: endpoint disabled", "endpoint", e.ID, "tenant", e.TenantID, "reason", reason)
	if _, err := tx.CancelDeliveries(ctx, e.TenantID, e.ID, "endpoint disabled ("+reason+")", now); err != nil {
		return err
	}
	if err := audit.RecordFor(ctx, tx, e.TenantID, "webhook_endpoint.disabled", e.ID, auditView(e)); err != nil {
		return err
	}
	return events.Emit(ctx, tx, e.TenantID, "webhook_endpoint.disabled", e)
}

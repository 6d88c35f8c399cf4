package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/store/postgres"
	"github.com/perfectpay/perfectpay/store/storetest"
	"github.com/perfectpay/perfectpay/webhooks/verify"
)

// Helpers of the fault suites (chaos_test.go, failover_test.go): a charge
// load over several nodes that records every client's final answer, a
// webhook receiver, and the checks made once the load has stopped.

// spender is one agent's token for one root mandate.
type spender struct {
	agent   agent
	mandate string
	token   string
}

// spenders registers n agents, each with an active root mandate of budget
// and a token for it.
func (s *shop) spenders(t testing.TB, n int, budget int64) []spender {
	t.Helper()
	out := make([]spender, n)
	for i := range out {
		a := s.agent(t)
		m := s.mandate(t, a, budget)
		out[i] = spender{agent: a, mandate: m, token: s.token(t, s.base, a, m)}
	}
	return out
}

// answer is one charge's final answer, with the spender it charged and
// when the answer came.
type answer struct {
	finalAnswer
	spender int
	node    int
	at      time.Time
}

// load sends agent charges from clients goroutines until stop: client i
// uses node i % nodes and spender i % spenders; each charge has its own
// Idempotency-Key and is retried (retryUntilAnswered) until it has a final
// answer. One charge in five is on the card the acquirer declines.
type load struct {
	s        *shop
	spenders []spender
	nodeURL  func(i int) string

	stopped atomic.Bool
	wg      sync.WaitGroup
	mu      sync.Mutex
	answers []answer
	started time.Time
	ended   time.Time
}

func startLoad(s *shop, spenders []spender, nodes, clients int, nodeURL func(i int) string) *load {
	l := &load{s: s, spenders: spenders, nodeURL: nodeURL, started: time.Now()}
	deadline := time.Now().Add(10 * time.Minute)
	for i := range clients {
		l.wg.Go(func() {
			node := i % nodes
			sp := i % len(spenders)
			base := func() string { return nodeURL(node) }
			for j := 0; !l.stopped.Load(); j++ {
				key := fmt.Sprintf("load-%d-%d-%s", i, j, randKey())
				card := s.card
				if j%5 == 4 {
					card = s.declines
				}
				c := call{Method: "POST", Path: "/v1/charges", Auth: spenders[sp].token, Body: s.chargeBody(int64(100+j%50), card),
					Header: map[string]string{"Idempotency-Key": key}}
				fa := retryUntilAnswered(base, c, key, deadline)
				l.mu.Lock()
				l.answers = append(l.answers, answer{finalAnswer: fa, spender: sp, node: node, at: time.Now()})
				l.mu.Unlock()
				if fa.err != nil {
					return
				}
			}
		})
	}
	return l
}

// count is the number of final answers so far.
func (l *load) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.answers)
}

// firstOK is when the first charge answered 200 after t0 was answered
// (node < 0: on any node), or the zero time.
func (l *load) firstOK(t0 time.Time, node int) time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	var first time.Time
	for _, a := range l.answers {
		if a.resp != nil && a.resp.Status == 200 && a.at.After(t0) && (node < 0 || a.node == node) &&
			(first.IsZero() || a.at.Before(first)) {
			first = a.at
		}
	}
	return first
}

// waitFor polls cond (a generous bound for a hung run, not a measurement).
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	d := time.Now().Add(3 * time.Minute)
	for !cond() {
		require.False(t, time.Now().After(d), "gave up waiting for %s", what)
		time.Sleep(20 * time.Millisecond)
	}
}

// stop ends the load once every client has its final answer.
func (l *load) stop() []answer {
	l.stopped.Store(true)
	l.wg.Wait()
	l.ended = time.Now()
	return l.answers
}

// figures are the load's charges per second (answered 200), the answers
// by status seen on the way (every attempt, "conn" for an attempt that got
// no answer) and the final answers by status.
func (l *load) figures() string {
	seen, final := map[string]int{}, map[string]int{}
	ok := 0
	for _, a := range l.answers {
		for _, st := range a.seen {
			seen[strconv.Itoa(st)]++
		}
		if a.lost > 0 {
			seen["conn"] += a.lost
		}
		if a.resp != nil {
			final[strconv.Itoa(a.resp.Status)]++
			if a.resp.Status == 200 {
				ok++
			}
		}
	}
	secs := l.ended.Sub(l.started).Seconds()
	return fmt.Sprintf("%d charges in %.1f s, %.1f succeeded/s; final answers %s; every answer on the way %s",
		len(l.answers), secs, float64(ok)/secs, sortedCounts(final), sortedCounts(seen))
}

func sortedCounts(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s:%d", k, m[k])
	}
	return "{" + strings.Join(parts, " ") + "}"
}

// checkSettled waits until nothing is left pending (charges, reversals,
// Idempotency-Key claims), then checks every final answer against the
// database for each spender's mandate (checkAnswers: none lost, none
// doubled, no 500 and 503 only as store_unavailable) and the ledger rule
// on every mandate of the tenant.
func checkSettled(t *testing.T, db *pgxpool.Pool, dbURL string, s *shop, spenders []spender, answers []answer) {
	t.Helper()
	waitDB(t, db, "charges still pending", `SELECT count(*) FROM charges WHERE status = 'pending' OR reversal_pending`)
	waitDB(t, db, "idempotency claims still held", `SELECT count(*) FROM idempotency_keys WHERE state = 'in_progress'`)
	by := make([][]finalAnswer, len(spenders))
	for _, a := range answers {
		by[a.spender] = append(by[a.spender], a.finalAnswer)
	}
	for i, sp := range spenders {
		checkAnswers(t, db, by[i], sp.agent.id, sp.mandate)
	}
	ctx := context.Background()
	pg, err := postgres.Open(ctx, dbURL, postgres.Options{MaxConns: 2})
	require.NoError(t, err)
	defer pg.Close()
	storetest.AssertLedger(t, pg, s.tenantID)
}

// hookReceiver is a webhook endpoint of the shop's tenant subscribed to
// every event, on a local HTTP server that checks each request's
// signature and records the webhook-ids it got.
type hookReceiver struct {
	srv   *httptest.Server
	after int64 // events with a larger seq were emitted after the endpoint existed
	mu    sync.Mutex
	seen  map[string]int
	bad   atomic.Int64
}

func newHookReceiver(t *testing.T, s *shop, db *pgxpool.Pool) *hookReceiver {
	t.Helper()
	h := &hookReceiver{seen: map[string]int{}}
	var v atomic.Pointer[verify.Verifier]
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		vv := v.Load()
		if vv == nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		if _, err := vv.Request(r, 1<<20); err != nil {
			h.bad.Add(1)
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		h.mu.Lock()
		h.seen[r.Header.Get("webhook-id")]++
		h.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(h.srv.Close)
	r := do(t, s.base, call{Method: "POST", Path: "/v1/webhook_endpoints", Auth: s.key,
		Body: map[string]any{"url": h.srv.URL + "/hook", "enabled_events": []string{"*"}}})
	require.Equal(t, 201, r.Status, string(r.Body))
	vv, err := verify.New(r.JSON["secret"].(string))
	require.NoError(t, err)
	v.Store(vv)
	require.NoError(t, db.QueryRow(context.Background(), `SELECT coalesce(max(seq), 0) FROM events WHERE tenant_id = $1`,
		s.tenantID).Scan(&h.after))
	return h
}

// faultEnv is the fault suites' node settings on top of nodeEnv and
// resilientEnv: webhook delivery quick and its retries short, so an event
// whose delivery was cut by a fault is retried within the test's waits;
// and the abuse defences off, because a load from one address with a
// steady share of declines is what card-testing protection blocks, and
// these suites measure faults, not those defences.
var faultEnv = []string{
	"PERFECTPAY_WEBHOOKS_DISPATCH_INTERVAL=50ms",
	"PERFECTPAY_WEBHOOKS_TIMEOUT=2s",
	"PERFECTPAY_WEBHOOKS_RETRY_SCHEDULE=0s,1s,1s,1s,1s,1s,1s,1s,1s,1s",
	"PERFECTPAY_ABUSE_ENABLED=false",
}

// checkDelivered waits until every event of the tenant emitted since the
// endpoint exists was delivered, with a valid signature, at least once.
func (h *hookReceiver) checkDelivered(t *testing.T, db *pgxpool.Pool, tenantID string) int {
	t.Helper()
	var missing []string
	var total int
	deadline := time.Now().Add(3 * time.Minute)
	for {
		rows, err := db.Query(context.Background(), `SELECT id FROM events WHERE tenant_id = $1 AND seq > $2`, tenantID, h.after)
		if err == nil {
			missing, total = missing[:0], 0
			h.mu.Lock()
			for rows.Next() {
				var id string
				if rows.Scan(&id) == nil {
					total++
					if h.seen[id] == 0 {
						missing = append(missing, id)
					}
				}
			}
			h.mu.Unlock()
			rows.Close()
			err = rows.Err()
		}
		if err == nil && len(missing) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d events never delivered (err %v), e.g. %v", len(missing), total, err, missing[:min(5, len(missing))])
		}
		time.Sleep(100 * time.Millisecond)
	}
	assert.Zero(t, h.bad.Load(), "every delivery was signed with the endpoint's secret")
	return total
}

// prober reads a mandate (tenant key), mints a token (client credentials)
// and introspects one (agent authentication) on every node in a loop while
// a fault lasts, besides the charges: no route may answer 500 while the
// store is away.
type prober struct {
	stopped atomic.Bool
	wg      sync.WaitGroup
	mu      sync.Mutex
	counts  map[string]int // "route status" -> answers
	bad     []string       // every answer 500 or above other than 503
}

func startProber(s *shop, sp spender, nodes int, nodeURL func(i int) string) *prober {
	p := &prober{counts: map[string]int{}}
	record := func(route string, status int, body []byte) {
		p.mu.Lock()
		defer p.mu.Unlock()
		p.counts[fmt.Sprintf("%s %d", route, status)]++
		if status >= 500 && status != http.StatusServiceUnavailable {
			p.bad = append(p.bad, fmt.Sprintf("%s %d %s", route, status, body))
		}
	}
	for node := range nodes {
		p.wg.Go(func() {
			for !p.stopped.Load() {
				base := nodeURL(node)
				if r, err := send(base, call{Method: "GET", Path: "/v1/mandates/" + sp.mandate, Auth: s.key}); err == nil {
					record("mandate", r.Status, r.Body)
				}
				forms := map[string]url.Values{
					"token": {"grant_type": {"client_credentials"}, "scope": {"charges:write"},
						"authorization_details": {fmt.Sprintf(`[{"type":"payment_mandate","mandate_id":%q}]`, sp.mandate)}},
					"introspect": {"token": {sp.token}},
				}
				for route, f := range forms {
					req, err := http.NewRequest("POST", base+"/oauth2/"+route, strings.NewReader(f.Encode()))
					if err != nil {
						continue
					}
					req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
					req.SetBasicAuth(url.QueryEscape(sp.agent.id), url.QueryEscape(sp.agent.secret))
					if resp, err := httpClient.Do(req); err == nil {
						body, _ := io.ReadAll(resp.Body)
						resp.Body.Close()
						record(route, resp.StatusCode, body)
					}
				}
				time.Sleep(50 * time.Millisecond)
			}
		})
	}
	return p
}

// stop ends the probes and checks that none was answered 500.
func (p *prober) stop(t *testing.T) string {
	t.Helper()
	p.stopped.Store(true)
	p.wg.Wait()
	assert.Empty(t, p.bad, "no route answers 500 while the store is away")
	return sortedCounts(p.counts)
}

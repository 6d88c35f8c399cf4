package webhooks_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/app"
	"github.com/perfectpay/perfectpay/app/apptest"
	"github.com/perfectpay/perfectpay/events"
	"github.com/perfectpay/perfectpay/store"
	"github.com/perfectpay/perfectpay/store/pgtest"
	"github.com/perfectpay/perfectpay/store/postgres"
	"github.com/perfectpay/perfectpay/webhooks"
	"github.com/perfectpay/perfectpay/webhooks/verify"
)

// TestCrashKill9 kills a real `perfectpay serve` with SIGKILL while
// deliveries are in flight, starts another, and checks that every event
// was delivered at least once and every outbox row ended succeeded.
func TestCrashKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the server binary")
	}
	dbURL := pgtest.NewURL(t)
	bin := filepath.Join(t.TempDir(), "perfectpay")
	build := exec.Command("go", "build", "-o", bin, "github.com/perfectpay/perfectpay/cmd/perfectpay")
	out, err := build.CombinedOutput()
	require.NoError(t, err, string(out))

	// Set up a tenant and endpoint in-process, on the same database.
	cfg := apptest.Config("postgres", dbURL)
	a, err := app.New(context.Background(), cfg, apptest.Quiet())
	require.NoError(t, err)
	defer a.Close()
	tb, _ := (&apptest.Node{App: a}).Tenant(t)

	var (
		mu      sync.Mutex
		seen    = map[string]int{}
		total   atomic.Int64
		badSigs atomic.Int64
	)
	var verifier atomic.Pointer[verify.Verifier]
	rc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := verifier.Load().Request(r, 1<<20)
		if err != nil {
			badSigs.Add(1)
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		_ = body
		id := r.Header.Get("webhook-id")
		mu.Lock()
		seen[id]++
		first := seen[id] == 1
		mu.Unlock()
		total.Add(1)
		time.Sleep(150 * time.Millisecond) // keep requests in flight
		if first && id[len(id)-1]%3 == 0 {
			w.WriteHeader(http.StatusInternalServerError) // some need a retry
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer rc.Close()
	ep, secret, err := a.Webhooks.CreateEndpoint(context.Background(), tb.Tenant.ID,
		webhooks.EndpointInput{URL: rc.URL + "/hook", Events: []string{"test.crash"}})
	require.NoError(t, err)
	v, err := verify.New(secret)
	require.NoError(t, err)
	verifier.Store(v)

	db := store.Bind(a.Postgres, func(x *postgres.Tx) webhooks.Tx { return x })
	const n = 120
	for i := range n {
		require.NoError(t, db.InTx(context.Background(), func(tx webhooks.Tx) error {
			return events.Emit(context.Background(), tx, tb.Tenant.ID, "test.crash", map[string]any{"i": i})
		}))
	}

	env := append(os.Environ(),
		"PERFECTPAY_DEV_MODE=true",
		"PERFECTPAY_STORE_DRIVER=postgres",
		"PERFECTPAY_STORE_POSTGRES_URL="+dbURL,
		"PERFECTPAY_STORE_POSTGRES_MIGRATE=false",
		"PERFECTPAY_SECRETS_HMAC_KEY="+cfg.Secrets.HMACKey,
		"PERFECTPAY_WEBHOOKS_SECRET_KEY="+cfg.Webhooks.SecretKey,
		"PERFECTPAY_WEBHOOKS_TIMEOUT=1s", // lease = 2×timeout + 5 s = 7 s
		"PERFECTPAY_WEBHOOKS_DISPATCH_INTERVAL=50ms",
		"PERFECTPAY_WEBHOOKS_CONCURRENCY=8",
		"PERFECTPAY_WEBHOOKS_RETRY_SCHEDULE=0s,1s,1s,1s,1s,1s,1s,1s",
		"PERFECTPAY_LOG_LEVEL=warn",
	)
	start := func() (*exec.Cmd, *apptest.SyncBuffer) {
		logs := &apptest.SyncBuffer{}
		cmd := exec.Command(bin, "serve", "--addr", "127.0.0.1:0")
		cmd.Env, cmd.Stdout, cmd.Stderr = env, logs, logs
		require.NoError(t, cmd.Start())
		return cmd, logs
	}
	pool := a.Postgres.Pool()
	count := func(where string) int {
		var c int
		require.NoError(t, pool.QueryRow(context.Background(), `SELECT count(*) FROM webhook_deliveries WHERE `+where).Scan(&c))
		return c
	}

	node1, logs1 := start()
	require.Eventually(t, func() bool { return total.Load() >= n/3 }, 60*time.Second, 10*time.Millisecond, "first node delivers")
	require.NoError(t, node1.Process.Kill()) // SIGKILL: no shutdown, leases left behind
	_ = node1.Wait()
	inFlight := count(`status = 'pending' AND claim_token IS NOT NULL`)
	pending := count(`status = 'pending'`)
	t.Logf("killed node 1 after %d requests: %d deliveries in flight (leased), %d pending", total.Load(), inFlight, pending)
	assert.Positive(t, inFlight, "deliveries were in flight at the kill\n%s", logs1.String())
	assert.Positive(t, pending, "work was left for the second node")

	node2, logs2 := start()
	defer func() {
		_ = node2.Process.Signal(os.Interrupt)
		_ = node2.Wait()
	}()
	if !assert.Eventually(t, func() bool { return count(`status <> 'succeeded'`) == 0 }, 90*time.Second, 50*time.Millisecond,
		"every delivery succeeds after the restart") {
		t.Fatalf("node 2 logs:\n%s", logs2.String())
	}

	// Every outbox row is accounted for: one per event, each succeeded.
	assert.Equal(t, n, count(`endpoint_id = '`+ep.ID+`'`))
	assert.Equal(t, n, count(`status = 'succeeded' AND completed_at IS NOT NULL AND claim_token IS NULL`))
	var events []string
	rows, err := pool.Query(context.Background(), `SELECT id FROM events WHERE type = 'test.crash'`)
	require.NoError(t, err)
	for rows.Next() {
		var id string
		require.NoError(t, rows.Scan(&id))
		events = append(events, id)
	}
	require.NoError(t, rows.Err())
	require.Len(t, events, n)
	mu.Lock()
	defer mu.Unlock()
	dups := 0
	for _, id := range events {
		assert.GreaterOrEqual(t, seen[id], 1, "event %s delivered at least once", id)
		if seen[id] > 1 {
			dups++
		}
	}
	assert.Zero(t, badSigs.Load(), "every request was signed")
	t.Logf("%d events, %d requests, %d events seen more than once (retries and in-flight resends)", n, total.Load(), dups)
}

package e2e

import (
	"context"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/app/apptest"
	"github.com/perfectpay/perfectpay/store/pgtest"
)

// Figures of the fault run. PERFECTPAY_CHAOS_ROUNDS repeats the three
// faults (make chaos runs several rounds; make test-long one).
const (
	chaosNodes      = 3
	chaosClients    = 12
	chaosSpenders   = 4
	chaosBudget     = 100_000_000 // minor units: the load never exhausts it
	chaosWarmup     = 24          // final answers before a fault is injected
	chaosAfter      = 24          // final answers after recovery before the load stops
	chaosBaseline   = 200         // final answers of the run without a fault
	chaosOutage     = 3 * time.Second
	chaosStall      = 5 * time.Second // longer than a charge's processor timeout with its retry
	chaosRoundsEnvK = "PERFECTPAY_CHAOS_ROUNDS"
)

// TestChaos runs three `perfectpay serve` nodes on one PostgreSQL (a
// private cluster the test may stop) under a load of agent charges, and
// injects one fault after another: a node killed with SIGKILL and started
// again, PostgreSQL stopped and started, the acquirer stalled. After each
// fault, with the load stopped and nothing left pending: every client's
// final answer is what the database holds (no charge lost, none doubled),
// no request was ever answered 500 (503 store_unavailable with Retry-After
// while the database was away; mandate reads and token requests probed
// during the outage too), the ledger rule holds on every mandate,
// and every event emitted reached the tenant's webhook receiver. Recovery
// needs no manual step: the test only restarts what it stopped. It logs
// charges per second, answers by status and the recovery time of each
// fault.
func TestChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a PostgreSQL cluster and three server processes")
	}
	rounds := 1
	if v := os.Getenv(chaosRoundsEnvK); v != "" {
		n, err := strconv.Atoi(v)
		require.NoError(t, err, chaosRoundsEnvK)
		rounds = max(n, 1)
	}
	pg := pgtest.NewCluster(t)
	cl := &cluster{dbURL: pg.NewURL(t)}
	cl.env = slices.Concat(nodeEnv(10), resilientEnv, faultEnv)
	for range chaosNodes {
		cl.nodes = append(cl.nodes, apptest.StartProcess(t, cl.dbURL, cl.env...))
	}
	pool, err := pgxpool.New(context.Background(), cl.dbURL)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	cl.db = pool

	s := newShop(t, cl)
	hooks := newHookReceiver(t, s, pool)
	spenders := s.spenders(t, chaosSpenders, chaosBudget)

	var mu sync.Mutex // guards the nodes' URLs (a restarted node has a new port)
	urls := make([]string, chaosNodes)
	for i, n := range cl.nodes {
		urls[i] = n.URL
	}
	nodeURL := func(i int) string { mu.Lock(); defer mu.Unlock(); return urls[i] }

	// phase runs the load, injects a fault once it is under way, heals it,
	// waits for the first charge answered 200 after the heal (on node when
	// node >= 0), lets the load run a little longer (longer for the
	// baseline, node -2) and stops it, then checks everything.
	phase := func(t *testing.T, fault func() (healed time.Time), node int) *load {
		l := startLoad(s, spenders, chaosNodes, chaosClients, nodeURL)
		waitFor(t, "the load to start", func() bool { return l.count() >= chaosWarmup })
		injected := time.Now()
		healed := fault()
		var recovered time.Time
		waitFor(t, "a charge to succeed after the fault", func() bool {
			recovered = l.firstOK(healed, node)
			return !recovered.IsZero()
		})
		n, after := l.count(), chaosAfter
		if node == -2 {
			after = chaosBaseline
		}
		waitFor(t, "the load to go on", func() bool { return l.count() >= n+after })
		answers := l.stop()
		checkSettled(t, pool, cl.dbURL, s, spenders, answers)
		events := hooks.checkDelivered(t, pool, s.tenantID)
		t.Logf("%s: fault lasted %s, first charge succeeded %s after the heal; %s; %d events delivered so far",
			t.Name(), healed.Sub(injected).Round(time.Millisecond), recovered.Sub(healed).Round(time.Millisecond),
			l.figures(), events)
		return l
	}

	for round := range rounds {
		t.Run("baseline", func(t *testing.T) {
			phase(t, func() time.Time { return time.Now() }, -2)
		})
		t.Run("kill_node", func(t *testing.T) {
			victim := round % chaosNodes
			l := phase(t, func() time.Time {
				cl.nodes[victim].Kill()
				cl.nodes[victim].Restart() // waits for /readyz
				mu.Lock()
				urls[victim] = cl.nodes[victim].URL
				mu.Unlock()
				return time.Now()
			}, victim)
			lost := 0
			for _, a := range l.answers {
				lost += a.lost
			}
			assert.Positive(t, lost, "requests were cut by the kill and sent again")
		})
		t.Run("postgres_outage", func(t *testing.T) {
			l := phase(t, func() time.Time {
				probe := startProber(s, spenders[0], chaosNodes, nodeURL)
				pg.Stop(t)
				time.Sleep(chaosOutage) // the outage's length, not a synchronization
				pg.Start(t)
				t.Logf("other routes during the outage: %s", probe.stop(t))
				return time.Now()
			}, -1)
			unavailable := 0
			for _, a := range l.answers {
				if slices.Contains(a.seen, 503) {
					unavailable++
				}
			}
			assert.Positive(t, unavailable, "requests were answered 503 while PostgreSQL was away")
		})
		t.Run("processor_stall", func(t *testing.T) {
			phase(t, func() time.Time { return stallAcquirer(t, cl.dbURL, chaosStall) }, -1)
		})
	}
}

// stallAcquirer makes the simulated acquirer stop answering for d: its
// ledger lives in the store, shared by every node as a real acquirer's is,
// and a lock on it holds every authorization, capture, void and refund
// until the node's processor timeout gives up on the call. It returns
// when the stall ends.
func stallAcquirer(t *testing.T, dbURL string, d time.Duration) time.Time {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dbURL)
	require.NoError(t, err)
	defer conn.Close(ctx)
	tx, err := conn.Begin(ctx)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, `LOCK TABLE sim_authorizations, sim_refunds IN ACCESS EXCLUSIVE MODE`)
	require.NoError(t, err)
	time.Sleep(d) // the stall's length, not a synchronization
	var waiting int
	require.NoError(t, tx.QueryRow(ctx, `SELECT count(*) FROM pg_locks WHERE NOT granted`).Scan(&waiting))
	require.NoError(t, tx.Rollback(ctx))
	assert.Positive(t, waiting, "processor calls were held by the stall")
	return time.Now()
}

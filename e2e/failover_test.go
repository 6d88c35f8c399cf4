package e2e

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/app/apptest"
	"github.com/perfectpay/perfectpay/store/pgtest"
)

// Figures of the failover run.
const (
	failoverNodes    = 2
	failoverClients  = 8
	failoverSpenders = 2
	failoverWarmup   = 40 // final answers before the primary is killed
	failoverAfter    = 40 // final answers after the first success on the new primary
	failoverGoal     = 10 * time.Second
)

// TestFailover runs two `perfectpay serve` nodes on a PostgreSQL made
// highly available by pg_auto_failover (a monitor, a primary and a
// synchronous standby, all on this machine in the test's own folders).
// The nodes reach it with a multi-host URL and
// target_session_attrs=read-write. Under a load of agent charges the
// primary is killed (SIGKILL of its keeper, server and backends); the
// monitor promotes the standby and the nodes find it without being told.
// Then: every charge acknowledged before, during or after the failover is
// in the database as answered (the standby was synchronous: nothing
// acknowledged is lost), no key made two charges, no request was
// answered 500 (503 store_unavailable while no primary was reachable;
// mandate reads and token requests probed during the failover too),
// the ledger rule holds on every mandate, and every event emitted reached
// the tenant's webhook receiver. It logs the unavailability (the longest
// time without an acknowledged charge; the goal is at most 10 s, not
// asserted), the monitor's events and what the new primary's keeper and
// server logged since the kill (where the failover's time went). It
// fails, never skips, under CI when pg_auto_failover is missing.
func TestFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a pg_auto_failover formation and two server processes")
	}
	ha := pgtest.NewHA(t)
	cl := &cluster{dbURL: ha.NewURL(t)}
	cl.env = slices.Concat(nodeEnv(10), resilientEnv, faultEnv)
	for range failoverNodes {
		cl.nodes = append(cl.nodes, apptest.StartProcess(t, cl.dbURL, cl.env...))
	}
	pool, err := pgxpool.New(context.Background(), cl.dbURL)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	cl.db = pool

	s := newShop(t, cl)
	hooks := newHookReceiver(t, s, pool)
	spenders := s.spenders(t, failoverSpenders, chaosBudget)
	nodeURL := func(i int) string { return cl.nodes[i].URL }

	old := ha.Primary(t)
	l := startLoad(s, spenders, failoverNodes, failoverClients, nodeURL)
	waitFor(t, "the load to start", func() bool { return l.count() >= failoverWarmup })
	probe := startProber(s, spenders[0], failoverNodes, nodeURL)
	killed := time.Now()
	ha.Kill(t, old)
	promoted := ha.WaitPromoted(t, old)
	promotedAt := time.Now()
	t.Logf("other routes during the failover: %s", probe.stop(t))
	var back time.Time
	waitFor(t, "a charge to succeed after the promotion", func() bool {
		back = l.firstOK(promotedAt, -1)
		return !back.IsZero()
	})
	n := l.count()
	waitFor(t, "the load to go on", func() bool { return l.count() >= n+failoverAfter })
	answers := l.stop()
	t.Logf("killed %s at %s UTC; monitor events:\n  %s", old, killed.UTC().Format("15:04:05.000"), strings.Join(ha.Events(t), "\n  "))
	t.Logf("%s since the kill:\n%s", promoted, ha.SinceKill(promoted))

	// The harness's own pool may hold connections to the dead primary:
	// check with a fresh one, as the nodes do.
	pool.Close()
	fresh, err := pgxpool.New(context.Background(), cl.dbURL)
	require.NoError(t, err)
	t.Cleanup(fresh.Close)
	checkSettled(t, fresh, cl.dbURL, s, spenders, answers)
	events := hooks.checkDelivered(t, fresh, s.tenantID)

	// Every acknowledged charge is on the new primary.
	var acked []string
	for _, a := range answers {
		if a.resp != nil && a.resp.Status == 200 {
			id, _ := a.resp.JSON["id"].(string)
			acked = append(acked, id)
		}
	}
	var found int
	require.NoError(t, fresh.QueryRow(context.Background(),
		`SELECT count(*) FROM charges WHERE id = ANY($1) AND status = 'succeeded'`, acked).Scan(&found))
	assert.Equal(t, len(acked), found, "every charge acknowledged succeeded is on the new primary")

	// Unavailability as clients saw it: the longest time without a charge
	// acknowledged, which spans the failover (without a fault the gaps
	// are milliseconds).
	var oks []time.Time
	for _, a := range answers {
		if a.resp != nil && a.resp.Status == 200 {
			oks = append(oks, a.at)
		}
	}
	slices.SortFunc(oks, func(a, b time.Time) int { return a.Compare(b) })
	var unavailable time.Duration
	for i := 1; i < len(oks); i++ {
		unavailable = max(unavailable, oks[i].Sub(oks[i-1]))
	}
	t.Logf("failover %s -> %s: standby promoted %s after the kill, first charge acknowledged %s after the promotion; "+
		"unavailability (longest time without an acknowledged charge) %s, goal ≤ %s; %d acknowledged charges all found; "+
		"%d events delivered; %s",
		old, promoted, promotedAt.Sub(killed).Round(time.Millisecond), back.Sub(promotedAt).Round(time.Millisecond),
		unavailable.Round(time.Millisecond), failoverGoal, len(acked), events, l.figures())
	if unavailable > failoverGoal {
		t.Logf("NOTE: unavailability %s above the %s goal on this run (a busy machine stretches every timeout)", unavailable, failoverGoal)
	}
}

package server_test

import (
	"context"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/app"
	"github.com/perfectpay/perfectpay/app/apptest"
	"github.com/perfectpay/perfectpay/audit"
	"github.com/perfectpay/perfectpay/store/postgres"
)

// cost is what one request asked of PostgreSQL.
type cost struct {
	// RoundTrips counts every exchange that waits for the server: a
	// statement, a batch (a pipeline of statements), a prepare.
	RoundTrips int
	// Commits counts the transactions that committed: explicit COMMITs
	// and writes (or batches) that ran outside a transaction.
	Commits    int
	Statements []string
}

// costTracer counts round trips and commits per request, by the request
// id the request's context carries (audit.ActorFrom); statements without
// one (background jobs, group commits) are counted under "".
type costTracer struct {
	mu  sync.Mutex
	per map[string]*cost
}

type traceKey struct{}

type traced struct {
	req string
	sql string
	// batch: whether the batch committed explicitly, and whether it
	// wrote (a read-only batch outside a transaction commits nothing).
	committed, wrote bool
}

func newCostTracer() *costTracer { return &costTracer{per: map[string]*cost{}} }

func (c *costTracer) of(req string) *cost {
	x := c.per[req]
	if x == nil {
		x = &cost{}
		c.per[req] = x
	}
	return x
}

// take returns the cost of a request and forgets it.
func (c *costTracer) take(req string) cost {
	c.mu.Lock()
	defer c.mu.Unlock()
	x := c.per[req]
	delete(c.per, req)
	if x == nil {
		return cost{}
	}
	return *x
}

func (c *costTracer) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.per = map[string]*cost{}
}

func isTxControl(sql string) bool {
	s := strings.ToLower(strings.TrimSpace(sql))
	return strings.HasPrefix(s, "begin") || s == "rollback"
}

// writeSQL matches a statement that writes rows.
var writeSQL = regexp.MustCompile(`(?i)\binsert\s+into\b|\bupdate\s+\w+(\s+(as\s+)?\w+)?\s+set\b|\bdelete\s+from\b`)

func isRead(sql string) bool { return !writeSQL.MatchString(sql) }

func isCommit(sql string) bool { return strings.EqualFold(strings.TrimSpace(sql), "commit") }

func shortSQL(sql string) string {
	s := strings.Join(strings.Fields(sql), " ")
	if len(s) > 70 {
		s = s[:70]
	}
	return s
}

func (c *costTracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	t := &traced{req: audit.ActorFrom(ctx).RequestID, sql: d.SQL}
	c.mu.Lock()
	x := c.of(t.req)
	x.RoundTrips++
	x.Statements = append(x.Statements, shortSQL(d.SQL))
	c.mu.Unlock()
	return context.WithValue(ctx, traceKey{}, t)
}

func (c *costTracer) TraceQueryEnd(ctx context.Context, conn *pgx.Conn, d pgx.TraceQueryEndData) {
	t, _ := ctx.Value(traceKey{}).(*traced)
	if t == nil || d.Err != nil {
		return
	}
	// A statement outside a transaction commits on its own; a read-only
	// one writes nothing durable, so only writes count.
	if isCommit(t.sql) || (!isTxControl(t.sql) && !isRead(t.sql) && conn.PgConn().TxStatus() == 'I') {
		c.mu.Lock()
		c.of(t.req).Commits++
		c.mu.Unlock()
	}
}

func (c *costTracer) TraceBatchStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceBatchStartData) context.Context {
	t := &traced{req: audit.ActorFrom(ctx).RequestID}
	c.mu.Lock()
	c.of(t.req).RoundTrips++
	c.mu.Unlock()
	return context.WithValue(ctx, traceKey{}, t)
}

func (c *costTracer) TraceBatchQuery(ctx context.Context, _ *pgx.Conn, d pgx.TraceBatchQueryData) {
	t, _ := ctx.Value(traceKey{}).(*traced)
	if t == nil {
		return
	}
	c.mu.Lock()
	x := c.of(t.req)
	x.Statements = append(x.Statements, "  (batch) "+shortSQL(d.SQL))
	if !isRead(d.SQL) {
		t.wrote = true
	}
	if isCommit(d.SQL) && d.Err == nil {
		x.Commits++
		t.committed = true
	}
	c.mu.Unlock()
}

func (c *costTracer) TraceBatchEnd(ctx context.Context, conn *pgx.Conn, d pgx.TraceBatchEndData) {
	t, _ := ctx.Value(traceKey{}).(*traced)
	if t == nil || d.Err != nil || t.committed || !t.wrote {
		return
	}
	// A batch run outside a transaction is one implicit transaction.
	if conn.PgConn().TxStatus() == 'I' {
		c.mu.Lock()
		c.of(t.req).Commits++
		c.mu.Unlock()
	}
}

func (c *costTracer) TracePrepareStart(ctx context.Context, _ *pgx.Conn, d pgx.TracePrepareStartData) context.Context {
	return context.WithValue(ctx, traceKey{}, &traced{req: audit.ActorFrom(ctx).RequestID, sql: d.SQL})
}

// TracePrepareEnd counts a prepare that went to the server (one already
// prepared on the connection costs nothing).
func (c *costTracer) TracePrepareEnd(ctx context.Context, _ *pgx.Conn, d pgx.TracePrepareEndData) {
	t, _ := ctx.Value(traceKey{}).(*traced)
	if t == nil || d.AlreadyPrepared {
		return
	}
	c.mu.Lock()
	x := c.of(t.req)
	x.RoundTrips++
	x.Statements = append(x.Statements, "  (prepare) "+shortSQL(t.sql))
	c.mu.Unlock()
}

func (x cost) String() string {
	return fmt.Sprintf("%d round trips, %d commits:\n\t%s", x.RoundTrips, x.Commits, strings.Join(x.Statements, "\n\t"))
}

// Budget of one allowed agent charge on PostgreSQL (every statement of the
// request itself: claim, load, decision, reservation, charge, settlement,
// stored answer). The access-audit row is written by a group commit shared
// with other requests and is counted apart.
const (
	maxChargeRoundTrips = 6
	maxChargeCommits    = 2
)

// TestAgentChargeCost counts the round trips and commits one allowed agent
// charge sends to PostgreSQL, after a warm-up (so every statement is
// prepared on the pool's connections), and fails when either grows past
// its budget: with the abuse and fraud defences off, and on (as they are
// by default), whose reads share the charge's round trips.
func TestAgentChargeCost(t *testing.T) {
	for _, defences := range []bool{false, true} {
		t.Run(fmt.Sprintf("defences=%v", defences), func(t *testing.T) { agentChargeCost(t, defences) })
	}
}

func agentChargeCost(t *testing.T, defences bool) {
	tr := newCostTracer()
	postgres.TraceNewPools(tr)
	n := apptest.New(t, "postgres", func(c *app.Config) {
		c.Store.Postgres.MaxConns = 2 // warm-up prepares every statement on both
		c.Abuse.Enabled, c.Fraud.Enabled = defences, defences
	})
	postgres.TraceNewPools(nil)
	s := newShop(t, n)
	m := s.mandate(t, map[string]any{"budget": 1_000_000, "max_amount_per_charge": 1000, "approval_threshold": 1000})
	tok := s.token(t, m)
	// Pairs of concurrent charges, so each of the pool's connections
	// runs (and prepares) every statement of the path.
	for range 8 {
		var wg sync.WaitGroup
		rs := make([]*apptest.Response, 2)
		for i := range rs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rs[i] = s.charge(t, tok, 300, nil, "")
			}()
		}
		wg.Wait()
		for _, r := range rs {
			require.Equal(t, 200, r.Status, string(r.Body))
		}
	}
	var worst cost
	for range 5 {
		tr.reset()
		r := s.charge(t, tok, 300, nil, "")
		require.Equal(t, 200, r.Status, string(r.Body))
		require.Equal(t, "succeeded", r.JSON["status"])
		c := tr.take(r.Header.Get("Request-Id"))
		if c.RoundTrips > worst.RoundTrips || c.Commits > worst.Commits {
			worst = c
		}
	}
	t.Logf("one agent charge: %s", worst)
	others := []string{}
	tr.mu.Lock()
	for k, v := range tr.per {
		others = append(others, fmt.Sprintf("%q: %d round trips, %d commits", k, v.RoundTrips, v.Commits))
	}
	tr.mu.Unlock()
	sort.Strings(others)
	t.Logf("outside the requests: %v", others)
	require.LessOrEqual(t, worst.Commits, maxChargeCommits, "commits of one agent charge")
	require.LessOrEqual(t, worst.RoundTrips, maxChargeRoundTrips, "round trips of one agent charge")
}

package e2e

import (
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/app/apptest"
)

// maxAuditBatch is the largest access-audit batch charge.pgbench.sql
// writes (its section 7. has as many INSERTs).
const maxAuditBatch = 8

// benchClients is the number of concurrent clients of every benchmark
// (HTTP and pgbench alike): b.SetParallelism(benchClients/GOMAXPROCS).
const benchClients = 16

// BenchmarkAgentCharges measures agent charge authorizations per second
// end to end — POST /v1/charges with an agent token over loopback HTTP to
// one `perfectpay serve` process on PostgreSQL, 16 keep-alive clients, each
// charge allowed by the policy, reserved, authorized by the simulated
// acquirer and captured — (a) spread over 64 agents with a mandate each and
// (b) all on one hot mandate. Next to each, pgbench runs the same SQL
// (charge.pgbench.sql: every statement one charge sends, in the same
// transactions and round trips, and the access-audit rows batched as the
// server's group commit batched them in the HTTP run just before) with 16
// clients on the same database, so ns/op compare directly; the ratio is
// reported in BENCHMARKS.md.
//
//	go test ./e2e/ -run '^$' -bench AgentCharges -benchtime 4000x
func BenchmarkAgentCharges(b *testing.B) {
	c := startCluster(b, 1, 20, "PERFECTPAY_ISSUER_ACCESS_TOKEN_TTL=15m", "PERFECTPAY_LOG_LEVEL=error")
	node := c.nodes[0].URL
	s := newShop(b, c)
	ctx := context.Background()
	_, err := c.db.Exec(ctx, `CREATE TABLE bench_mandates (n int PRIMARY KEY, mandate_id text NOT NULL, agent_id text NOT NULL, jti text NOT NULL)`)
	require.NoError(b, err)

	type target struct{ mandate, agent, token string }
	setup := func(n int, table string) []target {
		out := make([]target, n)
		for i := range out {
			a := s.agent(b)
			m := s.mandate(b, a, 90_000_000)
			tok := s.token(b, node, a, m)
			out[i] = target{m, a.id, tok}
			_, err := c.db.Exec(ctx, `INSERT INTO `+table+` VALUES ($1, $2, $3, $4)`, i+1, m, a.id, claimsOf(b, tok)["jti"])
			require.NoError(b, err)
		}
		return out
	}
	many := setup(64, "bench_mandates")
	_, err = c.db.Exec(ctx, `CREATE TABLE bench_hot (LIKE bench_mandates INCLUDING ALL)`)
	require.NoError(b, err)
	hot := setup(1, "bench_hot")

	// A database in service has statistics; a fresh one has none, and the
	// plans the server's connections cache on empty tables can scan whole
	// tables long after they have grown (autovacuum analyzes them only a
	// minute later). Warm up with real charges, then ANALYZE (which
	// invalidates every cached plan).
	warm := make(chan error)
	for w := range 8 {
		go func() {
			var err error
			for i := w; i < 800 && err == nil; i += 8 {
				t := many[i%len(many)]
				if i%4 == 0 {
					t = hot[0]
				}
				var r *apptest.Response
				if r, err = s.charge(node, t.token, 1, s.card); err == nil && r.Status != 200 {
					err = fmt.Errorf("warm-up charge: %d %s", r.Status, r.Body)
				}
			}
			warm <- err
		}()
	}
	for range 8 {
		require.NoError(b, <-warm)
	}
	_, err = c.db.Exec(ctx, `ANALYZE`)
	require.NoError(b, err)

	// auditBatch is the mean number of access-audit rows per group commit
	// in the last HTTP run; the pgbench run after it batches them alike
	// (charge.pgbench.sql, 7.).
	auditBatch := 1.0

	httpRun := func(ts []target) func(b *testing.B) {
		return func(b *testing.B) {
			var next, failed atomic.Int64
			b.SetParallelism(benchClients / max(1, runtime.GOMAXPROCS(0)))
			pid := c.nodes[0].Cmd.Process.Pid
			var seq0 int64
			require.NoError(b, c.db.QueryRow(ctx, `SELECT coalesce(max(seq), 0) FROM audit_events`).Scan(&seq0))
			b.ResetTimer()
			start, cpu0 := time.Now(), cpuNow(pid)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					t := ts[int(next.Add(1))%len(ts)]
					r, err := s.charge(node, t.token, 1, s.card)
					if err != nil || r.Status != 200 {
						if failed.Add(1) == 1 {
							b.Errorf("charge: %v %v", err, r)
						}
					}
				}
			})
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "charges/s")
			cpu1 := cpuNow(pid)
			reportCPU(b, cpu0, cpu1, cpu1.self-cpu0.self, b.N)
			b.StopTimer()
			// The rows one group commit wrote share its transaction id.
			require.NoError(b, c.db.QueryRow(ctx, `SELECT coalesce(count(*)::float8 / nullif(count(DISTINCT xmin::text), 0), 1)
				FROM audit_events WHERE seq > $1 AND action = 'api.request'`, seq0).Scan(&auditBatch))
			b.ReportMetric(auditBatch, "audit-rows/commit")
		}
	}
	pgbenchRun := func(table string, nm int) func(b *testing.B) {
		return func(b *testing.B) {
			bin, err := exec.LookPath("pgbench")
			if err != nil {
				b.Skip("pgbench is not installed (apt-get install -y postgresql-contrib)")
			}
			script := filepath.Join(b.TempDir(), "charge.sql")
			src, err := os.ReadFile("charge.pgbench.sql")
			require.NoError(b, err)
			src = regexp.MustCompile(`\bbench_mandates\b`).ReplaceAll(src, []byte(table))
			require.NoError(b, os.WriteFile(script, src, 0o600))
			perClient := max(1, (b.N+benchClients-1)/benchClients)
			ab := min(max(1, int(math.Round(auditBatch))), maxAuditBatch)
			args := []string{"-n", "-M", "prepared", "-f", script, "-c", strconv.Itoa(benchClients), "-j", "2",
				"-t", strconv.Itoa(perClient), "-D", "tenant=" + s.tenantID, "-D", "merchant=" + s.merchant,
				"-D", "card=" + s.card, "-D", fmt.Sprintf("nm=%d", nm),
				"-D", "velocity=0", // the nodes run with every velocity limit off
				"-D", fmt.Sprintf("ab=%d", ab), c.dbURL}
			pid := c.nodes[0].Cmd.Process.Pid
			b.ResetTimer()
			start, cpu0 := time.Now(), cpuNow(pid)
			cmd := exec.Command(bin, args...)
			out, err := cmd.CombinedOutput()
			elapsed := time.Since(start)
			cpu1 := cpuNow(pid)
			require.NoError(b, err, "%s", out)
			m := regexp.MustCompile(`number of failed transactions: (\d+)`).FindSubmatch(out)
			if m != nil && string(m[1]) != "0" {
				b.Fatalf("pgbench: failed transactions:\n%s", out)
			}
			tps := regexp.MustCompile(`tps = ([0-9.]+)`).FindSubmatch(out)
			require.NotNil(b, tps, "%s", out)
			v, _ := strconv.ParseFloat(string(tps[1]), 64)
			b.ReportMetric(v, "charges/s")
			b.ReportMetric(float64(ab), "audit-rows/commit")
			// Go's ns/op counts b.N operations; pgbench ran perClient*clients.
			b.ReportMetric(float64(elapsed.Nanoseconds())/float64(perClient*benchClients), "ns/charge")
			reportCPU(b, cpu0, cpu1, cmd.ProcessState.UserTime()+cmd.ProcessState.SystemTime(), perClient*benchClients)
		}
	}
	b.Run("many_mandates/http", httpRun(many))
	b.Run("many_mandates/pgbench", pgbenchRun("bench_mandates", 64))
	b.Run("hot_mandate/http", httpRun(hot))
	b.Run("hot_mandate/pgbench", pgbenchRun("bench_hot", 1))
}

// cpuUse is CPU time used so far: by the whole machine (every process,
// from /proc/stat), by this process and by the server process.
type cpuUse struct{ machine, self, server time.Duration }

const clockTick = 10 * time.Millisecond // USER_HZ = 100 on Linux

func cpuNow(serverPID int) cpuUse {
	var u cpuUse
	if raw, err := os.ReadFile("/proc/stat"); err == nil {
		f := strings.Fields(strings.SplitN(string(raw), "\n", 2)[0])
		// cpu user nice system idle iowait irq softirq steal
		for _, i := range []int{1, 2, 3, 6, 7, 8} {
			if i < len(f) {
				n, _ := strconv.ParseInt(f[i], 10, 64)
				u.machine += time.Duration(n) * clockTick
			}
		}
	}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		u.self = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	if raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", serverPID)); err == nil {
		s := string(raw)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
		// fields after the command: state(3) ... utime(14) stime(15)
		ut, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		u.server = time.Duration(ut+st) * clockTick
	}
	return u
}

// reportCPU reports CPU milliseconds per charge between a and z: the
// machine's, the server's, the client's (this process or pgbench), and the
// rest (PostgreSQL, plus whatever else ran on the machine).
func reportCPU(b *testing.B, a, z cpuUse, client time.Duration, n int) {
	per := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) / float64(n) }
	machine, server := z.machine-a.machine, z.server-a.server
	b.ReportMetric(per(machine), "cpu-ms/charge")
	b.ReportMetric(per(server), "server-cpu-ms/charge")
	b.ReportMetric(per(client), "client-cpu-ms/charge")
	b.ReportMetric(per(machine-server-client), "pg+other-cpu-ms/charge")
}

package pgtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/perfectpay/perfectpay/internal/ids"
	"github.com/perfectpay/perfectpay/store/postgres"
)

// HA is a highly available PostgreSQL owned by one test, run by
// pg_auto_failover on this machine: a monitor, a primary and a synchronous
// standby, each its own server in a temporary folder on its own free port.
// The test may kill the primary; the monitor then promotes the standby.
// Everything is stopped and deleted when the test ends.
type HA struct {
	dir     string
	autoctl string // pg_autoctl
	pgctl   string // pg_ctl of the PostgreSQL version pg_auto_failover is built for
	cred    *syscall.Credential

	monitorPort int
	mu          sync.Mutex
	procs       map[string]*exec.Cmd // node name (or "monitor") -> its pg_autoctl process
	ports       map[string]int
	killedAt    map[string]int64 // file -> its size when a node was killed (see SinceKill)
}

// Failover timing of the monitor and keepers, tighter than the defaults
// (which take about 30 s to fail over) so that a failover completes in a
// few seconds on one machine. A failover runs: the monitor finds the
// primary unhealthy (a failed health check and no keeper report for
// node_considered_unhealthy_timeout); the standby reports
// prepare_promotion; the monitor sets the old primary to demote_timeout
// and the standby to stop_replication (the standby promotes itself but
// stays read-only, so target_session_attrs=read-write does not pick it);
// only once primary_demote_timeout has passed since then does the standby
// get wait_primary and accept writes.
//
// Safety: a primary's keeper stops PostgreSQL once it has reached neither
// the monitor nor a standby for more than network_partition_timeout,
// counted in whole seconds. A primary cut off from both (connections
// refused) has stopped by 3 s after its last report; its standby accepts
// writes no earlier than node_considered_unhealthy_timeout +
// primary_demote_timeout (5 s) after that report, plus three keeper round
// trips. A primary cut off from the monitor only still has its standby
// until the standby promotes itself (in stop_replication, after the
// demote timeout started), so it may stop up to 3 s after that, which can
// be after the standby accepts writes. Synchronous replication stays on
// throughout: a cut-off primary cannot acknowledge a commit its standby
// has not confirmed, and a promoted standby confirms none, so no
// acknowledged commit is lost in either case (nor where packets are
// dropped silently and the old primary's keeper takes longer to notice).
var haMonitorSettings = map[string]string{
	// Check each node every second; a refused connection is tried once
	// more half a second later before the node is marked bad.
	"pgautofailover.health_check_period":      "1000",
	"pgautofailover.health_check_timeout":     "1000",
	"pgautofailover.health_check_max_retries": "1",
	"pgautofailover.health_check_retry_delay": "500",
	// A node is unhealthy once a health check failed and its keeper (which
	// reports every second) has been silent for 2 s: two missed reports,
	// so a keeper delayed by a busy machine does not start a failover.
	"pgautofailover.node_considered_unhealthy_timeout": "2000",
	// How long the old primary is given to demote itself once the standby
	// converged to prepare_promotion: above network_partition_timeout
	// (see Safety above).
	"pgautofailover.primary_demote_timeout": "3000",
}

// haNetworkPartitionTimeout is the keepers' timeout.network_partition_timeout
// in seconds: a primary that reached neither the monitor nor a standby for
// longer stops PostgreSQL (see Safety above). The default is 20 s.
const haNetworkPartitionTimeout = "2"

// haNodeSettings are set on both data nodes. The promotion ends with a
// checkpoint the keeper waits for (stop_replication), and on a busy
// machine it was the longest step: writing and syncing every buffer the
// standby replayed since its last restartpoint took 4 s. Restartpoints
// follow the primary's checkpoints, so checkpoints every 30 s (the
// minimum) keep what is left to write at a promotion small.
var haNodeSettings = map[string]string{
	"checkpoint_timeout": "'30s'",
}

// NewHA sets up a monitor, a primary ("node_a") and a synchronous standby
// ("node_b") and waits until the standby has caught up. When pg_autoctl or
// the PostgreSQL binaries are missing the test fails under CI and is
// skipped otherwise. pg_autoctl refuses to run as root: as root, every
// process runs as the "postgres" OS user.
func NewHA(t testing.TB) *HA {
	t.Helper()
	h, err := newHA()
	if err != nil {
		unavailableHA(t, err)
		return nil
	}
	t.Cleanup(h.destroy)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	// The monitor, tuned for a quick failover.
	h.monitorPort = h.ports["monitor"]
	h.spawn(t, "monitor", "create", "monitor", "--pgctl", h.pgctl, "--pgdata", h.pgdata("monitor"),
		"--pgport", fmt.Sprint(h.monitorPort), "--hostname", "127.0.0.1", "--auth", "trust", "--no-ssl", "--run")
	h.waitSQL(ctx, t, h.monitorURL("pg_auto_failover"), "the monitor", `SELECT count(*) = 1 FROM pg_extension WHERE extname = 'pgautofailover'`)
	mon, err := pgx.Connect(ctx, h.monitorURL("pg_auto_failover"))
	if err != nil {
		t.Fatalf("pgtest: connect to the monitor: %v", err)
	}
	defer mon.Close(context.Background())
	for _, k := range sortedKeys(haMonitorSettings) {
		if _, err := mon.Exec(ctx, fmt.Sprintf("ALTER SYSTEM SET %s = %s", k, haMonitorSettings[k])); err != nil {
			t.Fatalf("pgtest: monitor setting %s: %v", k, err)
		}
	}
	if _, err := mon.Exec(ctx, "SELECT pg_reload_conf()"); err != nil {
		t.Fatalf("pgtest: reload the monitor: %v", err)
	}

	// Two data nodes, one after the other: the first registers as the
	// primary, the second as its standby.
	for _, name := range []string{"node_a", "node_b"} {
		args := []string{"create", "postgres", "--pgctl", h.pgctl, "--pgdata", h.pgdata(name),
			"--pgport", fmt.Sprint(h.ports[name]), "--hostname", "127.0.0.1", "--listen", "127.0.0.1",
			"--auth", "trust", "--no-ssl", "--name", name, "--dbname", "perfectpay",
			"--monitor", h.monitorURL("pg_auto_failover")}
		if err := h.run(args...); err != nil {
			t.Fatalf("pgtest: %v\n%s", err, h.logs())
		}
		if err := h.run("config", "set", "--pgdata", h.pgdata(name), "timeout.network_partition_timeout", haNetworkPartitionTimeout); err != nil {
			t.Fatalf("pgtest: %v", err)
		}
		h.spawn(t, name, "run", "--pgdata", h.pgdata(name))
		want := 1
		if name == "node_b" {
			want = 2
		}
		h.waitSQL(ctx, t, h.monitorURL("pg_auto_failover"), name+" to join",
			`SELECT count(*) = $1 FROM pgautofailover.node
			 WHERE reportedstate = goalstate AND reportedstate IN ('single', 'primary', 'secondary')`, want)
		h.configure(ctx, t, name)
	}

	h.waitSQL(ctx, t, h.monitorURL("pg_auto_failover"), "a primary with a synchronous standby",
		`SELECT count(*) FILTER (WHERE reportedstate = 'primary' AND goalstate = 'primary') = 1
		    AND count(*) FILTER (WHERE reportedstate = 'secondary' AND goalstate = 'secondary') = 1
		 FROM pgautofailover.node`)
	// The standby is synchronous: a commit the primary acknowledged is on
	// the standby too, so killing the primary loses no acknowledged write.
	h.waitSQL(ctx, t, h.URL("postgres"), "a synchronous standby",
		`SELECT current_setting('synchronous_commit') <> 'off' AND current_setting('synchronous_standby_names') <> ''
		    AND (SELECT count(*) FROM pg_stat_replication WHERE sync_state IN ('sync', 'quorum')) = 1`)
	return h
}

func newHA() (*HA, error) {
	autoctl, err := exec.LookPath("pg_autoctl")
	if err != nil {
		if m, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pg_autoctl"); len(m) > 0 {
			autoctl, err = m[0], nil
		}
	}
	if err != nil {
		return nil, errors.New("pg_autoctl not found (Debian: apt-get install postgresql-15-auto-failover)")
	}
	// The PostgreSQL version whose server has the pgautofailover extension.
	libs, _ := filepath.Glob("/usr/lib/postgresql/*/lib/pgautofailover.so")
	sort.Slice(libs, func(i, j int) bool { return libs[i] > libs[j] })
	var pgctl string
	for _, l := range libs {
		p := filepath.Join(filepath.Dir(filepath.Dir(l)), "bin", "pg_ctl")
		if _, err := os.Stat(p); err == nil {
			pgctl = p
			break
		}
	}
	if pgctl == "" {
		return nil, errors.New("no PostgreSQL server with the pgautofailover extension under /usr/lib/postgresql/*")
	}
	c, err := newCluster() // a temporary folder owned by the server's OS user
	if err != nil {
		return nil, err
	}
	h := &HA{dir: c.dir, autoctl: autoctl, pgctl: pgctl, cred: c.cred, procs: map[string]*exec.Cmd{},
		ports: map[string]int{"monitor": c.port}}
	for _, name := range []string{"node_a", "node_b"} {
		p, err := freePort()
		if err != nil {
			os.RemoveAll(c.dir)
			return nil, err
		}
		h.ports[name] = p
	}
	return h, nil
}

// unavailableHA fails under CI and otherwise skips.
func unavailableHA(t testing.TB, err error) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("pgtest: pg_auto_failover is required when CI is set: %v", err)
	}
	t.Skipf("pgtest: pg_auto_failover unavailable (%v): SKIPPING the failover suite", err)
}

func (h *HA) pgdata(name string) string { return filepath.Join(h.dir, name) }

func (h *HA) monitorURL(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable&connect_timeout=5", h.monitorPort, db)
}

// nodeURL is database db on data node name alone.
func (h *HA) nodeURL(name, db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable&connect_timeout=5", h.ports[name], db)
}

// configure applies haNodeSettings to data node name (ALTER SYSTEM is
// allowed on a standby too) and waits until the server uses them.
func (h *HA) configure(ctx context.Context, t testing.TB, name string) {
	t.Helper()
	// The node has joined, but its keeper may still be starting its server.
	h.waitSQL(ctx, t, h.nodeURL(name, "postgres"), name+" to accept connections", "SELECT true")
	conn, err := pgx.Connect(ctx, h.nodeURL(name, "postgres"))
	if err != nil {
		t.Fatalf("pgtest: connect to %s: %v", name, err)
	}
	defer conn.Close(context.Background())
	for _, k := range sortedKeys(haNodeSettings) {
		if _, err := conn.Exec(ctx, fmt.Sprintf("ALTER SYSTEM SET %s = %s", k, haNodeSettings[k])); err != nil {
			t.Fatalf("pgtest: %s setting %s: %v", name, k, err)
		}
	}
	if _, err := conn.Exec(ctx, "SELECT pg_reload_conf()"); err != nil {
		t.Fatalf("pgtest: reload %s: %v", name, err)
	}
	for _, k := range sortedKeys(haNodeSettings) {
		h.waitSQL(ctx, t, h.nodeURL(name, "postgres"), name+" to use "+k,
			`SELECT current_setting($1) = $2`, k, strings.Trim(haNodeSettings[k], "'"))
	}
}

// command is pg_autoctl with args, as the servers' OS user, with its
// configuration and state files inside the test's folder.
func (h *HA) command(args ...string) *exec.Cmd {
	cmd := exec.Command(h.autoctl, args...)
	cmd.Dir = h.dir
	cmd.Env = []string{
		"HOME=" + h.dir,
		"XDG_CONFIG_HOME=" + filepath.Join(h.dir, "config"),
		"XDG_DATA_HOME=" + filepath.Join(h.dir, "share"),
		"XDG_RUNTIME_DIR=" + filepath.Join(h.dir, "run"),
		"PATH=" + filepath.Dir(h.pgctl) + ":/usr/bin:/bin",
		"LC_ALL=C.UTF-8", "PGTZ=UTC",
	}
	// Its own session, hence its own process group, so killing a node
	// kills its keeper and its PostgreSQL together (but not PostgreSQL's
	// backends and workers: see killUnder).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Credential: h.cred}
	return cmd
}

// run runs pg_autoctl to completion.
func (h *HA) run(args ...string) error {
	out, err := h.command(args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("pg_autoctl %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

// spawn starts a long-running pg_autoctl for name, logging to name.log.
func (h *HA) spawn(t testing.TB, name string, args ...string) {
	t.Helper()
	cmd := h.command(args...)
	f, err := os.Create(filepath.Join(h.dir, name+".log"))
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("pgtest: start pg_autoctl %s: %v", strings.Join(args, " "), err)
	}
	go func() { _ = cmd.Wait(); f.Close() }()
	h.mu.Lock()
	h.procs[name] = cmd
	h.mu.Unlock()
}

// waitSQL polls a query returning one boolean until it is true.
func (h *HA) waitSQL(ctx context.Context, t testing.TB, url, what, query string, args ...any) {
	t.Helper()
	var last error
	for {
		ok, err := queryBool(ctx, url, query, args...)
		if ok {
			return
		}
		last = err
		select {
		case <-ctx.Done():
			t.Fatalf("pgtest: gave up waiting for %s (%v)\n%s", what, last, h.logs())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func queryBool(ctx context.Context, url, query string, args ...any) (bool, error) {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(cctx, url)
	if err != nil {
		return false, err
	}
	defer conn.Close(context.Background())
	var ok bool
	err = conn.QueryRow(cctx, query, args...).Scan(&ok)
	return ok, err
}

// URL is the multi-host URL of database db: both data nodes, with
// target_session_attrs=read-write so a client always reaches the primary,
// whichever node that is.
func (h *HA) URL(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d,127.0.0.1:%d/%s?sslmode=disable&target_session_attrs=read-write&connect_timeout=2",
		h.ports["node_a"], h.ports["node_b"], db)
}

// NewURL creates a migrated database (on the primary; the standby follows)
// and returns its multi-host URL.
func (h *HA) NewURL(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	admin, err := pgx.Connect(ctx, h.URL("postgres"))
	if err != nil {
		t.Fatalf("pgtest: connect to the primary: %v", err)
	}
	defer admin.Close(context.Background())
	name := "pp_test_" + strings.ToLower(ids.Random(12))
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("pgtest: create database: %v", err)
	}
	u := h.URL(name)
	s, err := postgres.Open(ctx, u, postgres.Options{MaxConns: 2})
	if err != nil {
		t.Fatalf("pgtest: open: %v", err)
	}
	defer s.Close()
	if _, err := s.Migrate(ctx); err != nil {
		t.Fatalf("pgtest: migrate: %v", err)
	}
	h.flush(ctx, t)
	return u
}

// flush writes out what creating and migrating a database left in the
// servers' buffers: a checkpoint on the primary and, once the standby has
// replayed it, a restartpoint on the standby. A standby in service holds
// at most a checkpoint interval's changes (haNodeSettings); without this
// the promotion's checkpoint would also write a whole new database made
// moments before, which is the test's setup, not a failover's cost.
func (h *HA) flush(ctx context.Context, t testing.TB) {
	t.Helper()
	var lsn string
	for _, standby := range []bool{false, true} {
		for _, name := range []string{"node_a", "node_b"} {
			conn, err := pgx.Connect(ctx, h.nodeURL(name, "postgres"))
			if err != nil {
				t.Fatalf("pgtest: connect to %s: %v", name, err)
			}
			var inRecovery bool
			err = conn.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&inRecovery)
			if err == nil && inRecovery == standby {
				if standby {
					h.waitSQL(ctx, t, h.nodeURL(name, "postgres"), name+" to replay the checkpoint",
						`SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn`, lsn)
				}
				if _, err = conn.Exec(ctx, "CHECKPOINT"); err == nil && !standby {
					err = conn.QueryRow(ctx, "SELECT pg_current_wal_lsn()::text").Scan(&lsn)
				}
			}
			conn.Close(context.Background())
			if err != nil {
				t.Fatalf("pgtest: checkpoint on %s: %v", name, err)
			}
		}
	}
}

// Primary is the name of the node the monitor holds as primary.
func (h *HA) Primary(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, h.monitorURL("pg_auto_failover"))
	if err != nil {
		t.Fatalf("pgtest: connect to the monitor: %v", err)
	}
	defer conn.Close(context.Background())
	var name string
	if err := conn.QueryRow(ctx, `SELECT nodename FROM pgautofailover.node
		WHERE reportedstate = 'primary' AND goalstate = 'primary'`).Scan(&name); err != nil {
		t.Fatalf("pgtest: the primary: %v", err)
	}
	return name
}

// Kill kills a node with SIGKILL: its keeper, its PostgreSQL and every
// backend, as a machine losing power would.
func (h *HA) Kill(t testing.TB, name string) {
	t.Helper()
	h.mu.Lock()
	cmd := h.procs[name]
	delete(h.procs, name)
	h.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		t.Fatalf("pgtest: no running node %q", name)
	}
	h.markLogs()
	if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); err != nil {
		t.Fatalf("pgtest: kill %s: %v", name, err)
	}
	killUnder(h.pgdata(name))
}

// killUnder kills with SIGKILL every process whose working directory is
// dir or beneath it. PostgreSQL's backends and workers each start a
// session of their own (and work in their data directory), so killing a
// keeper's process group leaves them running until they notice their
// postmaster is gone, and the monitor's health check worker never does.
func killUnder(dir string) {
	for _, pid := range procsUnder(dir) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// procsUnder lists the processes working in dir or beneath it.
func procsUnder(dir string) []int {
	var out []int
	procs, _ := filepath.Glob("/proc/[0-9]*/cwd")
	for _, p := range procs {
		cwd, err := os.Readlink(p)
		if err != nil || (cwd != dir && !strings.HasPrefix(cwd, dir+string(filepath.Separator))) {
			continue
		}
		if pid, err := strconv.Atoi(filepath.Base(filepath.Dir(p))); err == nil && pid != os.Getpid() {
			out = append(out, pid)
		}
	}
	return out
}

// logFiles are the keepers' logs and the data nodes' PostgreSQL logs.
func (h *HA) logFiles() []string {
	files := []string{filepath.Join(h.dir, "monitor.log")}
	for _, name := range []string{"node_a", "node_b"} {
		files = append(files, filepath.Join(h.dir, name+".log"))
		pg, _ := filepath.Glob(filepath.Join(h.pgdata(name), "log", "*.log"))
		files = append(files, pg...)
	}
	return files
}

// markLogs notes every log's size, so that SinceKill shows what was
// written after the kill.
func (h *HA) markLogs() {
	m := map[string]int64{}
	for _, f := range h.logFiles() {
		if fi, err := os.Stat(f); err == nil {
			m[f] = fi.Size()
		}
	}
	h.mu.Lock()
	h.killedAt = m
	h.mu.Unlock()
}

// SinceKill is what node name's keeper and PostgreSQL logged since the
// last Kill (the keeper's steps of a promotion; the server's promotion,
// checkpoints and read-only switches), for timing a failover.
func (h *HA) SinceKill(name string) string {
	h.mu.Lock()
	marks := h.killedAt
	h.mu.Unlock()
	var b strings.Builder
	for _, f := range h.logFiles() {
		rel, _ := filepath.Rel(h.dir, f)
		if !strings.HasPrefix(rel, name) {
			continue
		}
		raw, err := os.ReadFile(f)
		if err != nil || int64(len(raw)) <= marks[f] {
			continue
		}
		server := strings.Contains(rel, string(filepath.Separator))
		var lines []string
		for _, l := range strings.Split(strings.TrimSpace(string(raw[marks[f]:])), "\n") {
			if keepLogLine(l, server) {
				lines = append(lines, l)
			}
		}
		fmt.Fprintf(&b, "--- %s\n%s\n", rel, strings.Join(lines, "\n"))
	}
	return b.String()
}

// keepLogLine keeps a keeper's steps (not the notifications it echoes)
// and a server's promotion, checkpoints and read-only switches.
func keepLogLine(l string, server bool) bool {
	if !server {
		return !strings.Contains(l, "New state for")
	}
	for _, w := range []string{"promot", "checkpoint", "restartpoint", "ready to accept", "default_transaction_read_only"} {
		if strings.Contains(l, w) {
			return true
		}
	}
	return false
}

// WaitPromoted waits until a node other than old is the primary and
// accepts writes, and returns its name.
func (h *HA) WaitPromoted(t testing.TB, old string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	h.waitSQL(ctx, t, h.monitorURL("pg_auto_failover"), "the standby to be promoted",
		`SELECT count(*) = 1 FROM pgautofailover.node
		 WHERE nodename <> $1 AND reportedstate IN ('wait_primary', 'primary') AND goalstate IN ('wait_primary', 'primary')`, old)
	h.waitSQL(ctx, t, h.URL("postgres"), "a read-write server", `SELECT NOT pg_is_in_recovery()`)
	ctx2, cancel2 := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel2()
	conn, err := pgx.Connect(ctx2, h.monitorURL("pg_auto_failover"))
	if err != nil {
		t.Fatalf("pgtest: connect to the monitor: %v", err)
	}
	defer conn.Close(context.Background())
	var name string
	if err := conn.QueryRow(ctx2, `SELECT nodename FROM pgautofailover.node
		WHERE nodename <> $1 AND reportedstate IN ('wait_primary', 'primary')`, old).Scan(&name); err != nil {
		t.Fatalf("pgtest: the new primary: %v", err)
	}
	return name
}

// Events is the monitor's event log, oldest first (for a failing test's
// output and for timing a failover).
func (h *HA) Events(t testing.TB) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, h.monitorURL("pg_auto_failover"))
	if err != nil {
		return []string{err.Error()}
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(ctx, `SELECT to_char(eventtime AT TIME ZONE 'UTC', 'HH24:MI:SS.MS') || ' ' || nodename || ' ' ||
		reportedstate || ' -> ' || goalstate || ': ' || description FROM pgautofailover.event ORDER BY eventid`)
	if err != nil {
		return []string{err.Error()}
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return []string{err.Error()}
	}
	return out
}

func (h *HA) logs() string {
	var b strings.Builder
	for _, name := range []string{"monitor", "node_a", "node_b"} {
		raw, err := os.ReadFile(filepath.Join(h.dir, name+".log"))
		if err != nil {
			continue
		}
		lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
		fmt.Fprintf(&b, "--- %s (last lines)\n%s\n", name, strings.Join(lines[max(0, len(lines)-15):], "\n"))
	}
	return b.String()
}

func (h *HA) destroy() {
	h.mu.Lock()
	procs := h.procs
	h.procs = map[string]*exec.Cmd{}
	h.mu.Unlock()
	for _, cmd := range procs {
		if cmd.Process != nil {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		}
	}
	killUnder(h.dir)
	os.RemoveAll(h.dir)
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

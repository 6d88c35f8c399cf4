package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
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

// Cluster is a private PostgreSQL server owned by one test: its own data
// directory in a temporary folder and its own port, so the test may stop
// and start it (an outage) without touching any other server. It is
// stopped and deleted when the test ends.
type Cluster struct {
	dir  string
	bin  string
	port int
	cred *syscall.Credential // run the server binaries as this OS user (when we are root)

	mu      sync.Mutex
	running bool
}

// NewCluster creates and starts a private cluster. The PostgreSQL server
// binaries are found under /usr/lib/postgresql/*/bin (the newest version)
// or else on PATH. PostgreSQL refuses to run as root, so when the test runs
// as root the binaries run as the "postgres" OS user. When the cluster
// cannot be made the test fails under CI and is skipped otherwise.
func NewCluster(t testing.TB) *Cluster {
	t.Helper()
	c, err := newCluster()
	if err != nil {
		unavailable(t, fmt.Errorf("private cluster: %w", err))
		return nil
	}
	t.Cleanup(c.destroy)
	if err := c.initdb(); err != nil {
		t.Fatalf("pgtest: initdb: %v", err)
	}
	c.Start(t)
	return c
}

func newCluster() (*Cluster, error) {
	bin, err := serverBin()
	if err != nil {
		return nil, err
	}
	c := &Cluster{bin: bin}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("running as root needs a postgres OS user to run the server as: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		c.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	dir, err := os.MkdirTemp("", "perfectpay-pgcluster-")
	if err != nil {
		return nil, err
	}
	c.dir = dir
	if c.cred != nil {
		if err := os.Chown(dir, int(c.cred.Uid), int(c.cred.Gid)); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
	}
	port, err := freePort()
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	c.port = port
	return c, nil
}

// serverBin is the directory holding initdb and pg_ctl.
func serverBin() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return pgVersion(dirs[i]) > pgVersion(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "pg_ctl")); err == nil {
			return d, nil
		}
	}
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		return filepath.Dir(p), nil
	}
	return "", errors.New("no PostgreSQL server binaries (initdb, pg_ctl) under /usr/lib/postgresql/*/bin or on PATH")
}

func pgVersion(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (c *Cluster) data() string { return filepath.Join(c.dir, "data") }

// run runs one server binary as the cluster's OS user.
func (c *Cluster) run(name string, args ...string) error {
	cmd := exec.Command(filepath.Join(c.bin, name), args...)
	cmd.Dir = c.dir
	cmd.Env = append(os.Environ(), "LC_ALL=C", "PGTZ=UTC")
	if c.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, out)
	}
	return nil
}

func (c *Cluster) initdb() error {
	return c.run("initdb", "-D", c.data(), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync", "--locale=C")
}

// Port is the cluster's TCP port on 127.0.0.1.
func (c *Cluster) Port() int { return c.port }

// URL is the URL of database db on the cluster.
func (c *Cluster) URL(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", c.port, db)
}

// Start starts the server and waits until it accepts connections.
func (c *Cluster) Start(t testing.TB) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.running {
		return
	}
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200",
		c.port, c.dir)
	if err := c.run("pg_ctl", "start", "-w", "-t", "120", "-D", c.data(), "-l", filepath.Join(c.dir, "server.log"), "-o", opts); err != nil {
		t.Fatalf("pgtest: start cluster: %v\n%s", err, c.log())
	}
	c.running = true
}

// Stop stops the server (fast shutdown: sessions are cut, nothing is
// lost), waiting until it is down.
func (c *Cluster) Stop(t testing.TB) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.running {
		return
	}
	if err := c.run("pg_ctl", "stop", "-w", "-t", "120", "-m", "fast", "-D", c.data()); err != nil {
		t.Fatalf("pgtest: stop cluster: %v", err)
	}
	c.running = false
}

func (c *Cluster) log() string {
	b, _ := os.ReadFile(filepath.Join(c.dir, "server.log"))
	return string(b)
}

func (c *Cluster) destroy() {
	c.mu.Lock()
	running := c.running
	c.running = false
	c.mu.Unlock()
	if running {
		c.run("pg_ctl", "stop", "-w", "-t", "60", "-m", "immediate", "-D", c.data()) //nolint:errcheck // the cluster's directory is removed next either way
	}
	os.RemoveAll(c.dir)
}

// NewURL creates a migrated database on the cluster and returns its URL.
func (c *Cluster) NewURL(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	admin, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		t.Fatalf("pgtest: connect to private cluster: %v", err)
	}
	defer admin.Close(context.Background())
	name := "pp_test_" + strings.ToLower(ids.Random(12))
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("pgtest: create database: %v", err)
	}
	u := c.URL(name)
	s, err := postgres.Open(ctx, u, postgres.Options{MaxConns: 2})
	if err != nil {
		t.Fatalf("pgtest: open: %v", err)
	}
	defer s.Close()
	if _, err := s.Migrate(ctx); err != nil {
		t.Fatalf("pgtest: migrate: %v", err)
	}
	return u
}

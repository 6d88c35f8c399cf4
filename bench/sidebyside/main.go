// Command sidebyside measures PerfectPay next to reference systems on this
// machine in one run and prints one Markdown table with ratios:
//
//   - access tokens/s (client_credentials) and introspections/s of
//     `perfectpay serve` (memory store) against Ory Hydra (in-memory DSN),
//     with JWT and with opaque access tokens, driven by the same load
//     generator (this program), and each server's RSS after N tokens;
//   - the charge policy's p50 decision time embedded (policies.Engine)
//     against the same policy in an `opa run --server` sidecar over HTTP;
//   - agent charges/s over HTTP against pgbench replaying the same
//     statements and against `pgbench -b tpcb-like` at the same client count.
//
// `make bench` builds the binaries and runs it; see BENCHMARKS.md.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

type config struct {
	root, perfectpay, hydra, opa string
	tokens, introspections       int
	clients                      int
	charges                      int
	pgbenchSeconds               int
	pgbenchScale                 int
	decisions                    int
	db                           string
	skip                         map[string]bool
	out                          string
}

func main() {
	var c config
	var skip string
	flag.StringVar(&c.root, "root", "..", "the repository's root (where go.mod of the server is)")
	flag.StringVar(&c.perfectpay, "perfectpay", "bin/perfectpay", "perfectpay binary, relative to -root")
	flag.StringVar(&c.hydra, "hydra", "bin/hydra", "Ory Hydra binary, relative to -root")
	flag.StringVar(&c.opa, "opa", "bin/opa", "opa binary, relative to -root")
	flag.IntVar(&c.tokens, "n", 20000, "access tokens minted per server (RSS is read after them)")
	flag.IntVar(&c.introspections, "introspections", 20000, "introspection requests per server")
	flag.IntVar(&c.clients, "c", 16, "concurrent clients of every load")
	flag.IntVar(&c.charges, "charges", 2000, "agent charges per HTTP and pgbench phase")
	flag.IntVar(&c.pgbenchSeconds, "pgbench-seconds", 15, "duration of the tpcb-like run")
	flag.IntVar(&c.pgbenchScale, "pgbench-scale", 16, "pgbench -i scale of the tpcb-like database")
	flag.IntVar(&c.decisions, "decisions", 20000, "policy decisions timed per engine")
	flag.StringVar(&c.db, "db", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable", "PostgreSQL for pgbench (a throwaway database is created there)")
	flag.StringVar(&skip, "skip", "", "comma-separated parts to leave out: tokens,hydra,policy,charges")
	flag.StringVar(&c.out, "out", "", "also write the report to this file")
	flag.DurationVar(&phaseLimit, "phase-limit", phaseLimit, "longest load phase (a slower server does fewer calls)")
	flag.Parse()
	c.skip = map[string]bool{}
	for _, s := range strings.Split(skip, ",") {
		if s = strings.TrimSpace(s); s != "" {
			c.skip[s] = true
		}
	}
	abs := func(p string) string {
		if filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(c.root, p)
	}
	c.perfectpay, c.hydra, c.opa = abs(c.perfectpay), abs(c.hydra), abs(c.opa)

	r := &report{start: time.Now(), load: loadavg()}
	ctx := context.Background()
	if !c.skip["tokens"] {
		r.add(runPerfectPay(ctx, c))
		if !c.skip["hydra"] {
			for _, strategy := range []string{"jwt", "opaque"} {
				r.add(runHydra(ctx, c, strategy))
			}
		}
	}
	if !c.skip["policy"] {
		r.policy = runPolicy(ctx, c)
	}
	if !c.skip["charges"] {
		r.charges = runCharges(ctx, c)
	}
	out := r.markdown(c)
	fmt.Print(out)
	if c.out != "" {
		if err := os.WriteFile(c.out, []byte(out), 0o644); err != nil {
			fail("write %s: %v", c.out, err)
		}
	}
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "sidebyside: "+format+"\n", args...)
	os.Exit(1)
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

// ---- the load generator ------------------------------------------------------

type result struct {
	n, errors      int
	perSecond      float64
	p50, p99, p999 time.Duration
	firstError     string
}

// phaseLimit bounds every load phase: a server slower than that does fewer
// calls, and the report says how many (set by -phase-limit).
var phaseLimit = 90 * time.Second

// load runs n calls of do on c concurrent workers, each with its own
// keep-alive connection, and returns the rate and latency percentiles. It
// stops early, after the calls in flight, once phaseLimit has passed.
func load(n, c int, do func(cl *http.Client, i int) error) result {
	var next atomic.Int64
	var mu sync.Mutex
	var all []time.Duration
	var errs int
	var first string
	var wg sync.WaitGroup
	start := time.Now()
	stopAt := start.Add(phaseLimit)
	for range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 1, DisableCompression: true}}
			ds := make([]time.Duration, 0, n/c+1)
			var e int
			var fe string
			for {
				if time.Now().After(stopAt) {
					break
				}
				i := int(next.Add(1)) - 1
				if i >= n {
					break
				}
				t := time.Now()
				err := do(cl, i)
				ds = append(ds, time.Since(t))
				if err != nil {
					e++
					if fe == "" {
						fe = err.Error()
					}
				}
			}
			mu.Lock()
			all = append(all, ds...)
			errs += e
			if first == "" {
				first = fe
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	slices.Sort(all)
	q := func(p float64) time.Duration {
		if len(all) == 0 {
			return 0
		}
		return all[min(len(all)-1, int(float64(len(all))*p))]
	}
	done := len(all)
	return result{n: done, errors: errs, perSecond: float64(done) / elapsed.Seconds(), p50: q(0.5), p99: q(0.99), p999: q(0.999), firstError: first}
}

// ---- servers -------------------------------------------------------------------

type server struct {
	name  string
	cmd   *exec.Cmd
	stdio *bytes.Buffer
}

func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fail("free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func start(name, bin string, env []string, args ...string) (*exec.Cmd, *syncBuffer) {
	if _, err := os.Stat(bin); err != nil {
		fail("%s: %v (run make bench, which builds it)", name, err)
	}
	out := &syncBuffer{}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		fail("start %s: %v", name, err)
	}
	return cmd, out
}

func stop(cmd *exec.Cmd) {
	if cmd == nil || cmd.Process == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

// waitReady polls url until it answers 200 (the server is up) or the
// process exits.
func waitReady(cmd *exec.Cmd, out *syncBuffer, u string) {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(u)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if cmd.ProcessState != nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	stop(cmd)
	fail("%s did not become ready at %s:\n%s", filepath.Base(cmd.Path), u, tail(out.String(), 2000))
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// rssKB is the resident set of pid (VmRSS) in KB.
func rssKB(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				v, _ := strconv.ParseInt(f[0], 10, 64)
				return v
			}
		}
	}
	return -1
}

// cpuTime is the user+system CPU pid has used.
func cpuTime(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	k, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+k) * time.Second / 100 // USER_HZ
}

// ---- tokens and introspection ------------------------------------------------

type tokenRun struct {
	name               string
	tokens, introspect result
	rssIdleKB          int64
	rssAfterKB         int64
	idleCPU            time.Duration // CPU used in idleWindow after the load
	serverCPU, genCPU  time.Duration // CPU the server and this load generator used minting the tokens
	note               string
}

const idleWindow = 10 * time.Second

// tokenLoad mints c.tokens tokens at tokenURL and introspects
// c.introspections of them at introspectURL, with the client's basic auth.
func tokenLoad(c config, pid int, tokenURL, introspectURL string, tokenAuth, introspectAuth func(*http.Request)) (tokenRun, error) {
	var tr tokenRun
	tr.rssIdleKB = rssKB(pid)
	keep := min(c.tokens, 1000)
	var minted atomic.Int64
	kept := make([]string, keep)
	mint := func(cl *http.Client, i int) error {
		form := url.Values{"grant_type": {"client_credentials"}, "scope": {"charges:write"}}
		req, _ := http.NewRequest(http.MethodPost, tokenURL, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		tokenAuth(req)
		var body struct {
			AccessToken string `json:"access_token"`
		}
		if err := do(cl, req, &body); err != nil {
			return err
		}
		if body.AccessToken == "" {
			return errors.New("no access_token")
		}
		if i < keep {
			kept[i] = body.AccessToken
		}
		minted.Add(1)
		return nil
	}
	logf("  %d tokens (%d clients)", c.tokens, c.clients)
	server0, gen0 := cpuTime(pid), cpuTime(os.Getpid())
	tr.tokens = load(c.tokens, c.clients, mint)
	tr.serverCPU, tr.genCPU = cpuTime(pid)-server0, cpuTime(os.Getpid())-gen0
	tr.rssAfterKB = rssKB(pid)
	if tr.tokens.errors > 0 {
		return tr, fmt.Errorf("%d of %d token requests failed: %s", tr.tokens.errors, c.tokens, tr.tokens.firstError)
	}
	if n := int(minted.Load()); n < keep {
		keep = n // a phase cut short by -phase-limit
	}
	introspect := func(cl *http.Client, i int) error {
		form := url.Values{"token": {kept[i%keep]}}
		req, _ := http.NewRequest(http.MethodPost, introspectURL, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		introspectAuth(req)
		var body struct {
			Active bool `json:"active"`
		}
		if err := do(cl, req, &body); err != nil {
			return err
		}
		if !body.Active {
			return errors.New("token not active")
		}
		return nil
	}
	logf("  %d introspections", c.introspections)
	tr.introspect = load(c.introspections, c.clients, introspect)
	if tr.introspect.errors > 0 {
		return tr, fmt.Errorf("%d of %d introspections failed: %s", tr.introspect.errors, c.introspections, tr.introspect.firstError)
	}
	cpu0 := cpuTime(pid)
	time.Sleep(idleWindow)
	tr.idleCPU = cpuTime(pid) - cpu0
	return tr, nil
}

func do(cl *http.Client, req *http.Request, into any) error {
	resp, err := cl.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %d %s", req.Method, req.URL.Path, resp.StatusCode, tail(string(b), 300))
	}
	if into != nil {
		return json.Unmarshal(b, into)
	}
	return nil
}

func postJSON(u string, auth func(*http.Request), in, out any) error {
	b, _ := json.Marshal(in)
	req, _ := http.NewRequest(http.MethodPost, u, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	if auth != nil {
		auth(req)
	}
	return do(http.DefaultClient, req, out)
}

func basic(user, pass string) func(*http.Request) {
	return func(r *http.Request) { r.SetBasicAuth(user, pass) }
}

// noRateLimits turns our rate limits and abuse defences off: one client
// address and one agent at full speed is what they exist to stop, and
// neither Hydra nor pgbench has any; what is compared is the work behind
// them.
const noRateLimits = "PERFECTPAY_ABUSE_ENABLED=false"

var skTest = regexp.MustCompile(`sk_test_[A-Za-z0-9]+`)

func runPerfectPay(_ context.Context, c config) tokenRun {
	logf("perfectpay serve (memory store, dev mode)")
	port := freePort()
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	cmd, out := start("perfectpay", c.perfectpay, []string{"PERFECTPAY_STORE_DRIVER=memory", "PERFECTPAY_LOG_LEVEL=error", noRateLimits},
		"serve", "--dev", "--addr", fmt.Sprintf("127.0.0.1:%d", port))
	defer stop(cmd)
	waitReady(cmd, out, base+"/readyz")
	// The banner with the demo keys may come just after /readyz answers.
	var sk string
	for deadline := time.Now().Add(30 * time.Second); sk == "" && time.Now().Before(deadline); {
		if sk = skTest.FindString(out.String()); sk == "" {
			time.Sleep(50 * time.Millisecond)
		}
	}
	if sk == "" {
		fail("no demo secret key in the server's output:\n%s", tail(out.String(), 2000))
	}
	var agent struct {
		ID           string `json:"id"`
		ClientSecret string `json:"client_secret"`
	}
	err := postJSON(base+"/v1/agents", basic(sk, ""), map[string]any{
		"name": "bench", "token_endpoint_auth_method": "client_secret_basic",
		"grant_types": []string{"client_credentials"}, "scopes": []string{"charges:write"},
	}, &agent)
	if err != nil {
		fail("register agent: %v", err)
	}
	auth := basic(agent.ID, agent.ClientSecret)
	tr, err := tokenLoad(c, cmd.Process.Pid, base+"/oauth2/token", base+"/oauth2/introspect", auth, auth)
	if err != nil {
		fail("perfectpay: %v", err)
	}
	tr.name = "PerfectPay (JWT, ES256)"
	return tr
}

func runHydra(_ context.Context, c config, strategy string) tokenRun {
	logf("hydra serve all (DSN=memory, %s access tokens)", strategy)
	pub, adm := freePort(), freePort()
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	env := []string{
		"DSN=memory",
		"SECRETS_SYSTEM=" + hex.EncodeToString(secret),
		fmt.Sprintf("URLS_SELF_ISSUER=http://127.0.0.1:%d/", pub),
		"SERVE_PUBLIC_HOST=127.0.0.1", fmt.Sprintf("SERVE_PUBLIC_PORT=%d", pub),
		"SERVE_ADMIN_HOST=127.0.0.1", fmt.Sprintf("SERVE_ADMIN_PORT=%d", adm),
		"STRATEGIES_ACCESS_TOKEN=" + strategy,
		"LOG_LEVEL=error",
		// Client secrets: the token rate compared is the issuer's, not a
		// password hash's (ours are high-entropy secrets under a keyed hash).
		"OAUTH2_HASHERS_ALGORITHM=pbkdf2", "OAUTH2_HASHERS_PBKDF2_ITERATIONS=1",
		"SQA_OPT_OUT=true",
	}
	cmd, out := start("hydra", c.hydra, env, "serve", "all", "--dev")
	defer stop(cmd)
	admin := fmt.Sprintf("http://127.0.0.1:%d", adm)
	waitReady(cmd, out, admin+"/health/ready")
	var client struct {
		ID     string `json:"client_id"`
		Secret string `json:"client_secret"`
	}
	err := postJSON(admin+"/admin/clients", nil, map[string]any{
		"grant_types": []string{"client_credentials"}, "token_endpoint_auth_method": "client_secret_basic",
		"scope": "charges:write",
	}, &client)
	if err != nil {
		fail("hydra client: %v", err)
	}
	tr, err := tokenLoad(c, cmd.Process.Pid, fmt.Sprintf("http://127.0.0.1:%d/oauth2/token", pub),
		admin+"/admin/oauth2/introspect", basic(client.ID, client.Secret), func(*http.Request) {})
	if err != nil {
		fail("hydra %s: %v", strategy, err)
	}
	tr.name = "Ory Hydra v2.3.0 (" + strategy + ")"
	if strategy == "jwt" {
		tr.name = "Ory Hydra v2.3.0 (JWT, RS256)"
	}
	return tr
}

// ---- policy --------------------------------------------------------------------

type policyRun struct {
	embedded, topdown, sidecar p50p99
	err                        string
}

type p50p99 struct{ p50, p99 float64 }

var benchLine = regexp.MustCompile(`^(Benchmark\S+?)(?:-\d+)?\s+\d+\s+.*?([0-9.]+) p50-µs\s+([0-9.]+) p99-µs`)

func runPolicy(_ context.Context, c config) policyRun {
	logf("policy: embedded engine, OPA's topdown in process, and an opa run --server sidecar")
	port := freePort()
	cmd, out := start("opa", c.opa, nil, "run", "--server", "--addr", fmt.Sprintf("127.0.0.1:%d", port),
		"--log-level", "error", filepath.Join(c.root, "policies", "charge.rego"))
	defer stop(cmd)
	waitReady(cmd, out, fmt.Sprintf("http://127.0.0.1:%d/health", port))
	gt := exec.Command("go", "test", "./policies/", "-run", "^$", "-bench", "^BenchmarkDecide(Topdown|Sidecar)?$",
		"-benchtime", fmt.Sprintf("%dx", c.decisions), "-count", "1")
	gt.Dir = c.root
	gt.Env = append(os.Environ(), fmt.Sprintf("PERFECTPAY_BENCH_OPA_URL=http://127.0.0.1:%d", port))
	b, err := gt.CombinedOutput()
	if err != nil {
		return policyRun{err: fmt.Sprintf("go test ./policies: %v\n%s", err, tail(string(b), 1000))}
	}
	var pr policyRun
	for _, line := range strings.Split(string(b), "\n") {
		m := benchLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		p50, _ := strconv.ParseFloat(m[2], 64)
		p99, _ := strconv.ParseFloat(m[3], 64)
		switch m[1] {
		case "BenchmarkDecide":
			pr.embedded = p50p99{p50, p99}
		case "BenchmarkDecideTopdown":
			pr.topdown = p50p99{p50, p99}
		case "BenchmarkDecideSidecar":
			pr.sidecar = p50p99{p50, p99}
		}
	}
	if pr.embedded.p50 == 0 || pr.topdown.p50 == 0 || pr.sidecar.p50 == 0 {
		pr.err = "no p50 in: " + tail(string(b), 1000)
	}
	return pr
}

// ---- charges -------------------------------------------------------------------

type chargeRun struct {
	rows     map[string]float64 // e2e sub-benchmark -> charges/s
	tpcb     float64
	tpcbNote string
	err      string
}

var chargeLine = regexp.MustCompile(`^BenchmarkAgentCharges/(\S+?)(?:-\d+)?\s+\d+\s+.*?([0-9.]+) charges/s`)

func runCharges(ctx context.Context, c config) chargeRun {
	cr := chargeRun{rows: map[string]float64{}}
	logf("agent charges: HTTP and pgbench of the same statements (%d each)", c.charges)
	gt := exec.Command("go", "test", "./e2e/", "-run", "^$", "-bench", "^BenchmarkAgentCharges$",
		"-benchtime", fmt.Sprintf("%dx", c.charges), "-count", "1", "-timeout", "30m")
	gt.Dir = c.root
	// The nodes inherit these. The fraud signals are off too: the
	// benchmark charges one card thousands of times an hour (a velocity
	// rule challenges that), and the pgbench script has no fraud statements.
	gt.Env = append(os.Environ(), noRateLimits, "PERFECTPAY_FRAUD_ENABLED=false")
	b, err := gt.CombinedOutput()
	if err != nil {
		cr.err = fmt.Sprintf("go test ./e2e: %v\n%s", err, tail(string(b), 1500))
	}
	for _, line := range strings.Split(string(b), "\n") {
		if m := chargeLine.FindStringSubmatch(line); m != nil {
			v, _ := strconv.ParseFloat(m[2], 64)
			cr.rows[m[1]] = v
		}
	}
	cr.tpcb, cr.tpcbNote = tpcb(ctx, c)
	return cr
}

// tpcb runs pgbench -b tpcb-like on a throwaway database.
func tpcb(_ context.Context, c config) (float64, string) {
	logf("pgbench -b tpcb-like (scale %d, %d clients, %d s)", c.pgbenchScale, c.clients, c.pgbenchSeconds)
	u, err := url.Parse(c.db)
	if err != nil {
		return 0, "bad -db: " + err.Error()
	}
	name := fmt.Sprintf("sidebyside_tpcb_%d", os.Getpid())
	admin := exec.Command("psql", c.db, "-v", "ON_ERROR_STOP=1", "-qc", "CREATE DATABASE "+name)
	if b, err := admin.CombinedOutput(); err != nil {
		return 0, fmt.Sprintf("create database: %v %s", err, b)
	}
	defer func() {
		_ = exec.Command("psql", c.db, "-qc", "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)").Run()
	}()
	u.Path = "/" + name
	dsn := u.String()
	if b, err := exec.Command("pgbench", "-i", "-q", "-s", strconv.Itoa(c.pgbenchScale), dsn).CombinedOutput(); err != nil {
		return 0, fmt.Sprintf("pgbench -i: %v %s", err, tail(string(b), 500))
	}
	b, err := exec.Command("pgbench", "-n", "-b", "tpcb-like", "-c", strconv.Itoa(c.clients), "-j", "2",
		"-T", strconv.Itoa(c.pgbenchSeconds), dsn).CombinedOutput()
	if err != nil {
		return 0, fmt.Sprintf("pgbench: %v %s", err, tail(string(b), 500))
	}
	m := regexp.MustCompile(`tps = ([0-9.]+)`).FindSubmatch(b)
	if m == nil {
		return 0, "no tps in pgbench's output"
	}
	v, _ := strconv.ParseFloat(string(m[1]), 64)
	return v, ""
}

// ---- report --------------------------------------------------------------------

type report struct {
	start   time.Time
	load    string
	tokens  []tokenRun
	policy  policyRun
	charges chargeRun
}

func (r *report) add(t tokenRun) { r.tokens = append(r.tokens, t) }

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// perCall is d spread over n calls, in whole microseconds.
func perCall(d time.Duration, n int) string {
	if n == 0 {
		return "–"
	}
	return fmt.Sprintf("%.0f", float64(d.Microseconds())/float64(n))
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f", float64(d.Microseconds())/1000) }

func ratio(a, b float64) string {
	if a == 0 || b == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f×", a/b)
}

func (r *report) markdown(c config) string {
	var w strings.Builder
	fmt.Fprintf(&w, "Side by side, %s UTC, load average before the run %s, %d clients, N = %d tokens, %d introspections, each phase at most %s\n\n",
		r.start.UTC().Format("2006-01-02 15:04"), r.load, c.clients, c.tokens, c.introspections, phaseLimit)
	if len(r.tokens) > 0 {
		ours := r.tokens[0]
		fmt.Fprintln(&w, "| server | tokens | tokens/s | token p50 / p99 / p99.9 ms | introspections/s | introspection p50 / p99 / p99.9 ms | RSS idle → after N tokens | idle CPU in 10 s after the load | CPU per token µs: server / load generator | ours ÷ theirs: tokens/s, introspections/s, RSS |")
		fmt.Fprintln(&w, "|---|---|---|---|---|---|---|---|---|---|")
		for _, t := range r.tokens {
			cmp := "–"
			if t.name != ours.name {
				cmp = fmt.Sprintf("%s, %s, %s", ratio(ours.tokens.perSecond, t.tokens.perSecond),
					ratio(ours.introspect.perSecond, t.introspect.perSecond), ratio(float64(ours.rssAfterKB), float64(t.rssAfterKB)))
			}
			fmt.Fprintf(&w, "| %s | %d | %.0f | %s / %s / %s | %.0f | %s / %s / %s | %.0f → %.0f MB | %.2f s | %s / %s | %s |\n",
				t.name, t.tokens.n, t.tokens.perSecond, ms(t.tokens.p50), ms(t.tokens.p99), ms(t.tokens.p999),
				t.introspect.perSecond, ms(t.introspect.p50), ms(t.introspect.p99), ms(t.introspect.p999),
				float64(t.rssIdleKB)/1024, float64(t.rssAfterKB)/1024, t.idleCPU.Seconds(),
				perCall(t.serverCPU, t.tokens.n), perCall(t.genCPU, t.tokens.n), cmp)
		}
		fmt.Fprintln(&w)
	}
	if !c.skip["policy"] {
		p := r.policy
		if p.err != "" {
			fmt.Fprintf(&w, "Policy: failed: %s\n\n", p.err)
		} else {
			fmt.Fprintln(&w, "| charge policy decision | p50 µs | p99 µs |")
			fmt.Fprintln(&w, "|---|---|---|")
			fmt.Fprintf(&w, "| embedded (`policies.Engine`, OPA's plan) | %.1f | %.1f |\n", p.embedded.p50, p.embedded.p99)
			fmt.Fprintf(&w, "| OPA's topdown in process (prepared query) | %.1f | %.1f |\n", p.topdown.p50, p.topdown.p99)
			fmt.Fprintf(&w, "| `opa run --server` sidecar over loopback HTTP | %.1f | %.1f |\n", p.sidecar.p50, p.sidecar.p99)
			fmt.Fprintf(&w, "| topdown ÷ embedded | %s | %s |\n", ratio(p.topdown.p50, p.embedded.p50), ratio(p.topdown.p99, p.embedded.p99))
			fmt.Fprintf(&w, "| sidecar ÷ embedded | %s | %s |\n\n", ratio(p.sidecar.p50, p.embedded.p50), ratio(p.sidecar.p99, p.embedded.p99))
		}
	}
	if !c.skip["charges"] {
		cr := r.charges
		if cr.err != "" {
			fmt.Fprintf(&w, "Charges: the e2e benchmark failed: %s\n\n", cr.err)
		}
		fmt.Fprintf(&w, "| agent charges (%d clients) | charges/s | ÷ pgbench of our statements | ÷ pgbench tpcb-like |\n", 16)
		fmt.Fprintln(&w, "|---|---|---|---|")
		for _, k := range []string{"many_mandates", "hot_mandate"} {
			h, p := cr.rows[k+"/http"], cr.rows[k+"/pgbench"]
			fmt.Fprintf(&w, "| %s, HTTP | %.0f | %s | %s |\n", strings.ReplaceAll(k, "_", " "), h, pct(h, p), pct(h, cr.tpcb))
			fmt.Fprintf(&w, "| %s, pgbench of our statements | %.0f | | %s |\n", strings.ReplaceAll(k, "_", " "), p, pct(p, cr.tpcb))
		}
		tp := fmt.Sprintf("%.0f", cr.tpcb)
		if cr.tpcbNote != "" {
			tp = "failed: " + cr.tpcbNote
		}
		fmt.Fprintf(&w, "| `pgbench -b tpcb-like` (scale %d, %d s) | %s | | |\n\n", c.pgbenchScale, c.pgbenchSeconds, tp)
	}
	fmt.Fprintf(&w, "Load average after the run: %s\n", loadavg())
	return w.String()
}

func pct(a, b float64) string {
	if a == 0 || b == 0 {
		return "–"
	}
	return fmt.Sprintf("%.0f %%", 100*a/b)
}

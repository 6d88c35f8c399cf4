package apptest

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// RepoRoot is the module's root directory.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// Binary builds cmd/perfectpay once per test process and returns its path.
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "perfectpay-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "perfectpay")
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/perfectpay")
		cmd.Dir = RepoRoot()
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatalf("apptest: %v", buildErr)
	}
	return binPath
}

// Proc is a `perfectpay serve` process.
type Proc struct {
	URL  string
	Addr string
	Cmd  *exec.Cmd
	Logs *SyncBuffer
	env  []string
	// config is the ./config.yaml the process starts with ("": none).
	config string
	t      testing.TB
}

// FreeAddr returns a free loopback host:port.
func FreeAddr(t testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// StartProcess starts `perfectpay serve` on the Postgres database dbURL
// with the test configuration plus extra PERFECTPAY_* environment, waits
// until /readyz answers, and kills it when the test ends.
func StartProcess(t testing.TB, dbURL string, extraEnv ...string) *Proc {
	t.Helper()
	return StartProcessConfig(t, dbURL, "", extraEnv...)
}

// StartProcessConfig is StartProcess with configYAML as the process's
// ./config.yaml, for settings the environment cannot express (lists of
// limits); the environment still overrides it.
func StartProcessConfig(t testing.TB, dbURL, configYAML string, extraEnv ...string) *Proc {
	t.Helper()
	cfg := Config("postgres", dbURL)
	env := append(os.Environ(),
		"PERFECTPAY_STORE_DRIVER=postgres",
		"PERFECTPAY_STORE_POSTGRES_URL="+dbURL,
		"PERFECTPAY_SECRETS_HMAC_KEY="+cfg.Secrets.HMACKey,
		"PERFECTPAY_ISSUER_SIGNING_KEK="+cfg.Issuer.SigningKEK,
		"PERFECTPAY_DEV_MODE=true",
		"PERFECTPAY_LOG_LEVEL=warn",
	)
	env = append(env, extraEnv...)
	p := &Proc{env: env, config: configYAML, t: t}
	p.start()
	t.Cleanup(p.Kill)
	return p
}

func (p *Proc) start() {
	t := p.t
	t.Helper()
	p.Addr = FreeAddr(t)
	p.URL = "http://" + p.Addr
	p.Logs = &SyncBuffer{}
	cmd := exec.Command(Binary(t), "serve", "--addr", p.Addr)
	cmd.Dir = t.TempDir() // no ./config.yaml unless given: defaults + environment
	if p.config != "" {
		if err := os.WriteFile(filepath.Join(cmd.Dir, "config.yaml"), []byte(p.config), 0o600); err != nil {
			t.Fatalf("apptest: config: %v", err)
		}
	}
	cmd.Env = p.env
	cmd.Stdout, cmd.Stderr = p.Logs, p.Logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("apptest: start: %v", err)
	}
	p.Cmd = cmd
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(p.URL + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if cmd.ProcessState != nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.Kill()
	t.Fatalf("apptest: perfectpay serve did not become ready at %s; logs:\n%s", p.URL, p.Logs.String())
}

// Kill stops the process with SIGKILL (a crash) and waits for it.
func (p *Proc) Kill() {
	if p.Cmd == nil || p.Cmd.Process == nil || p.Cmd.ProcessState != nil {
		return
	}
	_ = p.Cmd.Process.Signal(syscall.SIGKILL)
	_ = p.Cmd.Wait()
}

// Restart starts the process again on a new port after Kill.
func (p *Proc) Restart() {
	p.Kill()
	p.start()
}

// LogsContain reports whether the process logged s.
func (p *Proc) LogsContain(s string) bool { return strings.Contains(p.Logs.String(), s) }

// Package apptest starts real nodes for tests: the wired application behind
// an httptest server, on the memory store or on a throwaway PostgreSQL
// database (several nodes may share one).
package apptest

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/accounts"
	"github.com/perfectpay/perfectpay/app"
	"github.com/perfectpay/perfectpay/internal/logging"
	"github.com/perfectpay/perfectpay/store/pgtest"
)

// Drivers are the backends every HTTP test runs on.
var Drivers = []string{"memory", "postgres"}

// EachDriver runs fn as a subtest per backend.
func EachDriver(t *testing.T, fn func(t *testing.T, driver string)) {
	for _, d := range Drivers {
		t.Run(d, func(t *testing.T) { fn(t, d) })
	}
}

// Node is one running node.
type Node struct {
	App  *app.App
	HTTP *httptest.Server
	URL  string
	Logs *SyncBuffer
}

// SyncBuffer is a goroutine-safe log sink tests can scan.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Config returns a test configuration for driver (dbURL for postgres).
func Config(driver, dbURL string) app.Config {
	cfg := app.Defaults()
	cfg.DevMode = true
	cfg.Store.Driver = driver
	cfg.Store.Postgres.URL = dbURL
	cfg.Store.Postgres.MaxConns = 10
	cfg.Log.Level = "debug"
	cfg.Secrets.HMACKey = base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))
	cfg.Issuer.SigningKEK = base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{9}, 32)) // nodes of one test share it
	cfg.Webhooks.SecretKey = base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{11}, 32))
	cfg.Vault.KEKs = "1:" + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{13}, 32)) // nodes of one test share it
	// The abuse defences would throttle tests that hammer one node from
	// one address, and the fraud signals step up on their patterns; the
	// tests of the defences turn them on.
	cfg.Abuse.Enabled = false
	cfg.Fraud.Enabled = false
	return cfg
}

// New starts a node on driver. Options edit the config before start.
func New(t testing.TB, driver string, opts ...func(*app.Config)) *Node {
	t.Helper()
	url := ""
	if driver == "postgres" {
		url = pgtest.NewURL(t)
	}
	return NewWithURL(t, driver, url, opts...)
}

// NewWithURL starts a node on an existing database (for multi-node tests).
func NewWithURL(t testing.TB, driver, dbURL string, opts ...func(*app.Config)) *Node {
	t.Helper()
	cfg := Config(driver, dbURL)
	for _, o := range opts {
		o(&cfg)
	}
	logs := &SyncBuffer{}
	log := logging.New(logs, "json", cfg.Log.Level)
	a, err := app.New(context.Background(), cfg, log)
	require.NoError(t, err)
	a.Start()
	srv := httptest.NewServer(a.Server)
	t.Cleanup(func() {
		srv.Close()
		a.Close()
	})
	return &Node{App: a, HTTP: srv, URL: srv.URL, Logs: logs}
}

// Tenant creates a tenant and returns it with its test secret key.
func (n *Node) Tenant(t testing.TB) (*accounts.Bootstrap, string) {
	t.Helper()
	b, err := n.App.Accounts.CreateTenant(context.Background(), "Test Tenant")
	require.NoError(t, err)
	return b, b.Keys[0].Secret
}

// Key returns the secret of the given kind and mode from a bootstrap.
func Key(b *accounts.Bootstrap, kind, mode string) string {
	for _, k := range b.Keys {
		if k.Key.Kind == kind && k.Key.Mode == mode {
			return k.Secret
		}
	}
	return ""
}

// Response is a decoded response.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
	JSON   map[string]any
}

// ErrorCode returns error.code of an error body.
func (r *Response) ErrorCode() string {
	if e, ok := r.JSON["error"].(map[string]any); ok {
		s, _ := e["code"].(string)
		return s
	}
	return ""
}

// ErrorType returns error.type of an error body.
func (r *Response) ErrorType() string {
	if e, ok := r.JSON["error"].(map[string]any); ok {
		s, _ := e["type"].(string)
		return s
	}
	return ""
}

// Req is a request to send.
type Req struct {
	Method string
	Path   string
	Key    string // sent as Bearer
	Body   any    // marshalled to JSON unless []byte or string
	Header map[string]string
}

// Do sends req and decodes the response.
func (n *Node) Do(t testing.TB, req Req) *Response {
	t.Helper()
	var body io.Reader
	switch b := req.Body.(type) {
	case nil:
	case []byte:
		body = bytes.NewReader(b)
	case string:
		body = strings.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		require.NoError(t, err)
		body = bytes.NewReader(raw)
	}
	r, err := http.NewRequest(req.Method, n.URL+req.Path, body)
	require.NoError(t, err)
	if body != nil {
		r.Header.Set("Content-Type", "application/json")
	}
	if req.Key != "" {
		r.Header.Set("Authorization", "Bearer "+req.Key)
	}
	for k, v := range req.Header {
		r.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(r)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	out := &Response{Status: resp.StatusCode, Header: resp.Header, Body: raw}
	if len(raw) > 0 && strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		_ = json.Unmarshal(raw, &out.JSON)
	}
	return out
}

// Quiet returns a logger that discards everything.
func Quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

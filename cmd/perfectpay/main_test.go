package main

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/app"
	"github.com/perfectpay/perfectpay/app/apptest"
	"github.com/perfectpay/perfectpay/store/pgtest"
)

func run(t *testing.T, args ...string) (string, error) {
	root := newRoot()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.ExecuteContext(context.Background())
	return out.String(), err
}

func TestConfigValidationReportsEverything(t *testing.T) {
	dir := t.TempDir()
	path := dir + "/bad.yaml"
	require.NoError(t, os.WriteFile(path, []byte("store:\n  driver: oracle\nlog:\n  level: loud\nserver:\n  addr: nowhere\nretention:\n  decisions: 720h\n"), 0o600))
	_, err := run(t, "--config", path, "migrate")
	require.Error(t, err)
	for _, want := range []string{"store.driver", "log.level", "server.addr", "secrets.hmac_key", "retention.decisions"} {
		assert.Contains(t, err.Error(), want)
	}
}

func TestEnvironmentOverrides(t *testing.T) {
	t.Setenv("PERFECTPAY_STORE_DRIVER", "postgres")
	t.Setenv("PERFECTPAY_AUDIT_RETENTION", "9000h")
	t.Setenv("PERFECTPAY_STORE_POSTGRES_MAX_CONNS", "7")
	cfg, _, err := loadConfig("")
	require.NoError(t, err)
	assert.Equal(t, "postgres", cfg.Store.Driver)
	assert.Equal(t, 9000*time.Hour, cfg.Audit.Retention)
	assert.Equal(t, int32(7), cfg.Store.Postgres.MaxConns)
	assert.Equal(t, "127.0.0.1:8080", cfg.Server.Addr, "defaults stay")
}

func TestConfigYAMLMatchesDefaults(t *testing.T) {
	cfg, _, err := loadConfig("../../config.yaml")
	require.NoError(t, err)
	assert.Equal(t, app.Defaults(), cfg, "config.yaml documents every default")
}

func TestTenantsCreateAndAuditVerifyOnPostgres(t *testing.T) {
	url := pgtest.NewURL(t)
	t.Setenv("PERFECTPAY_STORE_DRIVER", "postgres")
	t.Setenv("PERFECTPAY_STORE_POSTGRES_URL", url)
	t.Setenv("PERFECTPAY_SECRETS_HMAC_KEY", apptest.Config("memory", "").Secrets.HMACKey)
	t.Setenv("PERFECTPAY_WEBHOOKS_SECRET_KEY", apptest.Config("memory", "").Webhooks.SecretKey)
	t.Setenv("PERFECTPAY_ISSUER_SIGNING_KEK", apptest.Config("memory", "").Issuer.SigningKEK)
	t.Setenv("PERFECTPAY_VAULT_KEKS", apptest.Config("memory", "").Vault.KEKs)
	out, err := run(t, "migrate")
	require.NoError(t, err)
	assert.Contains(t, out, "up to date")
	out, err = run(t, "tenants", "create", "--name", "Acme")
	require.NoError(t, err, out)
	assert.Contains(t, out, `"secret_test": "sk_test_`)
	out, err = run(t, "audit", "verify")
	require.NoError(t, err, out)
	assert.Contains(t, out, `"ok": true`)

	n := apptest.NewWithURL(t, "postgres", url)
	_, err = n.App.Postgres.Pool().Exec(context.Background(), `UPDATE audit_events SET target = 'forged'
		WHERE seq = (SELECT seq FROM audit_seals WHERE chain_pos = 1)`)
	require.NoError(t, err)
	_, err = run(t, "audit", "verify")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "chain position 1")
}

// TestGracefulShutdown: a request in flight when the signal arrives finishes.
func TestGracefulShutdown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	cfg := app.Defaults().Server
	cfg.Addr = addr
	started := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		time.Sleep(300 * time.Millisecond)
		w.Write([]byte("done"))
	})
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- serve(ctx, cfg, ln, h, apptest.Quiet()) }()
	var resp *http.Response
	reqDone := make(chan error, 1)
	go func() {
		var err error
		for i := 0; i < 50; i++ {
			resp, err = http.Get("http://" + addr + "/") //nolint:bodyclose // closed below, once the request was answered
			if err == nil {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		reqDone <- err
	}()
	<-started
	cancel()
	require.NoError(t, <-reqDone)
	var body bytes.Buffer
	_, _ = body.ReadFrom(resp.Body)
	resp.Body.Close()
	assert.Equal(t, 200, resp.StatusCode)
	assert.Equal(t, "done", body.String())
	err = <-errc
	assert.True(t, err == nil || errors.Is(err, http.ErrServerClosed), "%v", err)
}

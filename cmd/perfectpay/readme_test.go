package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/app/apptest"
	"github.com/perfectpay/perfectpay/internal/ids"
	"github.com/perfectpay/perfectpay/store/pgtest"
)

// recipeMarker precedes the README's PostgreSQL block.
const recipeMarker = "<!-- postgres-recipe -->"

// recipe is the README's PostgreSQL block as this test knows it: a change
// to either fails the test until both agree.
var recipe = []string{
	`bin/perfectpay init --dir ~/.perfectpay`,
	`createdb -h 127.0.0.1 -U postgres perfectpay`,
	`bin/perfectpay --config ~/.perfectpay/config.yaml migrate`,
	`bin/perfectpay --config ~/.perfectpay/config.yaml tenants create --name "Acme"`,
	`bin/perfectpay --config ~/.perfectpay/config.yaml serve`,
}

// readmeRecipe returns the lines of the fenced block after the marker.
func readmeRecipe(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	_, after, ok := strings.Cut(string(b), recipeMarker)
	require.True(t, ok, "README.md has the %s marker", recipeMarker)
	after = strings.TrimLeft(after, "\n")
	require.True(t, strings.HasPrefix(after, "```sh\n"), "a ```sh block follows the marker")
	block, _, ok := strings.Cut(strings.TrimPrefix(after, "```sh\n"), "\n```")
	require.True(t, ok, "the block is closed")
	return strings.Split(block, "\n")
}

// TestReadmePostgresRecipe runs the README's PostgreSQL block exactly, line
// by line in a shell, from a directory holding bin/perfectpay and with HOME
// pointing at a fresh directory, against a throwaway database on the shared
// server: the one change is the database's name, a fresh one (createdb's
// argument, and PERFECTPAY_STORE_POSTGRES_URL naming it), dropped after.
// The server it starts must answer an authenticated request with the key
// `tenants create` printed.
func TestReadmePostgresRecipe(t *testing.T) {
	require.Equal(t, recipe, readmeRecipe(t), "the README's PostgreSQL block and this test disagree")

	admin := pgtest.AdminURL()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("PostgreSQL is required when CI is set: %v", err)
		}
		t.Skipf("PostgreSQL unreachable at %s (%v): SKIPPING the README recipe", admin, err)
	}
	conn.Close(ctx)
	if _, err := exec.LookPath("createdb"); err != nil {
		t.Fatalf("createdb (PostgreSQL's client programs) is needed by the README recipe: %v", err)
	}

	work, home := t.TempDir(), t.TempDir()
	build := exec.CommandContext(ctx, "go", "build", "-o", filepath.Join(work, "bin", "perfectpay"), ".")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "go build: %s", out)

	db := "pp_readme_" + strings.ToLower(ids.Random(10))
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), admin)
		if err == nil {
			c.Exec(context.Background(), "DROP DATABASE IF EXISTS "+db+" WITH (FORCE)") //nolint:errcheck // best-effort cleanup of the recipe's database
			c.Close(context.Background())
		}
	})
	u, err := url.Parse(admin)
	require.NoError(t, err)
	u.Path = "/" + db
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	ln.Close()
	env := append(os.Environ(), "HOME="+home, "PERFECTPAY_STORE_POSTGRES_URL="+u.String(),
		"PERFECTPAY_SERVER_ADDR="+addr, "PERFECTPAY_LOG_FORMAT=text")
	shell := func(line string) *exec.Cmd {
		cmd := exec.CommandContext(ctx, "bash", "-c", line)
		cmd.Dir, cmd.Env = work, env
		return cmd
	}

	var secret string
	for i, line := range recipe {
		if i == len(recipe)-1 {
			break // serve, below
		}
		if strings.HasPrefix(line, "createdb ") {
			require.True(t, strings.HasSuffix(line, " perfectpay"))
			line = strings.TrimSuffix(line, "perfectpay") + db
		}
		out, err := shell(line).CombinedOutput()
		require.NoError(t, err, "%s:\n%s", line, out)
		if strings.Contains(line, "tenants create") {
			var created struct {
				Keys map[string]string `json:"keys"`
			}
			require.NoError(t, json.Unmarshal(out[bytes.IndexByte(out, '{'):], &created), "%s", out)
			secret = created.Keys["secret_test"]
		}
	}
	require.NotEmpty(t, secret)
	for _, f := range []string{"config.yaml", "vault.keks"} {
		st, err := os.Stat(filepath.Join(home, ".perfectpay", f))
		require.NoError(t, err)
		assert.Equal(t, os.FileMode(0o600), st.Mode().Perm(), f)
	}

	logs := &apptest.SyncBuffer{} // written by exec's copying goroutine, read here
	serve := shell("exec " + recipe[len(recipe)-1])
	serve.Stdout, serve.Stderr = logs, logs
	require.NoError(t, serve.Start())
	done := make(chan error, 1)
	go func() { done <- serve.Wait() }()
	defer func() {
		_ = serve.Process.Signal(syscall.SIGTERM)
		select {
		case <-done: //nolint:errcheck // after SIGTERM its exit status says nothing
		case <-time.After(60 * time.Second):
			_ = serve.Process.Kill()
		}
	}()

	client := &http.Client{Timeout: 30 * time.Second}
	base := "http://" + addr
	deadline := time.Now().Add(2 * time.Minute)
	for {
		resp, err := client.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case err := <-done:
			t.Fatalf("serve exited: %v\n%s", err, logs.String())
		default:
		}
		require.True(t, time.Now().Before(deadline), "serve never became ready:\n%s", logs.String())
		time.Sleep(100 * time.Millisecond)
	}
	req, err := http.NewRequest(http.MethodGet, base+"/v1/tenant", nil)
	require.NoError(t, err)
	req.SetBasicAuth(secret, "")
	resp, err := client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var tenant map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&tenant))
	require.Equal(t, http.StatusOK, resp.StatusCode, "%v", tenant)
	assert.Equal(t, "Acme", tenant["name"], fmt.Sprint(tenant))
}

// TestDocsLinksStayInTheRepository: every link of README.md, HACKING.md
// and docs/ is a file of the repository (or an anchor, or a web address
// of a standard), never a path outside the clone; HACKING.md lists every
// migration.
func TestDocsLinksStayInTheRepository(t *testing.T) {
	root, err := filepath.Abs("../..")
	require.NoError(t, err)
	files := []string{"README.md", "HACKING.md"}
	docs, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	require.NoError(t, err)
	require.NotEmpty(t, docs, "docs/ holds the architecture")
	for _, d := range docs {
		rel, _ := filepath.Rel(root, d)
		files = append(files, rel)
	}
	link := regexp.MustCompile(`\]\(([^)\s]+)\)`)
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(root, f))
		require.NoError(t, err)
		for _, m := range link.FindAllStringSubmatch(string(b), -1) {
			target := m[1]
			if strings.HasPrefix(target, "#") || strings.HasPrefix(target, "https://") {
				continue
			}
			target, _, _ = strings.Cut(target, "#")
			abs := filepath.Join(root, filepath.Dir(f), target)
			inside, err := filepath.Rel(root, abs)
			require.NoError(t, err)
			assert.False(t, strings.HasPrefix(inside, ".."), "%s links %s, outside the repository", f, m[1])
			_, err = os.Stat(abs)
			assert.NoError(t, err, "%s links %s, which does not exist", f, m[1])
		}
	}

	hacking, err := os.ReadFile(filepath.Join(root, "HACKING.md"))
	require.NoError(t, err)
	migrations, err := filepath.Glob(filepath.Join(root, "store", "postgres", "migrations", "*.sql"))
	require.NoError(t, err)
	require.NotEmpty(t, migrations)
	for _, m := range migrations {
		name := strings.TrimSuffix(filepath.Base(m), ".sql")
		assert.True(t, strings.Contains(string(hacking), "| "+name+" |"), "HACKING.md's migration table lists %s", name)
	}
}

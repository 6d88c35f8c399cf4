package server_test

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/app/apptest"
	"github.com/perfectpay/perfectpay/audit"
)

// TestNoKeySecretStoredOrLogged drives traffic that shows secrets (key
// creation, rolls, replays, a wrong key) and then searches every log line,
// every audit entry and everything stored: every row of every table on
// Postgres, every field of the memory store.
func TestNoKeySecretStoredOrLogged(t *testing.T) {
	apptest.EachDriver(t, func(t *testing.T, driver string) {
		n := apptest.New(t, driver)
		b, sk := n.Tenant(t)
		secrets := []string{}
		for _, k := range b.Keys {
			secrets = append(secrets, k.Secret)
		}
		r := n.Do(t, apptest.Req{Method: "POST", Path: "/v1/api_keys", Key: sk, Header: map[string]string{"Idempotency-Key": "s1"},
			Body: map[string]any{"type": "restricted", "scopes": []string{"audit:read"}}})
		require.Equal(t, 201, r.Status)
		secrets = append(secrets, r.JSON["secret"].(string))
		n.Do(t, apptest.Req{Method: "POST", Path: "/v1/api_keys", Key: sk, Header: map[string]string{"Idempotency-Key": "s1"},
			Body: map[string]any{"type": "restricted", "scopes": []string{"audit:read"}}})
		r = n.Do(t, apptest.Req{Method: "POST", Path: "/v1/api_keys/" + b.Keys[1].Key.ID + "/roll", Key: sk, Header: map[string]string{"Idempotency-Key": "s2"}})
		require.Equal(t, 201, r.Status)
		secrets = append(secrets, r.JSON["secret"].(string))
		n.Do(t, apptest.Req{Method: "GET", Path: "/v1/tenant", Key: sk + "x"})
		n.Do(t, apptest.Req{Method: "GET", Path: "/v1/api_keys", Key: sk})

		_, err := n.App.Audit.SealAll(context.Background())
		require.NoError(t, err)
		entries, err := n.App.Audit.List(context.Background(), audit.Filter{Limit: 10000})
		require.NoError(t, err)
		require.NotEmpty(t, entries)
		dump, _ := json.Marshal(entries)
		logs := n.Logs.String()
		require.Contains(t, logs, `"msg":"request"`)

		var rows string
		if n.App.Postgres != nil {
			rows = dumpAllTables(t, n)
		} else {
			rows = dumpValue(reflect.ValueOf(n.App.Memory))
		}
		require.Contains(t, rows, b.Tenant.ID, "the dump really covers the data")
		require.Contains(t, rows, b.Keys[1].Key.ID, "… including the API keys")
		for _, s := range secrets {
			body := s[8:] // without the sk_test_ prefix
			assert.NotContains(t, logs, body, "log")
			assert.NotContains(t, string(dump), body, "audit")
			assert.NotContains(t, rows, body, "database")
			assert.NotContains(t, rows, hex.EncodeToString([]byte(body)), "database (bytea)")
		}
	})
}

// dumpAllTables returns every row of every table as text.
func dumpAllTables(t *testing.T, n *apptest.Node) string {
	ctx := context.Background()
	pool := n.App.Postgres.Pool()
	rows, err := pool.Query(ctx, `SELECT tablename FROM pg_tables WHERE schemaname = 'public'`)
	require.NoError(t, err)
	var tables []string
	for rows.Next() {
		var name string
		require.NoError(t, rows.Scan(&name))
		tables = append(tables, name)
	}
	rows.Close()
	require.NoError(t, rows.Err())
	var sb strings.Builder
	for _, tbl := range tables {
		r, err := pool.Query(ctx, `SELECT t::text FROM "`+tbl+`" t`)
		require.NoError(t, err)
		for r.Next() {
			var s string
			require.NoError(t, r.Scan(&s))
			sb.WriteString(s)
			sb.WriteByte('\n')
		}
		r.Close()
		require.NoError(t, r.Err())
	}
	return sb.String()
}

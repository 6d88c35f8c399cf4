package server_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/accounts"
	"github.com/perfectpay/perfectpay/app"
	"github.com/perfectpay/perfectpay/app/apptest"
)

// scrape GETs base+/metrics with an optional Authorization value.
func scrape(t *testing.T, base, auth string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, base+"/metrics", nil)
	require.NoError(t, err)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

// metricName is in every scrape (the runtime collector's).
const metricName = "go_goroutines"

func TestMetricsToken(t *testing.T) {
	apptest.EachDriver(t, func(t *testing.T, driver string) {
		tok, hash := accounts.NewConfigToken("mt_")
		n := apptest.New(t, driver, func(c *app.Config) { c.Server.MetricsToken = hash })
		_, sk := n.Tenant(t)
		require.Equal(t, 200, n.Do(t, apptest.Req{Method: "GET", Path: "/v1/tenant", Key: sk}).Status)
		for name, auth := range map[string]string{"none": "", "api key": "Bearer " + sk, "wrong token": "Bearer " + tok[:len(tok)-1],
			"basic": "Basic " + tok, "the hash": "Bearer " + hash} {
			code, body := scrape(t, n.URL, auth)
			assert.Equal(t, 401, code, name)
			assert.False(t, strings.Contains(body, metricName), name)
			assert.Contains(t, body, "invalid_metrics_token", name)
		}
		code, body := scrape(t, n.URL, "Bearer "+tok)
		assert.Equal(t, 200, code)
		assert.True(t, strings.Contains(body, metricName))
	})
}

func TestMetricsOwnListener(t *testing.T) {
	apptest.EachDriver(t, func(t *testing.T, driver string) {
		tok, hash := accounts.NewConfigToken("mt_")
		n := apptest.New(t, driver, func(c *app.Config) { c.Server.MetricsAddr = "127.0.0.1:0" })
		addr := n.App.MetricsAddr()
		require.NotEmpty(t, addr)
		code, _ := scrape(t, n.URL, "")
		assert.Equal(t, 404, code, "not on the API address")
		code, body := scrape(t, "http://"+addr, "")
		assert.Equal(t, 200, code)
		assert.True(t, strings.Contains(body, metricName))
		resp, err := http.Get("http://" + addr + "/v1/tenant")
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, 404, resp.StatusCode, "the metrics address serves nothing else")

		// Both: a separate address that asks for the token too.
		m := apptest.New(t, driver, func(c *app.Config) { c.Server.MetricsAddr = "127.0.0.1:0"; c.Server.MetricsToken = hash })
		code, body = scrape(t, "http://"+m.App.MetricsAddr(), "")
		assert.Equal(t, 401, code)
		assert.False(t, strings.Contains(body, metricName))
		code, body = scrape(t, "http://"+m.App.MetricsAddr(), "Bearer "+tok)
		assert.Equal(t, 200, code)
		assert.True(t, strings.Contains(body, metricName))
	})
}

// Without either setting /metrics stays where it was, open.
func TestMetricsOpenByDefault(t *testing.T) {
	apptest.EachDriver(t, func(t *testing.T, driver string) {
		n := apptest.New(t, driver)
		code, body := scrape(t, n.URL, "")
		assert.Equal(t, 200, code)
		assert.True(t, strings.Contains(body, metricName))
		assert.Empty(t, n.App.MetricsAddr())
	})
}

func TestMetricsConfigValidation(t *testing.T) {
	for name, edit := range map[string]func(*app.Config){
		"token not a hash":     func(c *app.Config) { c.Server.MetricsToken = "secret" },
		"short hash":           func(c *app.Config) { c.Server.MetricsToken = "sha256:abcd" },
		"addr not host:port":   func(c *app.Config) { c.Server.MetricsAddr = "metrics" },
		"addr same as API":     func(c *app.Config) { c.Server.MetricsAddr = c.Server.Addr },
		"operator key garbage": func(c *app.Config) { c.Platform.OperatorKey = "op_plain" },
	} {
		cfg := apptest.Config("memory", "")
		edit(&cfg)
		assert.Error(t, cfg.Validate(), name)
	}
}

package server_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/app/apptest"
	"github.com/perfectpay/perfectpay/store/pgtest"
)

func TestMerchantsAPI(t *testing.T) {
	apptest.EachDriver(t, func(t *testing.T, driver string) {
		n := apptest.New(t, driver)
		_, key := n.Tenant(t)
		_, buyerKey := n.Tenant(t)
		for _, tc := range []struct {
			body        map[string]any
			code, param string
		}{
			{map[string]any{"mcc": "5942", "country": "US"}, "parameter_missing", "display_name"},
			{map[string]any{"display_name": "Shop", "mcc": "59", "country": "US"}, "parameter_invalid", "mcc"},
			{map[string]any{"display_name": "Shop", "mcc": "5942", "country": "USA"}, "parameter_invalid", "country"},
			{map[string]any{"display_name": "Shop", "mcc": "5942", "country": "US", "domains": []string{"https://shop.example.com/"}}, "parameter_invalid", "domains"},
			{map[string]any{"display_name": "Shop", "mcc": "5942", "country": "US", "verified": true}, "unknown_parameter", "verified"},
		} {
			r := n.Do(t, apptest.Req{Method: "POST", Path: "/v1/merchants", Key: key, Body: tc.body})
			require.Equal(t, http.StatusBadRequest, r.Status, "%s", r.Body)
			assert.Equal(t, tc.code, r.ErrorCode())
			assert.Equal(t, tc.param, r.JSON["error"].(map[string]any)["param"])
		}

		r := n.Do(t, apptest.Req{Method: "POST", Path: "/v1/merchants", Key: key,
			Body: map[string]any{"display_name": "Corner Books", "mcc": "5942", "country": "us", "domains": []string{"Corner-Books.example"}}})
		require.Equal(t, http.StatusCreated, r.Status, "%s", r.Body)
		id := r.JSON["id"].(string)
		assert.Regexp(t, `^acct_`, id)
		assert.Equal(t, "US", r.JSON["country"])
		assert.Equal(t, []any{map[string]any{"domain": "corner-books.example", "verified": false, "verified_at": nil}}, r.JSON["domains"])

		r = n.Do(t, apptest.Req{Method: "POST", Path: "/v1/merchants", Key: key,
			Body: map[string]any{"display_name": "Corner Books & Café", "mcc": "5942", "country": "US", "domains": []string{"corner-books.example"}}})
		require.Equal(t, http.StatusOK, r.Status, "an update keeps the account id")
		assert.Equal(t, id, r.JSON["id"])
		assert.Equal(t, "Corner Books & Café", r.JSON["display_name"])

		// Anyone may look a merchant up; a claimed domain counts once verified.
		r = n.Do(t, apptest.Req{Method: "GET", Path: "/v1/merchants/" + id, Key: buyerKey})
		require.Equal(t, http.StatusOK, r.Status)
		assert.Equal(t, "5942", r.JSON["mcc"])
		r = n.Do(t, apptest.Req{Method: "GET", Path: "/v1/merchants?domain=corner-books.example", Key: buyerKey})
		require.Equal(t, http.StatusOK, r.Status)
		assert.Empty(t, r.JSON["data"])
		_, err := n.App.Merchants.VerifyDomain(context.Background(), id, "corner-books.example")
		require.NoError(t, err)
		r = n.Do(t, apptest.Req{Method: "GET", Path: "/v1/merchants?domain=CORNER-BOOKS.example", Key: buyerKey})
		require.Len(t, r.JSON["data"], 1)
		assert.Equal(t, id, r.JSON["data"].([]any)[0].(map[string]any)["id"])

		// An impostor may claim the domain but never hold it verified.
		r = n.Do(t, apptest.Req{Method: "POST", Path: "/v1/merchants", Key: buyerKey,
			Body: map[string]any{"display_name": "Not Corner Books", "mcc": "5942", "country": "US", "domains": []string{"corner-books.example"}}})
		require.Equal(t, http.StatusCreated, r.Status)
		_, err = n.App.Merchants.VerifyDomain(context.Background(), r.JSON["id"].(string), "corner-books.example")
		require.Error(t, err)

		r = n.Do(t, apptest.Req{Method: "GET", Path: "/v1/merchants/acct_missing", Key: key})
		assert.Equal(t, http.StatusNotFound, r.Status)
		r = n.Do(t, apptest.Req{Method: "GET", Path: "/v1/merchants?domain=", Key: key})
		assert.Equal(t, http.StatusBadRequest, r.Status, "an empty domain")
		assert.Equal(t, "domain", r.JSON["error"].(map[string]any)["param"])
		r = n.Do(t, apptest.Req{Method: "GET", Path: "/v1/merchants", Key: key})
		require.Equal(t, http.StatusOK, r.Status, "without a domain: the tenant's own profiles")
		require.Len(t, r.JSON["data"], 1)
		assert.Equal(t, id, r.JSON["data"].([]any)[0].(map[string]any)["id"])
	})
}

// TestDemoMerchants: dev mode seeds the demo merchants on either store, and
// seeding again on a database kept across starts (PostgreSQL) reuses them
// (it used to fail there, so `serve --dev` on PostgreSQL seeded none).
func TestDemoMerchants(t *testing.T) {
	apptest.EachDriver(t, func(t *testing.T, driver string) {
		url := ""
		if driver == "postgres" {
			url = pgtest.NewURL(t)
		}
		var first []string
		for start := range 2 {
			n := apptest.NewWithURL(t, driver, url)
			demo, err := n.App.SeedDemo(context.Background())
			require.NoError(t, err, "start %d", start)
			require.Len(t, demo.Merchants, 2)
			key := demo.Tenant.Keys[0].Secret
			var ids []string
			for _, tc := range []struct{ domain, name, mcc string }{
				{"books.acme.example", "Acme Books", "5942"},
				{"music.acme.example", "Acme Music", "5735"},
			} {
				r := n.Do(t, apptest.Req{Method: "GET", Path: "/v1/merchants?domain=" + tc.domain, Key: key})
				require.Equal(t, http.StatusOK, r.Status)
				require.Len(t, r.JSON["data"], 1, tc.domain)
				m := r.JSON["data"].([]any)[0].(map[string]any)
				assert.Equal(t, tc.name, m["display_name"])
				assert.Equal(t, tc.mcc, m["mcc"])
				ids = append(ids, m["id"].(string))
			}
			if driver == "postgres" && start == 1 {
				assert.Equal(t, first, ids, "the second start reuses the merchants of the first")
			}
			first = ids
			if driver == "memory" {
				break
			}
		}
	})
}

// TestDemoMerchantsSeededConcurrently: dev nodes starting together on one
// PostgreSQL database all seed successfully and agree on the demo merchants.
func TestDemoMerchantsSeededConcurrently(t *testing.T) {
	url := pgtest.NewURL(t)
	const nodes = 4
	var ns []*apptest.Node
	for range nodes {
		ns = append(ns, apptest.NewWithURL(t, "postgres", url))
	}
	start := make(chan struct{})
	errs := make(chan error, nodes)
	for _, n := range ns {
		go func() {
			<-start
			_, err := n.App.SeedDemo(context.Background())
			errs <- err
		}()
	}
	close(start)
	for range nodes {
		require.NoError(t, <-errs)
	}
	_, key := ns[0].Tenant(t)
	for _, domain := range []string{"books.acme.example", "music.acme.example"} {
		r := ns[0].Do(t, apptest.Req{Method: "GET", Path: "/v1/merchants?domain=" + domain, Key: key})
		require.Equal(t, http.StatusOK, r.Status)
		assert.Len(t, r.JSON["data"], 1, domain)
	}
}

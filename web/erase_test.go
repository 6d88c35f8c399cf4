package web_test

import (
	"context"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/accounts"
	"github.com/perfectpay/perfectpay/app/apptest"
	"github.com/perfectpay/perfectpay/audit"
	"github.com/perfectpay/perfectpay/store/memory"
	"github.com/perfectpay/perfectpay/store/postgres"
	"github.com/perfectpay/perfectpay/store/repos"
)

// inStore runs fn in a transaction of n's store, whichever it is.
func inStore(t *testing.T, n *apptest.Node, fn func(tx repos.Tx) error) {
	t.Helper()
	ctx := context.Background()
	if n.App.Postgres != nil {
		require.NoError(t, n.App.Postgres.InTx(ctx, func(tx *postgres.Tx) error { return fn(tx) }))
		return
	}
	require.NoError(t, n.App.Memory.InTx(ctx, func(tx *memory.Tx) error { return fn(tx) }))
}

// TestErasureForgetsTheCustomersAddresses: a payer signs in (from a new
// browser too, which raises a suspicious-login event naming the address)
// and holds a passkey. After erasure none of their audit entries holds an
// IP, no event names it, their passkeys and login marks are gone, and the
// audit trail still verifies, sealed entries included.
func TestErasureForgetsTheCustomersAddresses(t *testing.T) {
	apptest.EachDriver(t, func(t *testing.T, driver string) {
		n, c := node(t, driver)
		ctx := context.Background()
		bt, key := n.Tenant(t)
		p := signUp(t, n, c, newBrowser(t, n), key, bt.Tenant.ID, "pat@example.com")
		b := newBrowser(t, n)
		b.ua = "another browser"
		got := b.post("/login", "/login", url.Values{"tenant": {p.Tenant}, "email": {p.Email}, "password": {password}})
		require.Equal(t, http.StatusSeeOther, got.Status, got.Body)
		inStore(t, n, func(tx repos.Tx) error {
			return tx.AddPasskey(ctx, &accounts.Passkey{ID: []byte("cred-1"), TenantID: p.Tenant, UserID: p.ID, Name: "laptop",
				PublicKey: []byte{1}, CreatedAt: time.Now()})
		})
		_, err := n.App.Audit.SealAll(ctx) // some entries sealed, later ones not
		require.NoError(t, err)

		// mine are the entries whose IP is the payer's: their own acts.
		mine := func() []audit.Entry {
			var out []audit.Entry
			inStore(t, n, func(tx repos.Tx) error {
				all, err := tx.QueryAudit(ctx, audit.Query{Filter: audit.Filter{TenantID: p.Tenant, Limit: 100000},
					ActorType: audit.ActorUser, ActorID: p.ID})
				out = all
				return err
			})
			return out
		}
		before := mine()
		withIP, ip := 0, ""
		for _, e := range before {
			assert.Equal(t, audit.FormatPseudonymous, e.Format, e.Action)
			if e.IP != "" {
				withIP, ip = withIP+1, e.IP
				assert.Equal(t, audit.IPDigest(e.IPSalt, e.IP), e.IPDigest, "the hash covers the salted digest")
				assert.NotContains(t, string(e.Data), e.IP, "%s: the address is never in the hashed data", e.Action)
			}
		}
		require.NotZero(t, withIP, "the payer's entries held their address before erasure")
		r := n.Do(t, apptest.Req{Method: "GET", Path: "/v1/events?type=user.suspicious_login", Key: key})
		require.Equal(t, http.StatusOK, r.Status, string(r.Body))
		require.Contains(t, string(r.Body), `"ip"`)

		r = n.Do(t, apptest.Req{Method: "POST", Path: "/v1/customers/" + p.ID + "/erase", Key: key})
		require.Equal(t, http.StatusOK, r.Status, string(r.Body))

		after := mine()
		require.Len(t, after, len(before))
		for _, e := range after {
			assert.Empty(t, e.IP, "%s keeps no address", e.Action)
			assert.Empty(t, e.IPSalt, "%s keeps no salt", e.Action)
		}
		r = n.Do(t, apptest.Req{Method: "GET", Path: "/v1/events?type=user.suspicious_login", Key: key})
		require.Equal(t, http.StatusOK, r.Status, string(r.Body))
		assert.NotContains(t, string(r.Body), `"ip"`)
		assert.Contains(t, string(r.Body), p.ID, "the event stays, under the pseudonymous id")
		r = n.Do(t, apptest.Req{Method: "GET", Path: "/v1/audit_events?actor=" + p.ID + "&limit=100", Key: key})
		require.Equal(t, http.StatusOK, r.Status, string(r.Body))
		assert.Contains(t, string(r.Body), p.ID)
		assert.NotContains(t, string(r.Body), `"ip":"`+ip+`"`, "no address through the audit API")
		inStore(t, n, func(tx repos.Tx) error {
			keys, err := tx.ListPasskeys(ctx, p.Tenant, p.ID)
			assert.Empty(t, keys, "passkeys deleted")
			return err
		})
		if n.App.Postgres != nil {
			var left int
			require.NoError(t, n.App.Postgres.Pool().QueryRow(ctx, `SELECT
				(SELECT count(*) FROM audit_events WHERE tenant_id = $1 AND (actor_id = $2 OR target = $2)
					AND actor_type IN ('user', 'system') AND (ip <> '' OR ip_salt IS NOT NULL)) +
				(SELECT count(*) FROM user_login_marks WHERE user_id = $2) +
				(SELECT count(*) FROM user_passkeys WHERE user_id = $2) +
				(SELECT count(*) FROM events WHERE tenant_id = $1 AND data::text LIKE '%"ip"%')`, p.Tenant, p.ID).Scan(&left))
			assert.Zero(t, left)
		}

		// Both the entries sealed before erasure and those sealed after
		// still verify: the hashes never covered the address itself.
		_, err = n.App.Audit.SealAll(ctx)
		require.NoError(t, err)
		res, err := n.App.Audit.Verify(ctx)
		require.NoError(t, err)
		assert.True(t, res.OK, "%+v", res)
		erased := n.Do(t, apptest.Req{Method: "GET", Path: "/v1/audit_events?action=customer.erased", Key: key})
		assert.Contains(t, string(erased.Body), `"passkeys_deleted":1`)
	})
}

// TestAuditAddressEditIsFound: the clear address sits outside the hashed
// content, but changing it (rather than forgetting it) no longer matches
// its salted digest, and verification says so.
func TestAuditAddressEditIsFound(t *testing.T) {
	apptest.EachDriver(t, func(t *testing.T, driver string) {
		n, c := node(t, driver)
		ctx := context.Background()
		bt, key := n.Tenant(t)
		p := signUp(t, n, c, newBrowser(t, n), key, bt.Tenant.ID, "pat@example.com")
		_, err := n.App.Audit.SealAll(ctx)
		require.NoError(t, err)
		var e audit.Entry
		inStore(t, n, func(tx repos.Tx) error {
			all, err := tx.QueryAudit(ctx, audit.Query{Filter: audit.Filter{TenantID: p.Tenant, Limit: 1000},
				ActorType: audit.ActorUser, ActorID: p.ID})
			for _, x := range all {
				if x.IP != "" {
					e = x
				}
			}
			return err
		})
		require.NotEmpty(t, e.IP)
		if n.App.Postgres != nil {
			_, err = n.App.Postgres.Pool().Exec(ctx, `UPDATE audit_events SET ip = '203.0.113.9' WHERE seq = $1`, e.Seq)
			require.NoError(t, err)
		} else {
			n.App.Memory.TamperAuditTables(func(tb memory.AuditTables) {
				x := tb.Entries[e.Seq]
				x.IP = "203.0.113.9"
				tb.Entries[e.Seq] = x
			})
		}
		res, err := n.App.Audit.Verify(ctx)
		require.NoError(t, err)
		assert.False(t, res.OK)
		assert.Equal(t, e.ID, res.BadID)
	})
}

package app_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/app"
	"github.com/perfectpay/perfectpay/app/apptest"
	"github.com/perfectpay/perfectpay/audit"
	"github.com/perfectpay/perfectpay/idempotency"
	"github.com/perfectpay/perfectpay/retention"
	"github.com/perfectpay/perfectpay/store"
	"github.com/perfectpay/perfectpay/store/memory"
	"github.com/perfectpay/perfectpay/store/postgres"
	"github.com/perfectpay/perfectpay/store/repos"
)

// inNode runs fn in a transaction of n's store.
func inNode(n *apptest.Node, fn func(tx repos.Tx) error) error {
	ctx := context.Background()
	if n.App.Postgres != nil {
		return n.App.Postgres.InTx(ctx, func(tx *postgres.Tx) error { return fn(tx) })
	}
	return n.App.Memory.InTx(ctx, func(tx *memory.Tx) error { return fn(tx) })
}

// TestRetentionJobRunsOnALiveNode: a running node's own retention job,
// not a sweep a test calls, deletes a record past its retention and
// writes the batch's retention.deleted entry.
func TestRetentionJobRunsOnALiveNode(t *testing.T) {
	apptest.EachDriver(t, func(t *testing.T, driver string) {
		n := apptest.New(t, driver, func(c *app.Config) { c.Retention.Interval = 20 * time.Millisecond })
		ctx := context.Background()
		now := time.Now().UTC()
		due := &idempotency.Record{TenantID: "ten_live", CredentialID: "key_live", Key: "due", Method: "POST", Path: "/v1/x",
			RequestHash: []byte{1}, State: idempotency.StateInProgress, CreatedAt: now.Add(-48 * time.Hour),
			LockedUntil: now.Add(time.Hour), ExpiresAt: now.Add(-time.Hour)}
		require.NoError(t, inNode(n, func(tx repos.Tx) error { _, err := tx.ClaimIdempotency(ctx, due); return err }))

		gone := func() bool {
			var deleted, audited bool
			err := inNode(n, func(tx repos.Tx) error {
				probe := *due
				_, err := tx.ClaimIdempotency(ctx, &probe)
				deleted = err == nil // the key could be claimed anew: the record went
				if err != nil && !errors.Is(err, store.ErrConflict) {
					return err
				}
				entries, err := tx.ListAudit(ctx, audit.Filter{Action: retention.ActionDelete, Target: retention.ClassIdempotency})
				audited = len(entries) > 0
				return errors.Join(err, errProbe) // roll the probe's claim back
			})
			if err != nil && !errors.Is(err, errProbe) {
				t.Fatal(err)
			}
			return deleted && audited
		}
		assert.Eventually(t, gone, 60*time.Second, 20*time.Millisecond,
			"the node's retention job deletes the expired record and audits the batch")
	})
}

var errProbe = errors.New("probe rolled back")

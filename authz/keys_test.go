package authz_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/audit"
	"github.com/perfectpay/perfectpay/authz"
	"github.com/perfectpay/perfectpay/store/memory"
)

// fakeClock is a clock tests move by hand, safe for the issuer's goroutine.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(time.Now().UnixNano())
	return c
}

func (c *fakeClock) now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) advance(d time.Duration) { c.ns.Add(int64(d)) }

func (e *env) keyIDs() []string {
	var out []string
	require.NoError(e.t, e.db.InTx(context.Background(), func(tx authz.Tx) error {
		keys, err := tx.ListSigningKeys(context.Background())
		for _, k := range keys {
			out = append(out, k.KID)
		}
		return err
	}))
	return out
}

// The rotation job prunes a retired key once every token it signed has
// expired: it leaves the table and the JWKS, and the pruning is audited.
func TestRetiredKeysPruned(t *testing.T) {
	clock := newFakeClock()
	e := newEnv(t, func(o *authz.Options) { o.Now = clock.now; o.RotationInterval = time.Hour })
	ctx := context.Background()
	id, secret := e.secretAgent(authz.AgentInput{})
	first := e.iss.CurrentKeyID()
	tok := e.accessToken(e.iss, id, secret, nil)

	second, err := e.iss.RotateSigningKey(ctx)
	require.NoError(t, err)
	n, err := e.iss.PruneSigningKeys(ctx)
	require.NoError(t, err)
	assert.Equal(t, 0, n, "the retired key still verifies live tokens")
	_, err = e.iss.Verify(ctx, tok)
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{first, second}, e.keyIDs())

	// Past the longest token lifetime plus skew: the job prunes it.
	clock.advance(authz.MaxAccessTokenTTL + 2*time.Minute)
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); e.iss.Run(runCtx, e.m) }()
	defer func() { cancel(); <-done }()
	// The job deletes the key, commits, then reloads the node's keys: wait
	// for both (on a busy machine the test can run between the two).
	require.Eventually(t, func() bool {
		return len(e.keyIDs()) == 1 && !strings.Contains(string(e.iss.JWKS(ctx)), first)
	}, 30*time.Second, 20*time.Millisecond)
	assert.Equal(t, []string{second}, e.keyIDs())
	assert.NotContains(t, string(e.iss.JWKS(ctx)), first)
	assert.Contains(t, string(e.iss.JWKS(ctx)), second)

	var pruned []audit.Entry
	require.NoError(t, e.m.InTx(ctx, func(tx *memory.Tx) error {
		var err error
		pruned, err = tx.ListAudit(ctx, audit.Filter{Action: "signing_key.pruned"})
		return err
	}))
	require.Len(t, pruned, 1)
	assert.Equal(t, first, pruned[0].Target)
}

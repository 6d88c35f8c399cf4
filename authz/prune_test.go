package authz_test

import (
	"context"
	"errors"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/authz"
	"github.com/perfectpay/perfectpay/store"
)

// TestPruneExpiredEvictsTokens mints tokens on a fake clock, moves the
// clock past their expiry and sweeps: every token session is gone, on
// both stores; before the expiry the sweep keeps them.
func TestPruneExpiredEvictsTokens(t *testing.T) {
	eachAuthzStore(t, func(t *testing.T, db store.Runner[authz.Tx], tenant string) {
		ctx := context.Background()
		var mu sync.Mutex
		now := time.Now()
		clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
		opt := baseOptions()
		opt.Now = clock
		iss, err := authz.New(ctx, db, opt)
		require.NoError(t, err)
		a, secret, err := iss.CreateAgent(ctx, tenant, authz.AgentInput{Name: "agent", AuthMethod: authz.AuthClientSecretBasic})
		require.NoError(t, err)
		var jtis []string
		for range 5 {
			st, body := raceToken(iss, 0, a.ID, secret, url.Values{"grant_type": {"client_credentials"}})
			require.Equal(t, 200, st, body)
			_, claims, _ := parts(body["access_token"].(string))
			jtis = append(jtis, claims["jti"].(string))
		}
		stored := func() int {
			n := 0
			require.NoError(t, db.InTx(ctx, func(tx authz.Tx) error {
				for _, jti := range jtis {
					_, err := tx.GetTokenSession(ctx, authz.KindAccess, jti)
					switch {
					case err == nil:
						n++
					case !errors.Is(err, store.ErrNotFound):
						return err
					}
				}
				return nil
			}))
			return n
		}
		_, err = iss.PruneExpired(ctx)
		require.NoError(t, err)
		require.Equal(t, len(jtis), stored(), "a live token was evicted")

		mu.Lock()
		now = now.Add(authz.MaxAccessTokenTTL + 2*time.Minute)
		mu.Unlock()
		n, err := iss.PruneExpired(ctx)
		require.NoError(t, err)
		require.GreaterOrEqual(t, n, len(jtis))
		require.Zero(t, stored(), "expired tokens were not evicted")
	})
}

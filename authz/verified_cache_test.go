package authz_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/authz"
)

// TestVerifiedTokenStillChecked: a token verified once (and so remembered
// without its signature check) is still refused when it is revoked, when
// it expires, and when one byte of it changes.
func TestVerifiedTokenStillChecked(t *testing.T) {
	var mu sync.Mutex
	now := time.Now()
	e := newEnv(t, func(o *authz.Options) {
		o.Now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	})
	ctx := context.Background()
	id, secret := e.secretAgent(authz.AgentInput{})

	tok := e.accessToken(e.iss, id, secret, nil)
	for range 2 {
		_, err := e.iss.Verify(ctx, tok)
		require.NoError(t, err)
	}
	tampered := tok[:len(tok)-3] + string("AAB"[len(tok)%3]) + tok[len(tok)-2:]
	if tampered != tok {
		_, err := e.iss.Verify(ctx, tampered)
		require.Error(t, err, "a changed token was accepted")
	}
	require.NoError(t, e.iss.RevokeToken(ctx, authz.Caller{TenantID: e.tenant}, tok, ""))
	_, err := e.iss.Verify(ctx, tok)
	require.Error(t, err, "a revoked token was accepted after it had been verified")

	tok = e.accessToken(e.iss, id, secret, nil)
	_, err = e.iss.Verify(ctx, tok)
	require.NoError(t, err)
	mu.Lock()
	now = now.Add(authz.MaxAccessTokenTTL + time.Minute)
	mu.Unlock()
	_, err = e.iss.Verify(ctx, tok)
	require.Error(t, err, "an expired token was accepted after it had been verified")
	require.Contains(t, err.Error(), "expired")
}

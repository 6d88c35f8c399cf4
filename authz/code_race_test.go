package authz_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/authz"
	"github.com/perfectpay/perfectpay/store"
)

// codeGate holds the second of two redemptions of one code (raceKey 2)
// right after its first read of the code, while it still saw the code
// live, until the test releases it.
type codeGate struct {
	store.Runner[authz.Tx]
	once    sync.Once
	arrived chan struct{}
	release chan struct{}
}

type codeSpy struct {
	authz.Tx
	read *bool
}

func (s codeSpy) GetTokenSession(ctx context.Context, kind, sig string) (*authz.TokenSession, error) {
	if kind == authz.KindCode {
		*s.read = true
	}
	return s.Tx.GetTokenSession(ctx, kind, sig)
}

func (g *codeGate) hold(ctx context.Context, read bool) {
	if who, _ := ctx.Value(raceKey{}).(int); who != 2 || !read {
		return
	}
	g.once.Do(func() {
		g.arrived <- struct{}{}
		<-g.release
	})
}

func (g *codeGate) Autocommit(ctx context.Context, fn func(tx authz.Tx) error) error {
	var read bool
	err := g.Runner.Autocommit(ctx, func(tx authz.Tx) error { return fn(codeSpy{tx, &read}) })
	g.hold(ctx, read)
	return err
}

func (g *codeGate) InTx(ctx context.Context, fn func(tx authz.Tx) error) error {
	var read bool
	err := g.Runner.InTx(ctx, func(tx authz.Tx) error { return fn(codeSpy{tx, &read}) })
	g.hold(ctx, read)
	return err
}

// TestAuthorizeCodeRaceStaged: a second redemption reads the code as live,
// then the first redeems it to the end. The second must still be seen as
// a reuse: it gets invalid_grant (not a server error, not a failed PKCE
// check because the first one used the challenge up) and the first
// redemption's token stops working.
func TestAuthorizeCodeRaceStaged(t *testing.T) {
	eachAuthzStore(t, func(t *testing.T, db store.Runner[authz.Tx], tenant string) {
		ctx := context.Background()
		gate := &codeGate{Runner: db, arrived: make(chan struct{}, 1), release: make(chan struct{})}
		clock := newFakeClock()
		e := &env{t: t, db: gate, tenant: tenant}
		e.iss = e.issuer(codeOptions(clock))
		c := codeEnvFor(t, e, clock)
		code := c.approved().Get("code")
		form := func() map[string][]string {
			return map[string][]string{"grant_type": {"authorization_code"}, "code": {code},
				"redirect_uri": {redirectURI}, "code_verifier": {c.verifier}}
		}
		type answer struct {
			st   int
			body map[string]any
		}
		second := make(chan answer, 1)
		go func() {
			st, body := raceToken(c.iss, 2, c.agent, c.secret, form())
			second <- answer{st, body}
		}()
		select {
		case <-gate.arrived:
		case <-time.After(2 * time.Minute): // a bound for a hung test, not a timing check
			t.Fatal("the second redemption never read the code")
		}
		st, body := raceToken(c.iss, 1, c.agent, c.secret, form())
		require.Equal(t, 200, st, body)
		tok := body["access_token"].(string)
		close(gate.release)
		b := <-second
		assert.Equal(t, 400, b.st, b.body)
		assert.Equal(t, "invalid_grant", b.body["error"], b.body)
		out, err := c.iss.Introspect(ctx, authz.Caller{TenantID: tenant}, tok, "")
		require.NoError(t, err)
		assert.Equal(t, false, out["active"], "the code was presented twice: its token is revoked")
	})
}

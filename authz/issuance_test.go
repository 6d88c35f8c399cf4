package authz_test

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/audit"
	"github.com/perfectpay/perfectpay/authz"
	"github.com/perfectpay/perfectpay/store"
)

// batchGate holds the first issuance transaction until released and fails
// the commit of every later one that stores a token, noting what each
// transaction stored.
type batchGate struct {
	store.Runner[authz.Tx]
	hold    chan struct{} // closed when the first transaction may go on
	holding chan struct{} // closed when the first transaction is held

	mu      sync.Mutex
	calls   int
	batches [][]string // the token signatures each transaction stored
}

var errCommit = errors.New("commit failed (injected)")

type recordSessions struct {
	authz.Tx
	sigs *[]string
}

func (r recordSessions) CreateTokenSession(ctx context.Context, ts *authz.TokenSession) error {
	*r.sigs = append(*r.sigs, ts.Signature)
	return r.Tx.CreateTokenSession(ctx, ts)
}

func (g *batchGate) InTx(ctx context.Context, fn func(authz.Tx) error) error {
	var sigs []string
	err := g.Runner.InTx(ctx, func(tx authz.Tx) error {
		if err := fn(recordSessions{tx, &sigs}); err != nil {
			return err
		}
		if len(sigs) == 0 {
			return nil // not an issuance
		}
		g.mu.Lock()
		g.calls++
		first := g.calls == 1
		g.mu.Unlock()
		if first {
			close(g.holding)
			<-g.hold
			return nil
		}
		return errCommit
	})
	if len(sigs) > 0 {
		g.mu.Lock()
		g.batches = append(g.batches, sigs)
		g.mu.Unlock()
	}
	return err
}

// TestIssuanceBatchFailureFailsEveryToken lines up a batch of tokens behind
// a held issuance transaction, then fails the batch's commit: every token
// of the batch is refused, none is handed out, and none is stored or
// audited. The held token, whose own transaction commits, is issued.
func TestIssuanceBatchFailureFailsEveryToken(t *testing.T) {
	eachAuthzStore(t, func(t *testing.T, db store.Runner[authz.Tx], tenant string) {
		ctx := context.Background()
		gate := &batchGate{Runner: db, hold: make(chan struct{}), holding: make(chan struct{})}
		iss, err := authz.New(ctx, gate, baseOptions())
		require.NoError(t, err)
		// One batch at a time, so the others line up behind the held one.
		authz.SetIssuanceInFlight(iss, 1)
		a, secret, err := iss.CreateAgent(ctx, tenant, authz.AgentInput{Name: "agent", AuthMethod: authz.AuthClientSecretBasic})
		require.NoError(t, err)
		form := url.Values{"grant_type": {"client_credentials"}}

		const batch = 8
		type result struct {
			status int
			body   map[string]any
		}
		results := make([]result, batch+1)
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, body := raceToken(iss, 0, a.ID, secret, form)
			results[0] = result{st, body}
		}()
		<-gate.holding
		for n := 1; n <= batch; n++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				st, body := raceToken(iss, n, a.ID, secret, form)
				results[n] = result{st, body}
			}()
		}
		require.Eventually(t, func() bool { return authz.IssuanceQueued(iss) == batch }, time.Minute, time.Millisecond,
			"the tokens never lined up behind the held transaction")
		close(gate.hold)
		wg.Wait()

		require.Equal(t, 200, results[0].status, results[0].body)
		require.NotEmpty(t, results[0].body["access_token"])
		for n := 1; n <= batch; n++ {
			require.NotEqual(t, 200, results[n].status, "token %d was handed out from a failed batch", n)
			require.Nil(t, results[n].body["access_token"], "token %d was handed out from a failed batch", n)
		}
		gate.mu.Lock()
		batches := gate.batches
		gate.mu.Unlock()
		require.Len(t, batches, 2, "the held token's transaction and one batch of the rest")
		require.Len(t, batches[1], batch, "every waiting token went into one batch")
		require.NoError(t, db.InTx(ctx, func(tx authz.Tx) error {
			lister := tx.(interface {
				ListAudit(context.Context, audit.Filter) ([]audit.Entry, error)
			})
			for _, sig := range batches[1] {
				if _, err := tx.GetTokenSession(ctx, authz.KindAccess, sig); !errors.Is(err, store.ErrNotFound) {
					return errors.New("a token of the failed batch was stored")
				}
				if es, err := lister.ListAudit(ctx, audit.Filter{Target: sig}); err != nil || len(es) != 0 {
					return errors.New("a token of the failed batch was audited")
				}
			}
			es, err := lister.ListAudit(ctx, audit.Filter{Target: batches[0][0], Action: "token.issued"})
			if err != nil || len(es) != 1 {
				return errors.New("the issued token has no token.issued entry")
			}
			return nil
		}))
	})
}

// holdFirst holds the first issuance transaction until released; the
// others run as they come.
type holdFirst struct {
	store.Runner[authz.Tx]
	hold    chan struct{}
	holding chan struct{}
	once    sync.Once
}

func (h *holdFirst) InTx(ctx context.Context, fn func(authz.Tx) error) error {
	return h.Runner.InTx(ctx, func(tx authz.Tx) error {
		var sigs []string
		if err := fn(recordSessions{tx, &sigs}); err != nil || len(sigs) == 0 {
			return err
		}
		first := false
		h.once.Do(func() { first = true })
		if first {
			close(h.holding)
			<-h.hold
		}
		return nil
	})
}

// TestIssuanceSecondBatchCommitsWhileFirstIsHeld: a batch whose commit is
// slow does not hold up the next one, and the held token is handed out
// only once its own transaction commits.
func TestIssuanceSecondBatchCommitsWhileFirstIsHeld(t *testing.T) {
	eachAuthzStore(t, func(t *testing.T, db store.Runner[authz.Tx], tenant string) {
		if strings.HasSuffix(t.Name(), "/memory") {
			t.Skip("the memory store runs one transaction at a time: there the second batch waits for the first")
		}
		ctx := context.Background()
		gate := &holdFirst{Runner: db, hold: make(chan struct{}), holding: make(chan struct{})}
		iss, err := authz.New(ctx, gate, baseOptions())
		require.NoError(t, err)
		a, secret, err := iss.CreateAgent(ctx, tenant, authz.AgentInput{Name: "agent", AuthMethod: authz.AuthClientSecretBasic})
		require.NoError(t, err)
		form := url.Values{"grant_type": {"client_credentials"}}

		held := make(chan int, 1)
		go func() {
			st, _ := raceToken(iss, 0, a.ID, secret, form)
			held <- st
		}()
		<-gate.holding
		st, body := raceToken(iss, 1, a.ID, secret, form)
		require.Equal(t, 200, st, body)
		require.NotEmpty(t, body["access_token"])
		select {
		case <-held:
			t.Fatal("the held token was handed out before its transaction committed")
		default:
		}
		close(gate.hold)
		require.Equal(t, 200, <-held)
	})
}

type panicRunner struct{ store.Runner[authz.Tx] }

type panicSessions struct{ authz.Tx }

func (panicSessions) CreateTokenSession(context.Context, *authz.TokenSession) error {
	panic("injected")
}

func (r panicRunner) InTx(ctx context.Context, fn func(authz.Tx) error) error {
	return r.Runner.InTx(ctx, func(tx authz.Tx) error { return fn(panicSessions{tx}) })
}

// TestIssuancePanicFailsTheBatch: a write that panics while a batch
// commits fails that batch's tokens; the process and the next batches
// live on.
func TestIssuancePanicFailsTheBatch(t *testing.T) {
	e := newEnv(t)
	id, secret := e.secretAgent(authz.AgentInput{})
	iss, err := authz.New(context.Background(), panicRunner{e.db}, baseOptions())
	require.NoError(t, err)
	for range 2 {
		st, body := raceToken(iss, 0, id, secret, url.Values{"grant_type": {"client_credentials"}})
		require.NotEqual(t, 200, st)
		require.Nil(t, body["access_token"])
	}
	// The store the failed batches ran on is unharmed.
	st, body, _ := token(t, e.iss, id, secret, url.Values{"grant_type": {"client_credentials"}}, nil)
	require.Equal(t, 200, st, body)
}

package authz_test

import (
	"context"
	"errors"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/authz"
	"github.com/perfectpay/perfectpay/store"
)

// refreshGate stages a race between two uses of one refresh token: it
// holds every request that has read the token's session until the test
// releases both (so both saw it live), then lets the one whose spend
// conflicted (the loser) go on only once the winner has stored its new
// refresh token. The loser's reuse handling must then revoke the family,
// the winner's new tokens included.
type refreshGate struct {
	store.Runner[authz.Tx]
	mu         sync.Mutex
	armed      bool
	arrived    chan struct{}
	release    chan struct{}
	winnerDone chan struct{}
	once       sync.Once
	problems   []string
}

// spy notes what a transaction does with refresh token sessions.
type spy struct {
	authz.Tx
	read, conflict, created *bool
}

func (s spy) GetTokenSession(ctx context.Context, kind, sig string) (*authz.TokenSession, error) {
	if kind == authz.KindRefresh {
		*s.read = true
	}
	return s.Tx.GetTokenSession(ctx, kind, sig)
}

func (s spy) DeactivateTokenSession(ctx context.Context, kind, sig string) error {
	err := s.Tx.DeactivateTokenSession(ctx, kind, sig)
	if kind == authz.KindRefresh && errors.Is(err, store.ErrConflict) {
		*s.conflict = true
	}
	return err
}

func (s spy) CreateTokenSession(ctx context.Context, ts *authz.TokenSession) error {
	if ts.Kind == authz.KindRefresh {
		*s.created = true
	}
	return s.Tx.CreateTokenSession(ctx, ts)
}

func (g *refreshGate) Autocommit(ctx context.Context, fn func(tx authz.Tx) error) error {
	var read, conflict, created bool
	err := g.Runner.Autocommit(ctx, func(tx authz.Tx) error { return fn(spy{tx, &read, &conflict, &created}) })
	g.mu.Lock()
	armed := g.armed
	g.mu.Unlock()
	if read && armed {
		g.arrived <- struct{}{}
		<-g.release
	}
	return err
}

func (g *refreshGate) InTx(ctx context.Context, fn func(tx authz.Tx) error) error {
	var read, conflict, created bool
	err := g.Runner.InTx(ctx, func(tx authz.Tx) error { return fn(spy{tx, &read, &conflict, &created}) })
	if created && err == nil {
		g.once.Do(func() { close(g.winnerDone) })
	}
	if conflict {
		select {
		case <-g.winnerDone:
		case <-time.After(2 * time.Minute): // a bound for a hung test, not a timing check
			g.mu.Lock()
			g.problems = append(g.problems, "the winner never stored its new refresh token")
			g.mu.Unlock()
		}
	}
	return err
}

// TestRefreshRaceRevokesFamily sends two uses of one refresh token that
// both read it as live before either spends it. Exactly one wins; the other
// is reuse, which must revoke the whole family: the family's first access
// token and the winner's new refresh and access tokens stop working.
// Results are collected from the goroutines and asserted here.
func TestRefreshRaceRevokesFamily(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	gate := &refreshGate{Runner: e.db, arrived: make(chan struct{}, 2), release: make(chan struct{}), winnerDone: make(chan struct{})}
	iss, err := authz.New(ctx, gate, baseOptions())
	require.NoError(t, err)
	a, secret, err := iss.CreateAgent(ctx, e.tenant, authz.AgentInput{Name: "agent", AuthMethod: authz.AuthClientSecretBasic,
		GrantTypes: []string{authz.GrantClientCredentials, authz.GrantRefreshToken}, Scopes: []string{"charges:read", "offline_access"}})
	require.NoError(t, err)
	st, body, _ := token(t, iss, a.ID, secret, url.Values{"grant_type": {"client_credentials"}, "scope": {"charges:read offline_access"}}, nil)
	require.Equal(t, 200, st, body)
	rt, at := body["refresh_token"].(string), body["access_token"].(string)
	require.NotEmpty(t, rt)

	type result struct {
		status int
		body   map[string]any
	}
	results := make(chan result, 2)
	gate.mu.Lock()
	gate.armed = true
	gate.mu.Unlock()
	for range 2 {
		go func() {
			st, body, _ := token(t, iss, a.ID, secret, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}, nil)
			results <- result{st, body}
		}()
	}
	// Both have read the refresh token as live: let them race to spend it.
	timeout := time.After(2 * time.Minute) // a bound for a hung test, not a timing check
	for range 2 {
		select {
		case <-gate.arrived:
		case <-timeout:
			t.Fatal("the two refresh requests never both read the refresh token")
		}
	}
	gate.mu.Lock()
	gate.armed = false
	gate.mu.Unlock()
	close(gate.release)
	var wins []map[string]any
	for range 2 {
		r := <-results
		switch r.status {
		case 200:
			wins = append(wins, r.body)
		case 400:
			// invalid_grant, or fosite's invalid_request "please retry" when
			// the spend itself lost the race.
			assert.Contains(t, []any{"invalid_grant", "invalid_request"}, r.body["error"], r.body)
		default:
			t.Errorf("a refresh answered %d %v", r.status, r.body)
		}
	}
	require.Len(t, wins, 1, "exactly one of two uses of a refresh token wins")
	assert.Empty(t, gate.problems)

	// Reuse was detected, so the family is revoked: the original access
	// token and whatever the winner got are dead.
	_, err = iss.Verify(ctx, at)
	assert.Error(t, err, "the family's first access token")
	for _, w := range wins {
		_, err := iss.Verify(ctx, w["access_token"].(string))
		assert.Error(t, err, "the winner's access token belongs to the revoked family")
		st, body, _ := token(t, iss, a.ID, secret, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {w["refresh_token"].(string)}}, nil)
		assert.Equal(t, 400, st, "the winner's refresh token belongs to the revoked family: %v", body)
	}
}

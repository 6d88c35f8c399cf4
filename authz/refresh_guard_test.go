package authz_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/accounts"
	"github.com/perfectpay/perfectpay/authz"
	"github.com/perfectpay/perfectpay/store"
	"github.com/perfectpay/perfectpay/store/memory"
	"github.com/perfectpay/perfectpay/store/pgtest"
	"github.com/perfectpay/perfectpay/store/postgres"
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

// raceKey marks the context of each of the two racing requests (1 or 2).
type raceKey struct{}

// spendSpy notes whether a transaction spent a refresh token.
type spendSpy struct {
	authz.Tx
	read, spent *bool
}

func (s spendSpy) GetTokenSession(ctx context.Context, kind, sig string) (*authz.TokenSession, error) {
	if kind == authz.KindRefresh {
		*s.read = true
	}
	return s.Tx.GetTokenSession(ctx, kind, sig)
}

func (s spendSpy) DeactivateTokenSession(ctx context.Context, kind, sig string) error {
	err := s.Tx.DeactivateTokenSession(ctx, kind, sig)
	if kind == authz.KindRefresh && err == nil {
		*s.spent = true
	}
	return err
}

// familyGate stages the ordering refreshGate does not: both requests read
// the refresh token as live, one spends it, and every later transaction of
// that winner waits until the loser has its answer — so the loser's reuse
// handling (the family's revocation) runs before whatever the winner still
// writes after its spend. Nothing of the family may survive that.
type familyGate struct {
	store.Runner[authz.Tx]
	mu       sync.Mutex
	armed    bool
	arrived  chan struct{}
	release  chan struct{}
	spentBy  int
	finished [3]chan struct{} // finished[n] closes when request n has its answer
	problems []string
}

func (g *familyGate) Autocommit(ctx context.Context, fn func(tx authz.Tx) error) error {
	var read, spent bool
	err := g.Runner.Autocommit(ctx, func(tx authz.Tx) error { return fn(spendSpy{tx, &read, &spent}) })
	g.mu.Lock()
	armed := g.armed
	g.mu.Unlock()
	if read && armed {
		g.arrived <- struct{}{}
		<-g.release
	}
	return err
}

func (g *familyGate) InTx(ctx context.Context, fn func(tx authz.Tx) error) error {
	who, _ := ctx.Value(raceKey{}).(int)
	g.mu.Lock()
	winner := who != 0 && g.spentBy == who
	g.mu.Unlock()
	if winner {
		select {
		case <-g.finished[3-who]:
		case <-time.After(2 * time.Minute): // a bound for a hung test, not a timing check
			g.mu.Lock()
			g.problems = append(g.problems, "the loser never answered")
			g.mu.Unlock()
		}
	}
	var read, spent bool
	err := g.Runner.InTx(ctx, func(tx authz.Tx) error { return fn(spendSpy{tx, &read, &spent}) })
	if err == nil && spent && who != 0 {
		g.mu.Lock()
		if g.spentBy == 0 {
			g.spentBy = who
		}
		g.mu.Unlock()
	}
	return err
}

// raceToken is token with the request's context marked as request who.
func raceToken(iss *authz.Issuer, who int, id, secret string, form url.Values) (int, map[string]any) {
	r := httptest.NewRequest("POST", testIssuer+"/oauth2/token", strings.NewReader(form.Encode()))
	r = r.WithContext(context.WithValue(r.Context(), raceKey{}, who))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.SetBasicAuth(id, secret)
	w := httptest.NewRecorder()
	iss.TokenEndpoint(w, r)
	var out map[string]any
	_ = json.Unmarshal(w.Body.Bytes(), &out)
	return w.Code, out
}

// eachAuthzStore runs fn on a memory and a PostgreSQL store, each with
// one tenant.
func eachAuthzStore(t *testing.T, fn func(t *testing.T, db store.Runner[authz.Tx], tenant string)) {
	tenant := "ten_" + strings.Repeat("b", 8)
	add := func(ctx context.Context, tx interface {
		CreateTenant(context.Context, *accounts.Tenant) error
	}) error {
		return tx.CreateTenant(ctx, &accounts.Tenant{ID: tenant, Name: "t", Status: accounts.TenantActive, CreatedAt: time.Now()})
	}
	t.Run("memory", func(t *testing.T) {
		m := memory.New()
		require.NoError(t, m.InTx(context.Background(), func(tx *memory.Tx) error { return add(context.Background(), tx) }))
		fn(t, store.Bind(m, func(x *memory.Tx) authz.Tx { return x }), tenant)
	})
	t.Run("postgres", func(t *testing.T) {
		p := pgtest.NewStore(t)
		require.NoError(t, p.InTx(context.Background(), func(tx *postgres.Tx) error { return add(context.Background(), tx) }))
		fn(t, store.Bind(p, func(x *postgres.Tx) authz.Tx { return x }), tenant)
	})
}

// TestRefreshRaceRevocationBeforeWinnerWrites: the loser of a race over one
// refresh token revokes the family while the winner has spent the token
// but (if its writes were not one with the spend) not yet stored its new
// sessions. Afterwards no token of the family is active: not the first
// access token, not the winner's new access token, not its new refresh
// token.
func TestRefreshRaceRevocationBeforeWinnerWrites(t *testing.T) {
	eachAuthzStore(t, func(t *testing.T, db store.Runner[authz.Tx], tenant string) {
		ctx := context.Background()
		gate := &familyGate{Runner: db, arrived: make(chan struct{}, 2), release: make(chan struct{})}
		for n := range gate.finished {
			gate.finished[n] = make(chan struct{})
		}
		iss, err := authz.New(ctx, gate, baseOptions())
		require.NoError(t, err)
		a, secret, err := iss.CreateAgent(ctx, tenant, authz.AgentInput{Name: "agent", AuthMethod: authz.AuthClientSecretBasic,
			GrantTypes: []string{authz.GrantClientCredentials, authz.GrantRefreshToken}, Scopes: []string{"charges:read", "offline_access"}})
		require.NoError(t, err)
		st, body := raceToken(iss, 0, a.ID, secret, url.Values{"grant_type": {"client_credentials"}, "scope": {"charges:read offline_access"}})
		require.Equal(t, 200, st, body)
		rt, at := body["refresh_token"].(string), body["access_token"].(string)
		require.NotEmpty(t, rt)

		type result struct {
			status int
			body   map[string]any
		}
		var results [3]result
		var wg sync.WaitGroup
		gate.mu.Lock()
		gate.armed = true
		gate.mu.Unlock()
		for who := 1; who <= 2; who++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				st, body := raceToken(iss, who, a.ID, secret, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}})
				results[who] = result{st, body}
				close(gate.finished[who])
			}()
		}
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
		wg.Wait()
		assert.Empty(t, gate.problems)

		var wins []map[string]any
		for _, r := range results[1:] {
			switch r.status {
			case 200:
				wins = append(wins, r.body)
			case 400:
				assert.Contains(t, []any{"invalid_grant", "invalid_request"}, r.body["error"], r.body)
			default:
				t.Errorf("a refresh answered %d %v", r.status, r.body)
			}
		}
		require.Len(t, wins, 1, "exactly one of two uses of a refresh token wins")

		_, err = iss.Verify(ctx, at)
		assert.Error(t, err, "the family's first access token")
		w := wins[0]
		_, err = iss.Verify(ctx, w["access_token"].(string))
		assert.Error(t, err, "the winner's new access token belongs to the revoked family")
		st, body = raceToken(iss, 0, a.ID, secret, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {w["refresh_token"].(string)}})
		assert.Equal(t, 400, st, "the winner's new refresh token belongs to the revoked family: %v", body["error"])
	})
}

// pausedSpend holds a transaction that has just spent a refresh token
// (still uncommitted) until the test releases it.
type pausedSpend struct {
	store.Runner[authz.Tx]
	mu      sync.Mutex
	armed   bool
	spent   chan struct{}
	release chan struct{}
}

type pauseSpy struct {
	authz.Tx
	g *pausedSpend
}

func (s pauseSpy) DeactivateTokenSession(ctx context.Context, kind, sig string) error {
	err := s.Tx.DeactivateTokenSession(ctx, kind, sig)
	s.g.mu.Lock()
	armed := s.g.armed && kind == authz.KindRefresh && err == nil
	if armed {
		s.g.armed = false
	}
	s.g.mu.Unlock()
	if armed {
		close(s.g.spent)
		<-s.g.release
	}
	return err
}

func (g *pausedSpend) InTx(ctx context.Context, fn func(tx authz.Tx) error) error {
	return g.Runner.InTx(ctx, func(tx authz.Tx) error { return fn(pauseSpy{tx, g}) })
}

// TestRefreshFamilyRevokedDuringSpend: the family is revoked (RFC 7009 on
// its refresh token) while a refresh grant's transaction has spent the
// token but not committed. On PostgreSQL the revocation then waits; once
// it goes on, it must see the grant's new sessions and end them too —
// a revocation that read the family before they were committed would
// leave them alive. (The memory store's transactions are serial: no such
// interleaving exists there.)
func TestRefreshFamilyRevokedDuringSpend(t *testing.T) {
	ctx := context.Background()
	u := pgtest.NewURL(t)
	p, err := postgres.Open(ctx, u, postgres.Options{MaxConns: 20})
	require.NoError(t, err)
	t.Cleanup(p.Close)
	tenant := "ten_" + strings.Repeat("c", 8)
	require.NoError(t, p.InTx(ctx, func(tx *postgres.Tx) error {
		return tx.CreateTenant(ctx, &accounts.Tenant{ID: tenant, Name: "t", Status: accounts.TenantActive, CreatedAt: time.Now()})
	}))
	probe, err := pgx.Connect(ctx, u)
	require.NoError(t, err)
	t.Cleanup(func() { probe.Close(context.Background()) })

	gate := &pausedSpend{Runner: store.Bind(p, func(x *postgres.Tx) authz.Tx { return x }),
		spent: make(chan struct{}), release: make(chan struct{})}
	iss, err := authz.New(ctx, gate, baseOptions())
	require.NoError(t, err)
	a, secret, err := iss.CreateAgent(ctx, tenant, authz.AgentInput{Name: "agent", AuthMethod: authz.AuthClientSecretBasic,
		GrantTypes: []string{authz.GrantClientCredentials, authz.GrantRefreshToken}, Scopes: []string{"charges:read", "offline_access"}})
	require.NoError(t, err)
	st, body := raceToken(iss, 0, a.ID, secret, url.Values{"grant_type": {"client_credentials"}, "scope": {"charges:read offline_access"}})
	require.Equal(t, 200, st, body)
	rt, at := body["refresh_token"].(string), body["access_token"].(string)

	gate.mu.Lock()
	gate.armed = true
	gate.mu.Unlock()
	type result struct {
		status int
		body   map[string]any
	}
	refreshed := make(chan result, 1)
	go func() {
		st, body := raceToken(iss, 0, a.ID, secret, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}})
		refreshed <- result{st, body}
	}()
	bound := time.After(2 * time.Minute) // a bound for a hung test, not a timing check
	select {
	case <-gate.spent:
	case <-bound:
		t.Fatal("the refresh never spent its token")
	}
	revoked := make(chan error, 1)
	go func() { revoked <- iss.RevokeToken(ctx, authz.Caller{TenantID: tenant}, rt, "refresh_token") }()
	// Let the grant commit once the revocation waits on it.
	for waiting := 0; waiting == 0; {
		require.NoError(t, probe.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&waiting))
		select {
		case err := <-revoked:
			t.Fatalf("the revocation finished while the grant held the family: %v", err)
		case <-bound:
			t.Fatal("the revocation never waited for the grant")
		case <-time.After(10 * time.Millisecond): // polling a condition
		}
	}
	close(gate.release)
	r := <-refreshed
	require.Equal(t, 200, r.status, r.body)
	require.NoError(t, <-revoked)

	_, err = iss.Verify(ctx, at)
	assert.Error(t, err, "the family's first access token")
	_, err = iss.Verify(ctx, r.body["access_token"].(string))
	assert.Error(t, err, "the new access token belongs to the revoked family")
	st, body = raceToken(iss, 0, a.ID, secret, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {r.body["refresh_token"].(string)}})
	assert.Equal(t, 400, st, "the new refresh token belongs to the revoked family: %v", body["error"])
}

package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/idempotency"
	"github.com/perfectpay/perfectpay/store"
	"github.com/perfectpay/perfectpay/store/pgtest"
	"github.com/perfectpay/perfectpay/store/postgres"
)

// eventually polls cond with a generous deadline (no timing assertion:
// only a bound for a broken implementation).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func session(t *testing.T, s *postgres.Store) string {
	t.Helper()
	var name string
	eventually(t, "a node session", func() bool { name = s.SessionName(); return name != "" })
	return name
}

func claim(s *postgres.Store, key string) (*idempotency.Record, error) {
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Microsecond)
	var old *idempotency.Record
	err := s.InTx(ctx, func(tx *postgres.Tx) error {
		var err error
		old, err = tx.ClaimIdempotency(ctx, &idempotency.Record{TenantID: "ten_1", CredentialID: "key_1", Key: key,
			Method: "POST", Path: "/v1/x", RequestHash: []byte{1}, State: idempotency.StateInProgress,
			CreatedAt: now, LockedUntil: now.Add(time.Hour), ExpiresAt: now.Add(2 * time.Hour)})
		return err
	})
	return old, err
}

// Two nodes on one database: a claim of a live node holds; once that
// node's session is gone (the node died), the other node takes the claim
// over at once instead of waiting for its lock.
func TestClaimOfDeadSessionIsTakenOver(t *testing.T) {
	url := pgtest.NewURL(t)
	a := open(t, url)
	b := open(t, url)
	nameA := session(t, a)
	session(t, b)

	_, err := claim(a, "k")
	require.NoError(t, err)
	old, err := claim(b, "k")
	require.ErrorIs(t, err, store.ErrConflict, "a live node's claim holds")
	assert.Equal(t, nameA, old.Owner)

	// Node A dies: its connections end, its session with them.
	a.Close()
	eventually(t, "node A's session to end", func() bool {
		var n int
		require.NoError(t, b.Pool().QueryRow(context.Background(),
			"SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", nameA).Scan(&n))
		return n == 0
	})
	_, err = claim(b, "k")
	require.NoError(t, err, "the dead node's claim is taken over before its lock lapses")

	// B's own claim is not taken over by B's next request either.
	_, err = claim(b, "k")
	require.ErrorIs(t, err, store.ErrConflict)
}

// A server restart ends every session: a node's claims from before are
// abandoned, and the node carries on under a new session.
func TestRestartEndsSessionAndFreesItsClaims(t *testing.T) {
	c := pgtest.NewCluster(t)
	s := open(t, c.NewURL(t))
	before := session(t, s)
	_, err := claim(s, "k")
	require.NoError(t, err)
	_, err = claim(s, "k")
	require.ErrorIs(t, err, store.ErrConflict)

	c.Stop(t)
	_, err = claim(s, "other")
	require.ErrorIs(t, err, store.ErrUnavailable)
	require.ErrorIs(t, s.Ping(context.Background()), store.ErrUnavailable)
	err = s.InTx(context.Background(), func(tx *postgres.Tx) error { return nil })
	require.ErrorIs(t, err, store.ErrUnavailable)
	c.Start(t)

	var after string
	eventually(t, "a new session", func() bool { after = s.SessionName(); return after != "" && after != before })
	eventually(t, "the store to answer", func() bool { return s.Ping(context.Background()) == nil })
	_, err = claim(s, "k")
	require.NoError(t, err, "the claim from before the restart is abandoned")
}

// Connection-level failures are store.ErrUnavailable; a statement error is not.
func TestUnreachableIsErrUnavailable(t *testing.T) {
	ctx := context.Background()
	s, err := postgres.Open(ctx, "postgres://postgres@127.0.0.1:1/none?sslmode=disable&connect_timeout=5", postgres.Options{MaxConns: 2})
	require.NoError(t, err)
	defer s.Close()
	require.ErrorIs(t, s.Ping(ctx), store.ErrUnavailable)
	require.ErrorIs(t, s.InTx(ctx, func(*postgres.Tx) error { return nil }), store.ErrUnavailable)
	require.ErrorIs(t, s.Autocommit(ctx, func(tx *postgres.Tx) error {
		_, err := tx.Conn().Exec(ctx, "SELECT 1")
		return err
	}), store.ErrUnavailable)

	live := pgtest.NewStore(t)
	err = live.Autocommit(ctx, func(tx *postgres.Tx) error {
		_, err := tx.Conn().Exec(ctx, "SELECT no_such_column FROM charges")
		return err
	})
	require.Error(t, err)
	assert.NotErrorIs(t, err, store.ErrUnavailable)

	// A backend terminated under a transaction (57P01).
	err = live.InTx(ctx, func(tx *postgres.Tx) error {
		if _, err := tx.Conn().Exec(ctx, "SELECT pg_terminate_backend(pg_backend_pid())"); err != nil {
			return err
		}
		_, err := tx.Conn().Exec(ctx, "SELECT 1")
		return err
	})
	require.ErrorIs(t, err, store.ErrUnavailable)
}

// A claim made while the node still believes in a session the server has
// ended (right after a restart, before the node noticed) names no session,
// so no other node takes it over while its request may run: it holds for
// its lock. A claim under the live session names it.
func TestClaimUnderDeadSessionNamesNoOwner(t *testing.T) {
	url := pgtest.NewURL(t)
	a := open(t, url)
	b := open(t, url)
	name := session(t, a)
	session(t, b)
	pid := a.SessionPID()

	a.SetSession(sessionGone, pid) // the live backend, under another name
	_, err := claim(a, "stale")
	require.NoError(t, err)
	old, err := claim(b, "stale")
	require.ErrorIs(t, err, store.ErrConflict, "a claim naming no session holds")
	assert.Empty(t, old.Owner)

	a.SetSession(name, pid)
	_, err = claim(a, "live")
	require.NoError(t, err)
	old, err = claim(b, "live")
	require.ErrorIs(t, err, store.ErrConflict)
	assert.Equal(t, name, old.Owner)
}

const sessionGone = "perfectpay-node gone"

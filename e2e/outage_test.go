package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/app/apptest"
	"github.com/perfectpay/perfectpay/store/pgtest"
)

// resilientEnv makes the nodes' processor and resolver periods short, so a
// charge whose fate no node remembers (its node died, or the store was
// lost at its COMMIT) is completed by the resolver within the tests'
// generous waits. The processor must still be allowed its retries before
// the resolver may act (payments.resolve_after > timeout × (retries+1)).
var resilientEnv = []string{
	"PERFECTPAY_PAYMENTS_PROCESSOR_TIMEOUT=2s",
	"PERFECTPAY_PAYMENTS_PROCESSOR_RETRIES=1",
	"PERFECTPAY_PAYMENTS_RESOLVE_AFTER=10s",
}

// finalAnswer is what a careful client ends with for one Idempotency-Key:
// it sends the same request again after a transport error, a 503 (after
// its Retry-After) and a 409 saying the key's request or charge is still
// being processed, until it gets any other answer. seen records every
// status it was answered on the way.
type finalAnswer struct {
	key  string
	resp *apptest.Response
	seen []int
	// lost counts the attempts that got no answer (connection refused or
	// cut: the node was down or died under the request).
	lost int
	// odd holds every 503 that was not store_unavailable with a Retry-After.
	odd []string
	err error
}

func retryUntilAnswered(base func() string, c call, key string, deadline time.Time) finalAnswer {
	fa := finalAnswer{key: key}
	for attempt := 0; ; attempt++ {
		if time.Now().After(deadline) {
			fa.err = fmt.Errorf("key %s: no final answer before the deadline (seen %v)", key, fa.seen)
			return fa
		}
		r, err := send(base(), c)
		if err != nil {
			fa.lost++
			time.Sleep(100 * time.Millisecond)
			continue
		}
		fa.seen = append(fa.seen, r.Status)
		typ, code, _ := errorOf(r)
		if r.Status == http.StatusServiceUnavailable && (typ != "api_error" || code != "store_unavailable" || r.Header.Get("Retry-After") == "") {
			fa.odd = append(fa.odd, string(r.Body))
		}
		retry := r.Status == http.StatusServiceUnavailable ||
			(r.Status == http.StatusConflict && (code == "idempotency_key_in_use" || code == "charge_in_progress"))
		if !retry {
			fa.resp = r
			return fa
		}
		wait := 200 * time.Millisecond
		if s, err := strconv.Atoi(r.Header.Get("Retry-After")); err == nil && s > 0 {
			wait = min(time.Duration(s)*time.Second, 2*time.Second)
		}
		time.Sleep(wait)
	}
}

// checkAnswers compares each client's final answer with the database: a
// charge answered 200 exists and succeeded; a charge answered as declined
// exists and failed; a charge refused before the payment core (403) does
// not exist under that key; no key holds two charges; no 500 was ever
// answered; every mandate's spent equals its succeeded charges.
func checkAnswers(t *testing.T, db *pgxpool.Pool, answers []finalAnswer, agentID, mandateID string) {
	t.Helper()
	ctx := context.Background()
	for _, fa := range answers {
		require.NoError(t, fa.err)
		require.Empty(t, fa.odd, "key %s: a 503 must be api_error store_unavailable with Retry-After", fa.key)
		for _, st := range fa.seen {
			if st >= 500 {
				require.Equal(t, 503, st, "key %s (%v)", fa.key, fa.seen)
			}
		}
		scoped := agentID + ":" + mandateID + ":" + fa.key
		var ids []string
		var statuses []string
		rows, err := db.Query(ctx, `SELECT id, status FROM charges WHERE idempotency_key = $1`, scoped)
		require.NoError(t, err)
		for rows.Next() {
			var id, st string
			require.NoError(t, rows.Scan(&id, &st))
			ids, statuses = append(ids, id), append(statuses, st)
		}
		require.NoError(t, rows.Err())
		require.LessOrEqual(t, len(ids), 1, "one charge per Idempotency-Key")
		r := fa.resp
		switch r.Status {
		case 200:
			require.Len(t, ids, 1, "key %s answered 200 but has no charge", fa.key)
			assert.Equal(t, ids[0], r.JSON["id"], "key %s", fa.key)
			assert.Equal(t, "succeeded", statuses[0], "key %s answered 200: %s", fa.key, r.Body)
		case 402:
			c, _ := r.JSON["charge"].(map[string]any)
			require.Len(t, ids, 1, "key %s answered 402 but has no charge: %s", fa.key, r.Body)
			assert.Equal(t, ids[0], c["id"], "key %s", fa.key)
			assert.Equal(t, "failed", statuses[0], "key %s answered declined: %s", fa.key, r.Body)
		case 403:
			if len(ids) == 1 {
				assert.NotEqual(t, "succeeded", statuses[0], "key %s was answered denied (%s) but its charge succeeded", fa.key, r.Body)
			}
		default:
			t.Fatalf("key %s: unexpected final answer %d: %s", fa.key, r.Status, r.Body)
		}
	}
	var spent, succeeded int64
	require.NoError(t, db.QueryRow(ctx, `SELECT spent FROM mandates WHERE id = $1`, mandateID).Scan(&spent))
	require.NoError(t, db.QueryRow(ctx, `SELECT coalesce(sum(amount_captured - amount_refunded), 0) FROM charges
		WHERE mandate_id = $1 AND status IN ('succeeded', 'requires_capture')`, mandateID).Scan(&succeeded))
	assert.Equal(t, succeeded, spent, "the mandate's spent is its charges' captured amounts")
}

// waitDB polls a count query until it is zero, with a generous bound.
func waitDB(t *testing.T, db *pgxpool.Pool, what, query string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	var n int
	for {
		err := db.QueryRow(context.Background(), query, args...).Scan(&n)
		if err == nil && n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d left after the wait (err %v)", what, n, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestPostgresOutageMidBurst stops PostgreSQL (a private cluster, never
// the shared server) under a burst of agent charges on two nodes and
// starts it again: no request is ever answered 500 (503 with Retry-After
// instead), no Idempotency-Key claim is left held, every charge left
// pending by the outage is resolved, and each client's final answer is
// what the database holds.
func TestPostgresOutageMidBurst(t *testing.T) {
	pg := pgtest.NewCluster(t)
	cl := &cluster{dbURL: pg.NewURL(t)}
	cl.env = append(nodeEnv(10), resilientEnv...)
	for range 2 {
		cl.nodes = append(cl.nodes, apptest.StartProcess(t, cl.dbURL, cl.env...))
	}
	pool, err := pgxpool.New(context.Background(), cl.dbURL)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	cl.db = pool

	s := newShop(t, cl)
	a := s.agent(t)
	m := s.mandate(t, a, 100_000_000)
	toks := []string{s.token(t, cl.nodes[0].URL, a, m), s.token(t, cl.nodes[1].URL, a, m)}

	const clients, perClient = 16, 12
	var answered atomic.Int32
	answers := make([]finalAnswer, clients*perClient)
	deadline := time.Now().Add(5 * time.Minute)
	var wg sync.WaitGroup
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			node := cl.nodes[i%2]
			base := func() string { return node.URL }
			for j := range perClient {
				key := fmt.Sprintf("outage-%d-%d-%s", i, j, randKey())
				card := s.card
				if j%5 == 4 {
					card = s.declines
				}
				c := call{Method: "POST", Path: "/v1/charges", Auth: toks[i%2], Body: s.chargeBody(int64(100+j), card),
					Header: map[string]string{"Idempotency-Key": key}}
				answers[i*perClient+j] = retryUntilAnswered(base, c, key, deadline)
				answered.Add(1)
			}
		}()
	}

	// The outage starts once the burst is under way and lasts a few
	// seconds of requests answered 503.
	waitFor := func(what string, cond func() bool) {
		d := time.Now().Add(2 * time.Minute)
		for !cond() {
			require.False(t, time.Now().After(d), "gave up waiting for %s", what)
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitFor("the burst to start", func() bool { return answered.Load() >= clients })
	pg.Stop(t)
	time.Sleep(3 * time.Second) // the outage's length, not a synchronization
	pg.Start(t)
	wg.Wait()

	waitDB(t, pool, "idempotency claims still held", `SELECT count(*) FROM idempotency_keys WHERE state = 'in_progress'`)
	waitDB(t, pool, "charges still pending", `SELECT count(*) FROM charges WHERE status = 'pending' OR reversal_pending`)
	checkAnswers(t, pool, answers, a.id, m)
	var unavailable int
	for _, fa := range answers {
		for _, st := range fa.seen {
			if st == 503 {
				unavailable++
			}
		}
	}
	t.Logf("%d charges, %d answers 503 store_unavailable during the outage", len(answers), unavailable)
	assert.Positive(t, unavailable, "the outage happened under load")
}

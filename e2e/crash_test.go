package e2e

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestNodeKilledMidBurst kills a `serve` node with SIGKILL in the middle
// of a burst of agent charges and starts it again. Every client keeps
// sending its request with the same Idempotency-Key (to the same node,
// after its restart) until it gets an answer; each final answer must be
// the truth the database holds: a charge reported denied or declined
// never exists as succeeded, one reported succeeded exists, one key never
// made two charges, the mandate's spent is its captured charges, nothing
// is left pending and no claim is left held.
func TestNodeKilledMidBurst(t *testing.T) {
	cl := startCluster(t, 2, 10, resilientEnv...)
	s := newShop(t, cl)
	a := s.agent(t)
	// A budget the burst exhausts, so that denials are among the answers.
	m := s.mandate(t, a, 150_00)
	toks := []string{s.token(t, cl.nodes[0].URL, a, m), s.token(t, cl.nodes[1].URL, a, m)}

	var mu sync.Mutex
	url0, url1 := cl.nodes[0].URL, cl.nodes[1].URL
	bases := []func() string{
		func() string { mu.Lock(); defer mu.Unlock(); return url0 },
		func() string { return url1 },
	}

	const clients, perClient = 16, 12
	var answered atomic.Int32
	answers := make([]finalAnswer, clients*perClient)
	deadline := time.Now().Add(5 * time.Minute)
	var wg sync.WaitGroup
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range perClient {
				key := fmt.Sprintf("crash-%d-%d-%s", i, j, randKey())
				card := s.card
				if j%5 == 4 {
					card = s.declines
				}
				c := call{Method: "POST", Path: "/v1/charges", Auth: toks[i%2], Body: s.chargeBody(int64(100+j), card),
					Header: map[string]string{"Idempotency-Key": key}}
				answers[i*perClient+j] = retryUntilAnswered(bases[i%2], c, key, deadline)
				answered.Add(1)
			}
		}()
	}

	d := time.Now().Add(2 * time.Minute)
	for answered.Load() < clients {
		require.False(t, time.Now().After(d), "the burst did not start")
		time.Sleep(10 * time.Millisecond)
	}
	cl.nodes[0].Kill()
	cl.nodes[0].Restart()
	mu.Lock()
	url0 = cl.nodes[0].URL
	mu.Unlock()
	wg.Wait()

	waitDB(t, cl.db, "charges still pending", `SELECT count(*) FROM charges WHERE status = 'pending' OR reversal_pending`)
	waitDB(t, cl.db, "idempotency claims still held", `SELECT count(*) FROM idempotency_keys WHERE state = 'in_progress'`)
	checkAnswers(t, cl.db, answers, a.id, m)
	codes, lost := map[int]int{}, 0
	for _, fa := range answers {
		codes[fa.resp.Status]++
		lost += fa.lost
	}
	t.Logf("final answers by status: %v; %d attempts lost to the crash and retried", codes, lost)
	assert.Positive(t, codes[200])
	assert.Positive(t, lost, "the node died under requests in flight")
}

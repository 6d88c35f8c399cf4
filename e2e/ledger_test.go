package e2e

import (
	"context"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/app/apptest"
	"github.com/perfectpay/perfectpay/store/postgres"
	"github.com/perfectpay/perfectpay/store/storetest"
)

// Figures of the refund run.
const (
	ledgerCharges       = 24   // captured agent charges, half on a child mandate
	ledgerChargeAmount  = 1000 // minor units of USD
	ledgerRefundsEach   = 4    // concurrent refunds per charge
	ledgerRefundAmount  = 200
	ledgerParentBudget  = 100_000
	ledgerChildBudget   = 50_000
	ledgerResolveWithin = 3 * time.Minute // generous: a deadline for a hung run, not a measurement
)

// TestLedgerUnderMixedRefunds: concurrent refunds of agent charges over
// three nodes on one database: one node's acquirer answers normally, one
// declines every new refund (they fail), one loses every answer (they stay
// pending until a resolver completes them). Afterwards the ledger rule
// holds for every mandate (charging/doc.go: spent = pending/authorized
// holds + captured − SUCCEEDED refunds, on the mandate and each ancestor),
// checked by the sweep the conformance suite uses, and through the API.
func TestLedgerUnderMixedRefunds(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three server processes")
	}
	fast := []string{"PERFECTPAY_PAYMENTS_PROCESSOR_TIMEOUT=1s", "PERFECTPAY_PAYMENTS_RESOLVE_AFTER=4s"}
	c := startCluster(t, 1, 8, fast...)
	for _, kind := range []string{"decline", "timeout"} {
		env := append(slices.Clone(c.env), "PERFECTPAY_PAYMENTS_SIMULATOR_FAULT_PERCENT=100",
			"PERFECTPAY_PAYMENTS_SIMULATOR_FAULT_KIND="+kind)
		c.nodes = append(c.nodes, apptest.StartProcess(t, c.dbURL, env...))
	}
	normal, declining, losing := c.nodes[0].URL, c.nodes[1].URL, c.nodes[2].URL

	s := newShop(t, c)
	a, b := s.agent(t), s.agent(t)
	parent := s.mandate(t, a, ledgerParentBudget)
	tokA := s.token(t, normal, a, parent)
	tokB, child := s.delegate(t, b, tokA, ledgerChildBudget)
	charges := make([]string, ledgerCharges)
	for i := range charges {
		tok := tokA
		if i%2 == 1 {
			tok = tokB
		}
		r, err := s.charge(normal, tok, ledgerChargeAmount, s.card)
		require.NoError(t, err)
		require.Equal(t, 200, r.Status, string(r.Body))
		require.Equal(t, "succeeded", r.JSON["status"])
		charges[i] = r.JSON["id"].(string)
	}

	// Every charge gets its refunds at once, each sent to a node at random.
	type answer struct{ node, status string }
	answers := make([]answer, 0, ledgerCharges*ledgerRefundsEach)
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := make(chan struct{})
	rng := rand.New(rand.NewPCG(7, 9))
	nodes := []string{normal, declining, losing}
	for _, id := range charges {
		for range ledgerRefundsEach {
			node := nodes[rng.IntN(len(nodes))]
			wg.Go(func() {
				<-start
				r, err := sendIdempotent(node, call{Method: "POST", Path: "/v1/refunds", Auth: s.key,
					Body:   map[string]any{"charge": id, "amount": ledgerRefundAmount},
					Header: map[string]string{"Idempotency-Key": "refund-" + randKey()}})
				if !assert.NoError(t, err) {
					return
				}
				if !assert.Equal(t, 200, r.Status, string(r.Body)) {
					return
				}
				mu.Lock()
				answers = append(answers, answer{node: node, status: r.JSON["status"].(string)})
				mu.Unlock()
			})
		}
	}
	close(start)
	wg.Wait()
	seen := map[string]int{}
	for _, a := range answers {
		seen[a.status]++
		switch a.node {
		case declining:
			assert.Equal(t, "failed", a.status, "the declining node's acquirer declines new refunds")
		case losing:
			assert.Equal(t, "pending", a.status, "the losing node never hears its acquirer")
		default:
			assert.Equal(t, "succeeded", a.status)
		}
	}
	require.Positive(t, seen["succeeded"])
	require.Positive(t, seen["failed"])
	require.Positive(t, seen["pending"])

	// The resolvers complete every lost refund (the acquirer made them).
	ctx := context.Background()
	deadline := time.Now().Add(ledgerResolveWithin)
	for {
		var pending int
		require.NoError(t, c.db.QueryRow(ctx, `SELECT count(*) FROM refunds WHERE status = 'pending'`).Scan(&pending))
		if pending == 0 {
			break
		}
		require.False(t, time.Now().After(deadline), "%d refunds still pending after %s", pending, ledgerResolveWithin)
		time.Sleep(200 * time.Millisecond) // polling a condition, not waiting for one
	}

	pg, err := postgres.Open(ctx, c.dbURL, postgres.Options{MaxConns: 2})
	require.NoError(t, err)
	t.Cleanup(pg.Close)
	snap := storetest.AssertLedger(t, pg, s.tenantID)
	require.Len(t, snap.Charges, ledgerCharges)

	// The same from outside: each mandate's spent is what was captured on
	// it (and below it) less the refunds that succeeded.
	var refunded, refundedChild int64
	rows, err := c.db.Query(ctx, `SELECT c.mandate_id, r.amount FROM refunds r JOIN charges c ON c.id = r.charge_id
		WHERE r.status = 'succeeded' AND c.tenant_id = $1`, s.tenantID)
	require.NoError(t, err)
	for rows.Next() {
		var m string
		var amt int64
		require.NoError(t, rows.Scan(&m, &amt))
		refunded += amt
		if m == child {
			refundedChild += amt
		}
	}
	rows.Close()
	require.NoError(t, rows.Err())
	captured := int64(ledgerCharges * ledgerChargeAmount)
	assert.EqualValues(t, captured-refunded, s.getMandate(t, normal, parent)["spent"], "parent")
	assert.EqualValues(t, captured/2-refundedChild, s.getMandate(t, normal, child)["spent"], "child")
	t.Logf("refund answers: %v; succeeded refunds %d minor units", seen, refunded)
}

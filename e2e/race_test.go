package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestAgentChargesOnThreeNodes runs three `perfectpay serve` processes on
// one database and checks the invariants of DESIGN.md §4 from outside:
// budgets under a race, and revocation across nodes.
func TestAgentChargesOnThreeNodes(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three server processes")
	}
	c := startCluster(t, 3, 8)
	t.Run("race", func(t *testing.T) { testBudgetRace(t, c) })
	t.Run("revocation", func(t *testing.T) { testRevocation(t, c) })
}

// Figures of the race.
const (
	raceCharges     = 1000
	parentBudget    = 50_000 // minor units of USD
	childBudget     = 10_000
	raceMaxAmount   = 250 // each charge is 1..raceMaxAmount: more than both budgets allow
	raceDeclinedPct = 5   // charges on the card the acquirer declines
)

// outcome is what one racing request got back.
type outcome struct {
	child    bool // made with the child mandate's token
	node     int  // the node it was sent to
	amount   int64
	status   int
	chargeID string
	result   string // succeeded | declined | denied | other
	detail   string
	codes    []string // reason codes of a refusal
}

// testBudgetRace: agent A holds mandate M, agent B a child of M obtained by
// token exchange; 1,000 charges of random amounts race over three nodes and
// both tokens. Afterwards, from the database and through the API: no budget
// is exceeded, each mandate's spent and charge_count equal its successful
// charges (the parent's include the child's), every request got a definite
// answer, every charge is final; refunds give the budget back.
func testBudgetRace(t *testing.T, c *cluster) {
	s := newShop(t, c)
	a, b := s.agent(t), s.agent(t)
	parent := s.mandate(t, a, parentBudget)
	tokA := s.token(t, c.nodes[0].URL, a, parent)
	tokB, child := s.delegate(t, b, tokA, childBudget)

	outs := make([]outcome, raceCharges)
	start := make(chan struct{})
	var wg sync.WaitGroup
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range outs {
		o := &outs[i]
		o.child = rng.IntN(2) == 1
		o.amount = 1 + rng.Int64N(raceMaxAmount)
		card := s.card
		if rng.IntN(100) < raceDeclinedPct {
			card = s.declines
		}
		o.node = rng.IntN(len(c.nodes))
		node := c.nodes[o.node].URL
		tok := tokA
		if o.child {
			tok = tokB
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			r, err := s.charge(node, tok, o.amount, card)
			if err != nil {
				o.result, o.detail = "other", err.Error()
				return
			}
			o.status = r.Status
			typ, code, _ := errorOf(r)
			switch {
			case r.Status == 200 && r.JSON["status"] == "succeeded":
				o.result, o.chargeID = "succeeded", r.JSON["id"].(string)
			case r.Status == 402 && typ == "card_error":
				ch, _ := r.JSON["charge"].(map[string]any)
				id, _ := ch["id"].(string)
				o.result, o.chargeID = "declined", id
			case r.Status == 403 && typ == "permission_error" && code == "charge_denied":
				o.result, o.codes = "denied", reasonCodes(r)
			default:
				o.result, o.detail = "other", fmt.Sprintf("%d %s", r.Status, r.Body)
			}
		}()
	}
	close(start)
	wg.Wait()

	// Every request got a definite answer: the charge was made, declined by
	// the acquirer, or refused for its budget.
	var spentParent, spentChild, countParent, countChild int64
	counts := map[string]int{}
	succeeded := map[string]int64{}
	for _, o := range outs {
		counts[o.result]++
		switch o.result {
		case "other":
			t.Errorf("no definite answer: %s", o.detail)
		case "denied":
			for _, code := range o.codes {
				assert.Contains(t, []string{"budget_exceeded", "mandate_inactive"}, code, "a refusal that is not about the budget")
			}
		case "declined":
			assert.NotEmpty(t, o.chargeID, "a declined charge names its charge")
		case "succeeded":
			succeeded[o.chargeID] = o.amount
			spentParent += o.amount
			countParent++
			if o.child {
				spentChild += o.amount
				countChild++
			}
		}
	}
	t.Logf("race: %v; spent parent %d/%d, child %d/%d", counts, spentParent, parentBudget, spentChild, childBudget)
	require.Zero(t, counts["other"])
	require.NotZero(t, counts["denied"], "the race must exhaust a budget to mean anything")
	require.NotZero(t, counts["declined"])

	// The budgets hold, and are used up as far as the amounts allowed: a
	// refusal means the budget had less left than that charge.
	assert.LessOrEqual(t, spentParent, int64(parentBudget))
	assert.LessOrEqual(t, spentChild, int64(childBudget))

	// The database agrees with the answers.
	ctx := context.Background()
	checkMandate := func(id string, budget, spent, count int64) {
		t.Helper()
		var dbSpent, dbBudget, dbCount, held int64
		require.NoError(t, c.db.QueryRow(ctx, `SELECT spent, budget, charge_count FROM mandates WHERE id = $1`, id).
			Scan(&dbSpent, &dbBudget, &dbCount))
		assert.Equal(t, budget, dbBudget)
		assert.Equal(t, spent, dbSpent, "spent of %s", id)
		assert.Equal(t, count, dbCount, "charge_count of %s", id)
		assert.LessOrEqual(t, dbSpent, dbBudget)
		// What the charges of the mandate's subtree captured, net of refunds.
		var captured, n int64
		require.NoError(t, c.db.QueryRow(ctx, `WITH RECURSIVE tree (id) AS (
				SELECT id FROM mandates WHERE id = $1 UNION ALL SELECT m.id FROM mandates m JOIN tree ON m.parent_id = tree.id)
			SELECT coalesce(sum(amount_captured - amount_refunded), 0), count(*) FILTER (WHERE status = 'succeeded')
			FROM charges WHERE mandate_id IN (SELECT id FROM tree)`, id).Scan(&captured, &n))
		assert.Equal(t, spent, captured, "captured under %s", id)
		assert.Equal(t, count, n, "succeeded charges under %s", id)
		// The holds agree with the counters.
		require.NoError(t, c.db.QueryRow(ctx, `SELECT coalesce(sum(held), 0) FROM charge_holds h JOIN charges ch ON ch.id = h.charge_id
			WHERE ch.mandate_id = ANY ($1)`, subtree(id, parent, child)).Scan(&held))
		assert.Equal(t, spent, held, "holds under %s", id)
		// And the API says the same.
		for _, n := range c.nodes {
			m := s.getMandate(t, n.URL, id)
			assert.EqualValues(t, spent, m["spent"])
			assert.EqualValues(t, count, m["charge_count"])
			assert.EqualValues(t, budget-spent, m["remaining"])
		}
	}
	checkMandate(parent, parentBudget, spentParent, countParent)
	checkMandate(child, childBudget, spentChild, countChild)

	// No charge is lost or left pending: the charges in the database are
	// exactly the ones answered, with the answered status.
	rows, err := c.db.Query(ctx, `SELECT id, status, amount FROM charges WHERE mandate_id = ANY ($1)`, []string{parent, child})
	require.NoError(t, err)
	dbStatus := map[string]string{}
	for rows.Next() {
		var id, status string
		var amount int64
		require.NoError(t, rows.Scan(&id, &status, &amount))
		dbStatus[id] = status
		if status == "succeeded" {
			assert.Equal(t, succeeded[id], amount, "charge %s succeeded in the database but not in its answer", id)
		}
	}
	require.NoError(t, rows.Err())
	assert.Len(t, dbStatus, counts["succeeded"]+counts["declined"], "charges in the database vs answered")
	for _, o := range outs {
		switch o.result {
		case "succeeded":
			assert.Equal(t, "succeeded", dbStatus[o.chargeID], o.chargeID)
		case "declined":
			assert.Equal(t, "failed", dbStatus[o.chargeID], o.chargeID)
		}
	}
	var pending int
	require.NoError(t, c.db.QueryRow(ctx, `SELECT count(*) FROM charges WHERE status = 'pending' OR reversal_pending`).Scan(&pending))
	assert.Zero(t, pending, "pending charges remain")

	// The API lists the same charges.
	listed := map[string]string{}
	after := ""
	for {
		path := "/v1/charges?limit=100"
		if after != "" {
			path += "&starting_after=" + after
		}
		r := do(t, c.nodes[1].URL, call{Method: "GET", Path: path, Auth: s.key})
		require.Equal(t, 200, r.Status, string(r.Body))
		data, _ := r.JSON["data"].([]any)
		for _, x := range data {
			ch := x.(map[string]any)
			listed[ch["id"].(string)] = ch["status"].(string)
			after = ch["id"].(string)
		}
		if more, _ := r.JSON["has_more"].(bool); !more || len(data) == 0 {
			break
		}
	}
	assert.Equal(t, dbStatus, listed, "GET /v1/charges vs the database")

	// Refunds give the budget back, on the child and on the parent: refund
	// a few child charges and a few parent charges, in full and in part.
	// Each is refunded on the node that made the charge: the simulated
	// acquirer keeps its authorizations in the process's memory, so another
	// node's simulator would refuse the refund (a real acquirer is shared).
	var refundedParent, refundedChild int64
	refunds := 0
	for _, o := range outs {
		if o.result != "succeeded" || refunds == 6 || o.amount < 2 {
			continue
		}
		if refunds < 3 != o.child { // three of each
			continue
		}
		amount := o.amount
		if refunds%2 == 1 {
			amount = o.amount / 2
		}
		r := do(t, c.nodes[o.node].URL, call{Method: "POST", Path: "/v1/refunds", Auth: s.key,
			Body: map[string]any{"charge": o.chargeID, "amount": amount}, Header: map[string]string{"Idempotency-Key": randKey()}})
		require.Equal(t, 200, r.Status, string(r.Body))
		require.Equal(t, "succeeded", r.JSON["status"], string(r.Body))
		refundedParent += amount
		if o.child {
			refundedChild += amount
		}
		refunds++
	}
	require.Equal(t, 6, refunds)
	// A refunded charge still happened: charge_count stays.
	checkMandate(parent, parentBudget, spentParent-refundedParent, countParent)
	checkMandate(child, childBudget, spentChild-refundedChild, countChild)

	// The budget given back can be spent again.
	left := parentBudget - (spentParent - refundedParent)
	if childLeft := childBudget - (spentChild - refundedChild); childLeft > 0 {
		r, err := s.charge(c.nodes[2].URL, tokB, min(childLeft, left), s.card)
		require.NoError(t, err)
		require.Equal(t, 200, r.Status, string(r.Body))
		assert.Equal(t, "succeeded", r.JSON["status"])
	}
}

// subtree lists the race's mandates under id.
func subtree(id, parent, child string) []string {
	if id == parent {
		return []string{parent, child}
	}
	return []string{child}
}

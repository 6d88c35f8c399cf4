package server_test

import (
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/perfectpay/perfectpay/app/apptest"
	"github.com/perfectpay/perfectpay/store"
	"github.com/perfectpay/perfectpay/store/memory"
	"github.com/perfectpay/perfectpay/store/postgres"
	"github.com/perfectpay/perfectpay/store/storetest"
)

// TestHotMandateAllowsExactlyWhatFits: many concurrent charges on one
// mandate whose budget holds only some of them. Exactly the ones that fit
// succeed (the budget spent to the last unit, max_charges never passed),
// every other one is refused for the budget, and the ledger rule holds
// afterwards, on both stores.
func TestHotMandateAllowsExactlyWhatFits(t *testing.T) {
	apptest.EachDriver(t, func(t *testing.T, driver string) {
		n := apptest.New(t, driver)
		s := newShop(t, n)
		const clients, amount, fits = 24, 300, 10
		m := s.mandate(t, map[string]any{"budget": fits * amount, "max_amount_per_charge": amount, "approval_threshold": amount})
		tok := s.token(t, m)

		var wg sync.WaitGroup
		statuses := make([]int, clients)
		codes := make([][]string, clients)
		for i := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := s.charge(t, tok, amount, nil, "")
				statuses[i], codes[i] = r.Status, reasonCodes(r)
			}()
		}
		wg.Wait()
		ok := 0
		for i, st := range statuses {
			switch st {
			case 200:
				ok++
			case 403:
				assert.Contains(t, []string{"budget_exceeded", "mandate_inactive"}, first(codes[i]), "refused for the budget")
			default:
				t.Errorf("charge %d: status %d", i, st)
			}
		}
		assert.Equal(t, fits, ok, "exactly the charges that fit the budget")
		spent, count := s.spent(t, m)
		assert.Equal(t, float64(fits*amount), spent)
		assert.Equal(t, float64(fits), count)

		var db store.Runner[storetest.LedgerReader]
		if pg := n.App.Postgres; pg != nil {
			db = store.Bind(pg, func(x *postgres.Tx) storetest.LedgerReader { return x })
		} else {
			db = store.Bind(n.App.Memory, func(x *memory.Tx) storetest.LedgerReader { return x })
		}
		snap := storetest.AssertLedger(t, db, "")
		var mine int
		for _, c := range snap.Charges {
			if c.MandateID == m {
				mine++
				assert.Equal(t, "succeeded", c.Status)
			}
		}
		assert.Equal(t, fits, mine)
	})
}

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

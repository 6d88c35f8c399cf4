package server_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/app/apptest"
)

// A card number in what the agent says about a purchase is refused before
// anything is stored: a charge above the approval threshold used to create
// an approval (table row, approval.requested event, 402 body) holding the
// purchase text in clear.
func TestAgentChargePurchaseWithPANRefusedBeforeApproval(t *testing.T) {
	apptest.EachDriver(t, func(t *testing.T, driver string) {
		n := apptest.New(t, driver)
		s := newShop(t, n)
		m := s.mandate(t, nil)
		tok := s.token(t, m)
		const pan = "4000056655665556"

		for _, extra := range []map[string]any{
			{"description": "pay with " + pan},
			{"line_items": []map[string]any{{"name": "card " + pan, "quantity": 1, "unit_amount": 4000}}},
		} {
			r := s.charge(t, tok, 4000, extra, "") // above the 30.00 threshold: would be challenged
			require.Equal(t, 400, r.Status, string(r.Body))
			assert.Equal(t, "parameter_invalid", r.ErrorCode())
			assert.NotContains(t, string(r.Body), pan)
			assert.Nil(t, r.JSON["approval"])
		}

		// Nothing holding the number reached the tenant's events.
		r := n.Do(t, apptest.Req{Method: "GET", Path: "/v1/events?limit=100", Key: s.key})
		require.Equal(t, 200, r.Status, string(r.Body))
		assert.False(t, strings.Contains(string(r.Body), pan), "events hold the card number")
	})
}

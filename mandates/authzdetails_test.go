package mandates

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/internal/apierr"
)

func TestParseAuthorizationDetails(t *testing.T) {
	ds, err := ParseAuthorizationDetails([]byte(`[{"type":"payment_mandate","mandate_id":"mdt_abc"}]`))
	require.NoError(t, err)
	require.Len(t, ds, 1)
	assert.True(t, ds[0].IsReference())
	assert.Equal(t, "mdt_abc", ds[0].MandateID)

	ds, err = ParseAuthorizationDetails([]byte(`[{"type":"payment_mandate","currency":"usd","budget":5000,
		"max_amount_per_charge":2000,"payment_methods":["tok_x"],"allowed_merchants":["Books.Example.com"],
		"period":"day","period_budget":3000,"valid_until":"2030-01-01T00:00:00Z","description":"books"}]`))
	require.NoError(t, err)
	d := ds[0]
	require.NotNil(t, d.Limits)
	assert.False(t, d.IsReference())
	assert.Equal(t, "USD", d.Currency, "normalized")
	assert.Equal(t, []string{"books.example.com"}, d.AllowedMerchants)
	assert.Equal(t, int64(2000), *d.MaxAmountPerCharge)
	assert.Equal(t, "books", d.Description)

	for _, tc := range []struct{ in, param string }{
		{`{}`, "authorization_details"},
		{`[]`, "authorization_details"},
		{`[1]`, "authorization_details[0]"},
		{`[{"mandate_id":"mdt_1"}]`, "authorization_details[0].type"},
		{`[{"type":"payment_initiation","mandate_id":"mdt_1"}]`, "authorization_details[0].type"},
		{`[{"type":"payment_mandate"}]`, "authorization_details[0].mandate_id"},
		{`[{"type":"payment_mandate","mandate_id":"ch_1"}]`, "authorization_details[0].mandate_id"},
		{`[{"type":"payment_mandate","mandate_id":"mdt_1","budget":5}]`, "authorization_details[0].mandate_id"},
		{`[{"type":"payment_mandate","mandate_id":"mdt_1","colour":"red"}]`, "authorization_details[0].colour"},
		{`[{"type":"payment_mandate","currency":"USD","budget":"5","payment_methods":["tok_1"]}]`, "authorization_details[0].budget"},
		{`[{"type":"payment_mandate","mandate_id":"mdt_1"},{"type":"payment_mandate","currency":"USD","budget":5}]`, "authorization_details[1].payment_methods"},
	} {
		_, err := ParseAuthorizationDetails([]byte(tc.in))
		var fe *apierr.Invalid
		require.ErrorAs(t, err, &fe, tc.in)
		assert.Equal(t, tc.param, fe.Param, tc.in)
	}
}

func TestDetailRoundTrip(t *testing.T) {
	m := &Mandate{ID: "mdt_1", Limits: validLimits(), Description: "d"}
	raw, err := json.Marshal([]AuthorizationDetail{m.Detail()})
	require.NoError(t, err)
	assert.JSONEq(t, `[{"type":"payment_mandate","mandate_id":"mdt_1","currency":"usd","budget":10000,
		"max_amount_per_charge":5000,"payment_methods":["tok_visa4242"],"description":"d"}]`, string(raw))
}

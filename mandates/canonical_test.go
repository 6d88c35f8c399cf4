package mandates

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCanonicalJSON(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`{"b":1,"a":[true,null,"x"]}`, `{"a":[true,null,"x"],"b":1}`},
		{"{ \"z\" : { \"y\":2, \"x\":1 } }", `{"z":{"x":1,"y":2}}`},
		// RFC 8785 §3.2.2.2: only quote, backslash and control characters are escaped.
		{`"\u20ac\u0041<>&\u2028\n\u001f\/"`, "\"€A<>&\u2028\\n\\u001f/\""},
		// RFC 8785 §3.2.3: keys sort by UTF-16 code units (U+1F600 sorts before U+FB33).
		{`{"\ufb33":1,"\ud83d\ude00":2,"a":3}`, "{\"a\":3,\"\U0001F600\":2,\"\uFB33\":1}"},
		{`-9007199254740992`, `-9007199254740992`},
	} {
		got, err := CanonicalJSON([]byte(tc.in))
		require.NoError(t, err, tc.in)
		assert.Equal(t, tc.want, string(got), tc.in)
	}
	for _, bad := range []string{`1.5`, `1e3`, `9007199254740993`, `{"a":1} x`} {
		_, err := CanonicalJSON([]byte(bad))
		assert.Error(t, err, bad)
	}
}

func TestMandateCanonical(t *testing.T) {
	created := time.Date(2026, 5, 4, 3, 2, 1, 500, time.UTC)
	m := &Mandate{
		ID: "mdt_1", TenantID: "ten_1", Payer: "cus_1", Agent: "agt_1", Description: "Books <under> 50 €",
		Limits: Limits{Currency: "USD", Budget: 10_000, MaxAmountPerCharge: ptr[int64](5_000),
			PaymentMethods: []string{"tok_b", "tok_a"}, AllowedCategories: []string{"5942"}},
		Status: StatusActive, Spent: 1234, CreatedAt: created,
	}
	got, err := m.Canonical()
	require.NoError(t, err)
	want := `{"account":"ten_1","agent":"agt_1","allowed_categories":["5942"],"budget":10000,` +
		`"created":"2026-05-04T03:02:01Z","currency":"usd","depth":0,"description":"Books <under> 50 €",` +
		`"id":"mdt_1","max_amount_per_charge":5000,"payer":"cus_1","payment_methods":["tok_a","tok_b"],"type":"payment_mandate"}`
	assert.Equal(t, want, string(got))

	// Counters and status are not part of the signed terms; the order of
	// sets does not matter.
	other := m.Clone()
	other.Spent, other.Status, other.ChargeCount = 9_000, StatusSuspended, 7
	other.PaymentMethods = []string{"tok_a", "tok_b"}
	again, err := other.Canonical()
	require.NoError(t, err)
	assert.Equal(t, got, again)
	assert.True(t, json.Valid(got))

	other.Budget = 9_999
	changed, err := other.Canonical()
	require.NoError(t, err)
	assert.NotEqual(t, got, changed)
}

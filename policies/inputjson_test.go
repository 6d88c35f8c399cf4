package policies

import (
	"context"
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// documentJSON is the input's JSON as the decision records written before
// Input.JSON wrote it directly: json.Marshal of ast.JSON of the document.
func documentJSON(in *Input) ([]byte, error) {
	v, err := ast.JSON(in.build())
	if err != nil {
		return nil, err
	}
	return json.Marshal(v)
}

// tricky holds every kind of character encoding/json escapes or replaces:
// quotes, backslashes, control characters, HTML characters, U+2028 and
// U+2029, invalid UTF-8, and plain non-ASCII text.
const tricky = "Café \"Zürich\" <b>&amp;</b> \\ \n\r\t\b\f\x00\x1f\x7f \u2028\u2029 \xff\xfe 日本語 🙂"

// fullInput sets every optional field of the document, with tricky text
// wherever a string goes.
func fullInput() *Input {
	in := baseInput()
	t0, t1 := testNow.Add(-90*time.Minute+123456789), testNow.Add(48*time.Hour)
	lim := Limits{Currency: "EUR", MaxAmountPerCharge: ptr[int64](5_000), Budget: 1 << 40, Period: "week",
		PeriodBudget: ptr[int64](70_000), MaxCharges: ptr[int64](12), PaymentMethods: []string{"tok_" + tricky, "tok_b"},
		AllowedMerchants: []string{"acct_x", tricky}, AllowedCategories: []string{"5942", "5735"},
		BlockedCategories: []string{"7995"}, AllowedCountries: []string{"DE", "FR"}, ValidFrom: &t0, ValidUntil: &t1,
		ApprovalThreshold: ptr[int64](-1)}
	in.Chain[0].Limits = lim
	in.Chain[0].PeriodSpent = 31_337
	in.Chain[0].ChargeCount = 7
	in.Chain = append(in.Chain, Mandate{ID: "mdt_grandchild", ParentID: "mdt_child", Depth: 2, Status: "active",
		Agent: "agt_" + tricky, Payer: tricky, Limits: Limits{Currency: "USD", PaymentMethods: nil}, Spent: 1})
	in.Charge.Merchant.Name = tricky
	in.Charge.Merchant.Domains = nil
	in.Charge.Context = map[string]any{
		"description": tricky, "quantity": 3, "total": int64(-9_000_000_000), "gift": true, "none": nil,
		"price": 12.5, "big": 1e21, "tiny": 5e-324, "negzero": math.Copysign(0, -1), "num": json.Number("42.50"),
		"small": int32(7), "unsigned": uint64(math.MaxUint64),
		"line_items": []any{map[string]any{"name": "a <novel>", "qty": 1, "gone": nil}, nil, "x", []any{}, map[string]any{}},
		"nested":     map[string]any{"z": map[string]any{"\u2028": tricky}, "a": []any{nil, nil}, "empty": map[string]any(nil)},
		tricky:       "key with tricky text", "": "empty key", "ünïcode": []any(nil),
	}
	in.Token.AuthorizationDetails = append(in.Token.AuthorizationDetails,
		AuthorizationDetail{Type: "payment_terms", Limits: &lim},
		AuthorizationDetail{Type: tricky, MandateID: "mdt_x", Limits: &Limits{Currency: "JPY", Budget: 500}})
	in.Token.Act = &Actor{Sub: tricky, Act: &Actor{Sub: "agt_a", Act: &Actor{Sub: "agt_root"}}}
	in.Tenant.AllowedCountries = []string{"US", "CA"}
	in.Velocity = VelocityCounts{Agent: Counts{Charges: 59, Declines: 2}, Mandate: Counts{Charges: 1_000_000, Declines: 0}}
	in.Approval = &Approval{ID: "apr_1", Status: "approved", MandateID: "mdt_child", Amount: 20_00, Currency: "USD",
		PaymentMethod: "tok_visa", Merchant: tricky, ExpiresAt: testNow.Add(time.Minute + 1)}
	in.Limits = &InputLimits{Velocity: Velocity{AgentChargesPerHour: 60, AgentDeclinesPerHour: 10, MandateChargesPerHour: 0, MandateDeclinesPerHour: 10}}
	in.Currencies = map[string]int{"USD": 2, "JPY": 0, "EUR": 2, "KWD": 3, tricky: 9}
	in.Fraud = &Fraud{
		Velocity: []VelocityStat{
			{Scope: "agent", Window: "hour", Count: 41, Amount: 102_500},
			{Scope: "merchant", Window: "day", Count: 1 << 20, Declines: 3, Amount: math.MaxInt64},
			// Out of key order, a key the defences never use, and a
			// repeated key (the later wins in both encodings).
			{Scope: "agent", Window: "day", Count: 2, Amount: 7},
			{Scope: tricky, Window: "hour", Count: 5},
			{Scope: "agent", Window: "hour", Count: 42, Amount: 102_600},
		},
		Limits: []VelocityLimit{
			{Scope: "agent", Window: "hour", Metric: "count", Action: "challenge", Limit: 120},
			{Scope: tricky, Window: "day", Metric: "amount", Action: "deny", Limit: 1 << 50},
			{Scope: "card", Window: "hour", Metric: "count", Action: "deny", Limit: 7},
			{Scope: "agent", Window: "day", Metric: tricky, Action: "deny", Limit: 1},
		},
		Anomaly:  &Anomaly{Metric: "charge_size", Score: 9.2, Message: "agent " + tricky + ": charge 1,000 USD"},
		Screener: &Screening{Screener: "kount", Decision: "review", Score: 61, Reasons: []string{tricky, "the card was declined 1 times"}, FailClosed: true},
		RiskSignals: []RiskSignal{
			{Type: "account_takeover", Score: 0.9, Action: "block"},
			{Type: tricky, Score: 1e-7, Action: "review"},
			{Type: "whole", Score: 3, Action: "allow"},
			{Type: "huge", Score: 1.5e300, Action: "allow"},
		},
	}
	return in
}

// TestInputJSONMatchesDocument: the JSON Input.JSON writes is, byte for
// byte, json.Marshal of ast.JSON of the document the policy evaluates (the
// encoding decision records were written with): a stored input's digest
// does not depend on which of the two wrote it.
func TestInputJSONMatchesDocument(t *testing.T) {
	e := newEngine(t)
	for _, tc := range []struct {
		name string
		in   func() *Input
	}{
		{"base", baseInput},
		{"every field set, tricky text", fullInput},
		{"fraud defences on, under every limit", func() *Input { in := baseInput(); in.Fraud = fraudDoc(); return in }},
		{"empty fraud document", func() *Input { in := baseInput(); in.Fraud = &Fraud{}; return in }},
		{"fraud with an anomaly and no screener", func() *Input {
			in := baseInput()
			in.Fraud = &Fraud{Anomaly: &Anomaly{Metric: "spend_rate", Score: 12, Message: "spent"}, RiskSignals: []RiskSignal{{}}}
			return in
		}},
		{"one mandate, no context", func() *Input {
			in := baseInput()
			in.Chain = in.Chain[1:]
			in.Chain[0].ParentID, in.Chain[0].Depth = "", 0
			in.Charge.Context = nil
			in.Token.Act = nil
			return in
		}},
		{"no chain, nothing but the zero values", func() *Input { return &Input{} }},
		{"empty currencies, empty details", func() *Input {
			in := baseInput()
			in.Currencies = map[string]int{}
			in.Token.AuthorizationDetails = nil
			in.Limits = &InputLimits{}
			return in
		}},
		{"a time with an offset and nanoseconds", func() *Input {
			in := baseInput()
			in.Now = time.Date(2026, 12, 31, 23, 59, 59, 999_999_999, time.FixedZone("x", -7*3600))
			return in
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want, err := documentJSON(tc.in())
			require.NoError(t, err)
			got, err := tc.in().JSON()
			require.NoError(t, err)
			assert.Equal(t, string(want), string(got))

			// As the charge pipeline calls it: after Decide filled the
			// limits and currencies.
			in := tc.in()
			_, _ = e.Decide(context.Background(), in)
			want, err = documentJSON(in)
			require.NoError(t, err)
			got, err = in.JSON()
			require.NoError(t, err)
			assert.Equal(t, string(want), string(got))
			wantDigest := DigestJSON(want)
			gotDigest, err := in.Digest()
			require.NoError(t, err)
			assert.Equal(t, wantDigest, gotDigest)
		})
	}
}

// The tricky text is escaped as encoding/json escapes it, and the JSON the
// record stores is valid and decodes to the same document.
func TestInputJSONEscaping(t *testing.T) {
	in := fullInput()
	got, err := in.JSON()
	require.NoError(t, err)
	require.True(t, json.Valid(got))
	for _, esc := range []string{`\u003cb\u003e\u0026amp;\u003c/b\u003e`, `\"Zürich\"`, `\\ \n\r\t\b\f\u0000\u001f`, `\u2028\u2029`, `\ufffd\ufffd`, "日本語 🙂"} {
		assert.Contains(t, string(got), esc)
	}
	assert.NotContains(t, string(got), "null", "absent fields are left out, never null")
	assert.NotContains(t, string(got), "none", "a nil in the context is left out, as in the document")

	var doc any
	require.NoError(t, json.Unmarshal(got, &doc))
	want, err := ast.JSON(in.build())
	require.NoError(t, err)
	wantRaw, err := json.Marshal(want)
	require.NoError(t, err)
	var wantDoc any
	require.NoError(t, json.Unmarshal(wantRaw, &wantDoc))
	assert.Equal(t, wantDoc, doc)
}

// A number that is not JSON (NaN, ±Inf) fails the encoding, as
// json.Marshal of the document fails: no record with a malformed input.
func TestInputJSONRejectsNonNumbers(t *testing.T) {
	for _, f := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		in := baseInput()
		in.Fraud = &Fraud{RiskSignals: []RiskSignal{{Type: "x", Score: f, Action: "review"}}}
		_, werr := documentJSON(in)
		require.Error(t, werr)
		_, err := in.JSON()
		require.Error(t, err)
		in.Fraud = &Fraud{Anomaly: &Anomaly{Metric: "x", Score: f, Message: "m"}}
		_, err = in.JSON()
		require.Error(t, err)
		in.Fraud = nil
		in.Charge.Context = map[string]any{"f": f}
		_, werr = documentJSON(in)
		_, err = in.JSON()
		assert.Equal(t, werr != nil, err != nil, "%v: %v vs %v", f, werr, err)
	}
}

// Every string the encoder writes agrees with encoding/json, one
// character class at a time.
func TestAppendJSONString(t *testing.T) {
	var cases []string
	for c := range 256 {
		cases = append(cases, string([]byte{byte(c)}), "a"+string([]byte{byte(c)})+"b")
	}
	cases = append(cases, "", tricky, strings.Repeat("é", 100), "\u2027\u2028\u2029\u202a", "\xe2\x80", "\xed\xa0\x80", "\U0010ffff", "\xf4\x90\x80\x80")
	for _, s := range cases {
		want, err := json.Marshal(s)
		require.NoError(t, err)
		assert.Equal(t, string(want), string(appendJSONString(nil, s)), "%q", s)
	}
}

// The limits' term is shared between documents while the limits are the
// same, and rebuilt when they change, even in the same slice.
func TestFraudLimitsTermFollowsTheLimits(t *testing.T) {
	e := newEngine(t)
	in := baseInput()
	in.Fraud = fraudDoc()
	d, err := e.Decide(context.Background(), in)
	require.NoError(t, err)
	require.Equal(t, Allow, d.Result, "%+v", d.Reasons)

	limits := in.Fraud.Limits
	limits[2].Limit = 300 // the merchant's 380 charges in the hour now pass it
	in = baseInput()
	in.Fraud = fraudDoc()
	in.Fraud.Limits = limits
	d, err = e.Decide(context.Background(), in)
	require.NoError(t, err)
	assert.Equal(t, Challenge, d.Result)
	assert.Equal(t, []string{"velocity_merchant_charges_hour"}, codes(d))
	assert.Equal(t, "380 charges at this merchant in the last hour, limit 300", d.Reasons[0].Message)

	limits[2].Action = "deny"
	in = baseInput()
	in.Fraud = &Fraud{Velocity: fraudDoc().Velocity, Limits: limits}
	d, err = e.Decide(context.Background(), in)
	require.NoError(t, err)
	assert.Equal(t, Deny, d.Result)
	assert.Equal(t, []string{"velocity_merchant_charges_hour"}, codes(d))
}

package policies

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/internal/money"
)

var moneyFormat = money.Format

func parseModule(name, src string) (*ast.Module, error) {
	return ast.ParseModuleWithOpts(name, src, ast.ParserOptions{RegoVersion: ast.RegoV1})
}

func ptr[T any](v T) *T { return &v }

var testNow = time.Date(2026, 6, 10, 12, 0, 0, 0, time.UTC)

// baseInput is a charge the policy allows: 20.00 USD at Acme Books on a
// child mandate (cap 50.00) whose parent has a 100.00 budget.
func baseInput() *Input {
	parent := Mandate{ID: "mdt_parent", Status: "active", Agent: "agt_a", Payer: "cus_1",
		Limits: Limits{Currency: "USD", Budget: 100_00, PaymentMethods: []string{"tok_visa", "tok_mc"}}}
	child := Mandate{ID: "mdt_child", ParentID: "mdt_parent", Depth: 1, Status: "active", Agent: "agt_b", Payer: "cus_1",
		Limits: Limits{Currency: "USD", Budget: 80_00, MaxAmountPerCharge: ptr[int64](50_00), PaymentMethods: []string{"tok_visa"},
			ValidFrom: ptr(testNow.Add(-time.Hour)), ValidUntil: ptr(testNow.Add(time.Hour))}}
	return &Input{
		Now: testNow,
		Charge: Charge{Amount: 20_00, Currency: "USD", PaymentMethod: "tok_visa",
			Merchant: Merchant{ID: "acct_books", Name: "Acme Books", MCC: "5942", Country: "US", Domains: []string{"books.example.com"}},
			Context:  map[string]any{"description": "a novel"}},
		Token: Token{Sub: "cus_1", ClientID: "agt_b", Act: &Actor{Sub: "agt_b", Act: &Actor{Sub: "agt_a"}},
			AuthorizationDetails: []AuthorizationDetail{{Type: "payment_mandate", MandateID: "mdt_child"}}},
		Chain:  []Mandate{parent, child},
		Agent:  Agent{ClientID: "agt_b", Status: "active"},
		Tenant: Tenant{ID: "ten_1", Status: "active"},
	}
}

func newEngine(t testing.TB) *Engine {
	e, err := New(context.Background(), Velocity{AgentChargesPerHour: 60, AgentDeclinesPerHour: 10, MandateChargesPerHour: 60, MandateDeclinesPerHour: 10})
	require.NoError(t, err)
	return e
}

func TestEngineAllows(t *testing.T) {
	e := newEngine(t)
	d, err := e.Decide(context.Background(), baseInput())
	require.NoError(t, err)
	assert.Equal(t, Allow, d.Result, "%+v", d.Reasons)
	assert.Empty(t, d.Reasons)
	assert.Regexp(t, `^sha256:[0-9a-f]{16}$`, d.PolicyVersion)
}

func codes(d Decision) []string {
	var out []string
	for _, r := range d.Reasons {
		out = append(out, r.Code)
	}
	return out
}

// TestEngineRules runs representative rules through the Go input builder:
// the document the engine builds is the one the Rego tests assume.
func TestEngineRules(t *testing.T) {
	e := newEngine(t)
	for _, tc := range []struct {
		name    string
		edit    func(in *Input)
		result  string
		codes   []string
		message string
	}{
		{"per-charge cap", func(in *Input) { in.Charge.Amount = 60_00 }, Deny, []string{"per_charge_cap_exceeded"},
			"charge 60.00 USD exceeds the per-charge cap of 50.00 USD"},
		{"a card not on the mandate is refused", func(in *Input) { in.Charge.PaymentMethod = "tok_mc" }, Deny,
			[]string{"payment_method_not_allowed"}, "card tok_mc is not one mandate mdt_child may charge"},
		{"ancestor budget", func(in *Input) { in.Chain[0].Spent = 90_01 }, Deny, []string{"budget_exceeded"},
			"charge 20.00 USD exceeds the remaining budget of ancestor mandate mdt_parent of 9.99 USD (90.01 USD of 100.00 USD spent)"},
		{"period budget this period", func(in *Input) {
			m := &in.Chain[1]
			m.Period, m.PeriodBudget, m.PeriodSpent = "day", ptr[int64](30_00), 25_00
		}, Deny, []string{"period_budget_exceeded"}, "charge 20.00 USD exceeds the remaining day budget of 5.00 USD (25.00 USD of 30.00 USD spent this day)"},
		{"period budget with room left", func(in *Input) {
			m := &in.Chain[1]
			m.Period, m.PeriodBudget, m.PeriodSpent = "day", ptr[int64](30_00), 10_00
		}, Allow, nil, ""},
		{"absent limits are unrestricted", func(in *Input) {
			in.Chain[1].MaxAmountPerCharge, in.Chain[1].ValidFrom, in.Chain[1].ValidUntil = nil, nil, nil
		}, Allow, nil, ""},
		{"merchant by verified domain", func(in *Input) { in.Chain[1].AllowedMerchants = []string{"books.example.com"} }, Allow, nil, ""},
		{"category blocked", func(in *Input) { in.Chain[0].BlockedCategories = []string{"5942"} }, Deny, []string{"category_blocked"}, ""},
		{"velocity", func(in *Input) { in.Velocity.Mandate.Declines = 10 }, Deny, []string{"velocity_mandate_declines"}, ""},
		{"challenge", func(in *Input) { in.Chain[1].ApprovalThreshold = ptr[int64](10_00) }, Challenge, []string{"approval_required"},
			"charge 20.00 USD is above the approval threshold of 10.00 USD: a person must approve it"},
		{"approved", func(in *Input) {
			in.Chain[1].ApprovalThreshold = ptr[int64](10_00)
			in.Approval = &Approval{ID: "apr_1", Status: "approved", MandateID: "mdt_child", Amount: 20_00, Currency: "USD",
				PaymentMethod: "tok_visa", Merchant: "acct_books", ExpiresAt: testNow.Add(time.Minute)}
		}, Allow, nil, ""},
		{"revoked ancestor", func(in *Input) { in.Chain[0].Status = "revoked" }, Deny, []string{"mandate_inactive"}, "mandate mdt_parent is revoked"},
		{"no chain", func(in *Input) { in.Chain = nil }, Deny, []string{"invalid_input"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := baseInput()
			tc.edit(in)
			d, err := e.Decide(context.Background(), in)
			require.NoError(t, err)
			assert.Equal(t, tc.result, d.Result)
			assert.Equal(t, tc.codes, codes(d))
			if tc.message != "" {
				require.NotEmpty(t, d.Reasons)
				assert.Equal(t, tc.message, d.Reasons[0].Message)
			}
		})
	}
}

// Nothing the agent says about the purchase changes the merchant facts
// the policy sees: the decision is the same whatever the context holds.
func TestEngineIgnoresPurchaseContext(t *testing.T) {
	e := newEngine(t)
	in := baseInput()
	in.Chain[1].AllowedCategories = []string{"5735"}
	want, err := e.Decide(context.Background(), in)
	require.NoError(t, err)
	require.Equal(t, Deny, want.Result)
	in.Charge.Context = map[string]any{
		"mcc": "5735", "merchant": map[string]any{"mcc": "5735", "country": "DE", "domains": []any{"music.example.com"}},
		"line_items": []any{map[string]any{"name": "an album", "mcc": "5735"}}, "order_url": "https://music.example.com/o/1",
	}
	got, err := e.Decide(context.Background(), in)
	require.NoError(t, err)
	assert.Equal(t, want, got)
}

// The Rego money formatting agrees with internal/money for every exponent.
func TestEngineMoneyFormatting(t *testing.T) {
	e := newEngine(t)
	for _, cur := range []string{"USD", "JPY", "KWD"} {
		for _, amount := range []int64{1, 9, 10, 99, 100, 101, 1234, 50_000, 999_999_999_999} {
			in := baseInput()
			in.Charge.Currency, in.Charge.Amount = cur, amount+1
			for i := range in.Chain {
				in.Chain[i].Currency, in.Chain[i].Budget, in.Chain[i].MaxAmountPerCharge = cur, 999_999_999_999+1, nil
			}
			in.Chain[1].MaxAmountPerCharge = ptr(amount)
			d, err := e.Decide(context.Background(), in)
			require.NoError(t, err)
			require.Equal(t, []string{"per_charge_cap_exceeded"}, codes(d))
			assert.Contains(t, d.Reasons[0].Message, "per-charge cap of "+moneyFormat(amount, cur))
		}
	}
}

// A cancelled context stops the evaluation and denies.
func TestEngineCancelled(t *testing.T) {
	e := newEngine(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	d, err := e.Decide(ctx, baseInput())
	require.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, Deny, d.Result)
	assert.Equal(t, []string{"policy_error"}, codes(d))
	d, err = e.Decide(context.Background(), baseInput())
	require.NoError(t, err)
	assert.Equal(t, Allow, d.Result, "the engine is unaffected by an earlier cancellation")
}

func TestEngineInputDigest(t *testing.T) {
	a, err := baseInput().Digest()
	require.NoError(t, err)
	b, err := baseInput().Digest()
	require.NoError(t, err)
	assert.Equal(t, a, b, "deterministic")
	in := baseInput()
	in.Charge.Amount++
	c, err := in.Digest()
	require.NoError(t, err)
	assert.NotEqual(t, a, c)
	raw, err := baseInput().JSON()
	require.NoError(t, err)
	assert.Contains(t, string(raw), `"mandate":{"agent":"agt_b"`)
	assert.NotContains(t, string(raw), "null", "absent fields are left out, never null")
}

func TestCompileIsStrict(t *testing.T) {
	mods, err := Modules(false)
	require.NoError(t, err)
	bad, err := parseModule("bad.rego", "package bad\n\nx if {\n\ty := 1\n\ttrue\n}\n")
	require.NoError(t, err)
	mods["bad.rego"] = bad
	_, err = Compile(mods)
	require.Error(t, err, "an unused variable is an error in strict mode")
	v1, err := Version()
	require.NoError(t, err)
	assert.Regexp(t, `^sha256:[0-9a-f]{16}$`, v1)
}

func BenchmarkDecide(b *testing.B) {
	e := newEngine(b)
	in := baseInput()
	ctx := context.Background()
	timeDecisions(b, func() (Decision, error) { return e.Decide(ctx, in) })
}

// timeDecisions times b.N calls of decide, each of which must allow, and
// reports their median and 99th percentile.
func timeDecisions(b *testing.B, decide func() (Decision, error)) {
	durations := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		d, err := decide()
		durations = append(durations, time.Since(start))
		if err != nil || d.Result != Allow {
			b.Fatalf("%v %v", d, err)
		}
	}
	b.StopTimer()
	slices.Sort(durations)
	b.ReportMetric(float64(durations[len(durations)/2].Nanoseconds())/1000, "p50-µs")
	b.ReportMetric(float64(durations[len(durations)*99/100].Nanoseconds())/1000, "p99-µs")
}

// BenchmarkInputValue is the input document's share of a decision.
func BenchmarkInputValue(b *testing.B) {
	in := baseInput()
	in.Limits = &InputLimits{Velocity: Velocity{AgentChargesPerHour: 60, AgentDeclinesPerHour: 10, MandateChargesPerHour: 60, MandateDeclinesPerHour: 10}}
	in.Currencies = in.currencies()
	b.ReportAllocs()
	for b.Loop() {
		_ = in.Value()
	}
}

// TestEngineFraud runs every fraud rule through the Go input builder:
// the input.fraud document the engine builds is the one the Rego tests
// assume, and each reason keeps its code and message.
func TestEngineFraud(t *testing.T) {
	e := newEngine(t)
	for _, tc := range []struct {
		name    string
		edit    func(f *Fraud)
		result  string
		codes   []string
		message string
	}{
		{"under every limit", func(*Fraud) {}, Allow, nil, ""},
		{"a count limit reached", func(f *Fraud) { f.Limits[0].Limit = 41 }, Challenge, []string{"velocity_agent_charges_hour"},
			"41 charges by this agent in the last hour, limit 41"},
		{"a count limit denies", func(f *Fraud) { f.Limits[1].Limit, f.Limits[1].Action = 40, "deny" }, Deny,
			[]string{"velocity_card_charges_hour"}, "41 charges on this card in the last hour, limit 40"},
		{"an amount limit passed with this charge", func(f *Fraud) {
			f.Limits = append(f.Limits, VelocityLimit{Scope: "merchant", Window: "hour", Metric: "amount", Action: "deny", Limit: 951_000})
		}, Deny, []string{"velocity_merchant_amount_hour"},
			"9500.00 USD charged at this merchant in the last hour, 9520.00 USD with this charge, limit 9510.00 USD"},
		{"an amount limit not passed", func(f *Fraud) {
			f.Limits = append(f.Limits, VelocityLimit{Scope: "merchant", Window: "hour", Metric: "amount", Action: "deny", Limit: 952_000})
		}, Allow, nil, ""},
		{"a limit of a scope without stats", func(f *Fraud) {
			f.Limits = append(f.Limits, VelocityLimit{Scope: "mandate", Window: "day", Metric: "count", Action: "deny", Limit: 0})
		}, Allow, nil, ""},
		{"anomaly", func(f *Fraud) {
			f.Anomaly = &Anomaly{Metric: "spend_rate", Score: 12.5, Message: "agent agt_b spends fast"}
		},
			Challenge, []string{"agent_anomaly"}, "agent agt_b spends fast"},
		{"screener rejects", func(f *Fraud) { f.Screener = &Screening{Screener: "rules", Decision: "reject", Score: 95} }, Deny,
			[]string{"screener_rejected"}, "fraud screener rules rejected the charge (score 95)"},
		{"screener asks for review", func(f *Fraud) { f.Screener.Decision, f.Screener.Score = "review", 60 }, Challenge,
			[]string{"screener_review"}, "fraud screener rules asks for a review (score 60): a person must approve it"},
		{"screener unavailable, failing open", func(f *Fraud) { f.Screener.Decision = "unavailable" }, Allow, nil, ""},
		{"screener unavailable, failing closed", func(f *Fraud) { f.Screener.Decision, f.Screener.FailClosed = "unavailable", true }, Deny,
			[]string{"screener_unavailable"}, "fraud screener rules did not answer in time and this account fails closed"},
		{"risk signal blocks", func(f *Fraud) { f.RiskSignals = []RiskSignal{{Type: "account_takeover", Score: 0.9, Action: "block"}} }, Deny,
			[]string{"agent_risk_signal"}, "the agent's own risk signal account_takeover (score 0.9) says block"},
		{"risk signal asks for review", func(f *Fraud) { f.RiskSignals = []RiskSignal{{Type: "new_device", Score: 0.4, Action: "review"}} },
			Challenge, []string{"agent_risk_signal_review"}, "the agent's own risk signal new_device (score 0.4) asks for a review: a person must approve it"},
		{"a deny outweighs the challenges", func(f *Fraud) {
			f.Limits[0].Limit = 1
			f.Anomaly = &Anomaly{Metric: "charge_size", Score: 9, Message: "big"}
			f.RiskSignals = []RiskSignal{{Type: "t", Score: 1, Action: "block"}}
		}, Deny, []string{"agent_risk_signal"}, ""},
		{"challenges together, sorted by code", func(f *Fraud) {
			f.Limits[0].Limit = 1
			f.Anomaly = &Anomaly{Metric: "charge_size", Score: 9, Message: "big"}
		}, Challenge, []string{"agent_anomaly", "velocity_agent_charges_hour"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := baseInput()
			in.Fraud = fraudDoc()
			tc.edit(in.Fraud)
			d, err := e.Decide(context.Background(), in)
			require.NoError(t, err)
			assert.Equal(t, tc.result, d.Result)
			assert.Equal(t, tc.codes, codes(d))
			if tc.message != "" {
				require.NotEmpty(t, d.Reasons)
				assert.Equal(t, tc.message, d.Reasons[0].Message)
			}
		})
	}
}

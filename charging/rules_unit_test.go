package charging

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/authz"
	"github.com/perfectpay/perfectpay/mandates"
	"github.com/perfectpay/perfectpay/payments"
	"github.com/perfectpay/perfectpay/policies"
)

// paramOf is the request parameter a refusal names, read from the first
// error in err's chain with a string field Param (whichever error type
// the package returns for bad input).
func paramOf(err error) string {
	for e := err; e != nil; e = errors.Unwrap(e) {
		v := reflect.ValueOf(e)
		if v.Kind() == reflect.Pointer {
			v = v.Elem()
		}
		if v.Kind() != reflect.Struct {
			continue
		}
		if f := v.FieldByName("Param"); f.IsValid() && f.Kind() == reflect.String {
			return f.String()
		}
	}
	return ""
}

// codeOf is the machine-readable code a refusal carries (its Code field).
func codeOf(err error) string {
	for e := err; e != nil; e = errors.Unwrap(e) {
		v := reflect.ValueOf(e)
		if v.Kind() == reflect.Pointer {
			v = v.Elem()
		}
		if v.Kind() != reflect.Struct {
			continue
		}
		if f := v.FieldByName("Code"); f.IsValid() && f.Kind() == reflect.String {
			return f.String()
		}
	}
	return ""
}

func TestHoldsFollowsTheLedgerRule(t *testing.T) {
	for _, tc := range []struct {
		status           string
		amount, captured int64
		succeeded, want  int64
		why              string
	}{
		{payments.StatusPending, 1000, 0, 0, 1000, "a pending charge holds its amount"},
		{payments.StatusRequiresCapture, 1000, 0, 0, 1000, "an authorized charge holds its amount"},
		{payments.StatusSucceeded, 1000, 1000, 0, 1000, "a captured charge holds what was captured"},
		{payments.StatusSucceeded, 1000, 600, 0, 600, "a partial capture holds the captured part only"},
		{payments.StatusSucceeded, 1000, 600, 250, 350, "succeeded refunds give budget back"},
		{payments.StatusSucceeded, 1000, 600, 600, 0, "a fully refunded charge holds nothing"},
		{payments.StatusFailed, 1000, 0, 0, 0, "a failed charge holds nothing"},
		{payments.StatusCanceled, 1000, 0, 0, 0, "a voided charge holds nothing"},
	} {
		t.Run(tc.why, func(t *testing.T) {
			c := LedgerCharge{ID: "ch_1", Status: tc.status, Amount: tc.amount, Captured: tc.captured}
			assert.Equal(t, tc.want, Holds(c, tc.succeeded))
		})
	}
}

func TestCheckLedger(t *testing.T) {
	// root ← child ← grandchild, and an unrelated mandate.
	snap := func() *LedgerSnapshot {
		return &LedgerSnapshot{
			Mandates: []LedgerMandate{
				{ID: "mdt_root", Spent: 1500},
				{ID: "mdt_child", ParentID: "mdt_root", Spent: 1000},
				{ID: "mdt_grand", ParentID: "mdt_child", Spent: 400},
				{ID: "mdt_other", Spent: 0},
			},
			Charges: []LedgerCharge{
				{ID: "ch_root", MandateID: "mdt_root", Status: payments.StatusSucceeded, Amount: 500, Captured: 500},
				{ID: "ch_child", MandateID: "mdt_child", Status: payments.StatusRequiresCapture, Amount: 600},
				{ID: "ch_grand", MandateID: "mdt_grand", Status: payments.StatusSucceeded, Amount: 700, Captured: 700},
				{ID: "ch_failed", MandateID: "mdt_grand", Status: payments.StatusFailed, Amount: 9999},
			},
			Refunds: []LedgerRefund{
				{ChargeID: "ch_grand", Status: payments.RefundSucceeded, Amount: 300},
				{ChargeID: "ch_grand", Status: payments.RefundPending, Amount: 100},
				{ChargeID: "ch_grand", Status: payments.RefundFailed, Amount: 50},
			},
		}
	}
	t.Run("every hold counts on its mandate and every ancestor", func(t *testing.T) {
		assert.Empty(t, CheckLedger(snap()))
	})
	t.Run("a pending or failed refund gives nothing back", func(t *testing.T) {
		s := snap()
		s.Mandates[2].Spent = 300 // as if the pending 100 had been given back
		s.Mandates[1].Spent = 900
		s.Mandates[0].Spent = 1400
		got := CheckLedger(s)
		require.Len(t, got, 3)
		assert.Contains(t, got[0], "mandate mdt_child: spent 900, but its charges hold 1000")
	})
	t.Run("an ancestor out of step is named alone", func(t *testing.T) {
		s := snap()
		s.Mandates[0].Spent = 1501
		assert.Equal(t, []string{"mandate mdt_root: spent 1501, but its charges hold 1500"}, CheckLedger(s))
	})
	t.Run("spent on a mandate without charges", func(t *testing.T) {
		s := snap()
		s.Mandates[3].Spent = 1
		assert.Equal(t, []string{"mandate mdt_other: spent 1, but its charges hold 0"}, CheckLedger(s))
	})
	t.Run("a parent cycle ends", func(t *testing.T) {
		s := &LedgerSnapshot{
			Mandates: []LedgerMandate{{ID: "mdt_a", ParentID: "mdt_b", Spent: 2}, {ID: "mdt_b", ParentID: "mdt_a", Spent: 2}},
			Charges:  []LedgerCharge{{ID: "ch", MandateID: "mdt_a", Status: payments.StatusPending, Amount: 1}},
		}
		assert.NotEmpty(t, CheckLedger(s), "a broken chain is reported, not looped on")
	})
	t.Run("lines are sorted", func(t *testing.T) {
		s := snap()
		for i := range s.Mandates {
			s.Mandates[i].Spent++
		}
		got := CheckLedger(s)
		require.Len(t, got, 4)
		assert.IsIncreasing(t, got)
	})
}

func TestSettleTargets(t *testing.T) {
	h := &Hold{Held: 800, Counted: true}
	for _, tc := range []struct {
		status  string
		held    int64
		counted bool
	}{
		{payments.StatusRequiresCapture, 800, true},
		{payments.StatusSucceeded, 800, true},
		{payments.StatusFailed, 0, false},
		{payments.StatusCanceled, 0, false},
	} {
		held, counted := authorized(&payments.Charge{Status: tc.status})(h)
		assert.Equal(t, tc.held, held, tc.status)
		assert.Equal(t, tc.counted, counted, tc.status)
	}
}

func TestLeftIsTheTightestOfTheChain(t *testing.T) {
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	day := mandates.PeriodStart(mandates.PeriodDay, now)
	yesterday := day.Add(-24 * time.Hour)
	p := func(v int64) *int64 { return &v }
	chain := []mandates.Mandate{
		{ID: "mdt_root", Limits: mandates.Limits{Budget: 10_000, Period: mandates.PeriodDay, PeriodBudget: p(3000)}, Spent: 2000, PeriodSpent: 2500, PeriodStart: &day},
		{ID: "mdt_child", Limits: mandates.Limits{Budget: 9000}, Spent: 1000},
		{ID: "mdt_grand", Limits: mandates.Limits{Budget: 5000, Period: mandates.PeriodDay, PeriodBudget: p(1000)}, Spent: 4000, PeriodSpent: 900, PeriodStart: &yesterday},
	}
	budget, period := left(chain, now)
	assert.Equal(t, int64(1000), budget, "the grandchild has 1000 left")
	require.NotNil(t, period)
	assert.Equal(t, int64(500), *period, "the root has 500 left today; the grandchild's day is over")

	budget, period = left(chain[1:2], now)
	assert.Equal(t, int64(8000), budget)
	assert.Nil(t, period, "no period budget anywhere")

	over := []mandates.Mandate{{Limits: mandates.Limits{Budget: 100}, Spent: 150}}
	budget, _ = left(over, now)
	assert.Equal(t, int64(0), budget, "an overspent mandate leaves nothing, never a negative budget")
}

func TestChainAgentsAndInactive(t *testing.T) {
	chain := []mandates.Mandate{{Agent: "agt_a"}, {Agent: "agt_b"}, {Agent: "agt_a"}, {Agent: ""}, {Agent: "agt_self"}}
	assert.Equal(t, []string{"agt_a", "agt_b"}, chainAgents(chain, "agt_self"), "root first, each once, without self")
	assert.Empty(t, chainAgents(chain[4:], "agt_self"))

	active := &authz.Agent{ID: "agt_1", Status: authz.AgentActive}
	suspended := &authz.Agent{ID: "agt_2", Status: authz.AgentSuspended}
	revokedA := &authz.Agent{ID: "agt_3", Status: authz.AgentRevoked}
	assert.Nil(t, inactive(active, nil))
	assert.Same(t, suspended, inactive(active, nil, suspended, revokedA), "the first inactive one")
	assert.Same(t, revokedA, inactive(revokedA, suspended))
}

func TestVelocityQueryAsksOnlyForSetLimits(t *testing.T) {
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	q := velocityQuery(policies.Velocity{}, now)
	assert.False(t, q.Needed(), "every limit off: nothing is read")

	q = velocityQuery(policies.Velocity{AgentChargesPerHour: 5, MandateDeclinesPerHour: 2}, now)
	assert.True(t, q.Needed())
	assert.Equal(t, now.Add(-time.Hour), q.Since)
	assert.Equal(t, 1005, q.AgentCharges)
	assert.Equal(t, 0, q.AgentDeclines)
	assert.Equal(t, 0, q.MandateCharges)
	assert.Equal(t, 1002, q.MandateDeclines)

	for _, v := range []policies.Velocity{{AgentDeclinesPerHour: 1}, {MandateChargesPerHour: 1}} {
		assert.True(t, velocityQuery(v, now).Needed(), "%+v", v)
	}
	assert.False(t, velocityQuery(policies.Velocity{AgentChargesPerHour: -1}, now).Needed(), "a negative limit is off")
}

func TestRefusalReasons(t *testing.T) {
	p := &payments.ChargeParams{Amount: 1250, Currency: "usd"}
	for _, tc := range []struct {
		limit, status, code, says string
	}{
		{mandates.LimitBudget, "", "budget_exceeded", "remaining budget of mandate mdt_1"},
		{mandates.LimitPeriod, "", "period_budget_exceeded", "remaining period budget"},
		{mandates.LimitMaxCharges, "", "max_charges_reached", "maximum number of charges"},
		{mandates.LimitWindow, "", "mandate_expired", "outside its validity window"},
		{mandates.LimitStatus, mandates.StatusRevoked, "mandate_inactive", "mandate mdt_1 is revoked"},
		{"something new", "", "mandate_refused", "refused the charge"},
	} {
		t.Run(tc.code, func(t *testing.T) {
			r := refusalReason(&mandates.RefusedError{MandateID: "mdt_1", Limit: tc.limit, Status: tc.status}, p)
			assert.Equal(t, tc.code, r.Code)
			assert.Contains(t, r.Message, tc.says)
		})
	}
	r := refusalReason(&mandates.RefusedError{MandateID: "mdt_1", Limit: mandates.LimitBudget}, p)
	assert.Contains(t, r.Message, "12.50", "the amount is written in major units")
}

func TestRevokedNamesWhatAndWhy(t *testing.T) {
	d := &Decision{Result: policies.Allow}
	err := revoked(d, "mandate", "mdt_9", false)
	assert.Equal(t, policies.Deny, d.Result, "the decision becomes a denial")
	require.Len(t, d.Reasons, 1)
	assert.Equal(t, "mandate_revoked", d.Reasons[0].Code)
	assert.Equal(t, "mandate_revoked", err.Code())
	assert.Equal(t, "the mandate mdt_9 was revoked", err.Error())
	assert.Same(t, d, err.Decision)

	d = &Decision{}
	err = revoked(d, "agent", "agt_2", true)
	assert.Equal(t, "agent_suspended", err.Code())
	assert.Equal(t, "agent_suspended", d.Reasons[0].Code)
	assert.Equal(t, "the agent agt_2 was suspended", err.Error())
}

func TestErrorsCarryTheDecisionReasons(t *testing.T) {
	d := &Decision{Reasons: []policies.Reason{{Code: "a", Message: "first"}, {Code: "b", Message: "second"}}}
	assert.Equal(t, "charge denied: first; second", (&DeniedError{Decision: d}).Error())
	assert.Equal(t, "approval required: first; second", (&ApprovalRequiredError{Decision: d}).Error())
	assert.Equal(t, "charge denied: ", (&DeniedError{Decision: &Decision{}}).Error())
	assert.Contains(t, (&PendingError{ChargeID: "ch_1"}).Error(), "ch_1")
	assert.Contains(t, (&MismatchError{ChargeID: "ch_2"}).Error(), "ch_2")

	inner := &DeniedError{Decision: d}
	var de *DeniedError
	require.ErrorAs(t, &refusal{d: d, err: inner}, &de, "a refusal unwraps to its error")
	assert.Same(t, inner, de)
}

func TestTokenAgentsAndChargeKey(t *testing.T) {
	tok := &authz.AccessToken{ClientID: "agt_c", Subject: "agt_a",
		Act: &authz.Actor{Sub: "agt_c", Act: &authz.Actor{Sub: "agt_b", Act: &authz.Actor{Sub: "user_1"}}}}
	assert.Equal(t, []string{"agt_c", "agt_a", "agt_b"}, tokenAgents(tok), "client first, then agent subjects and actors, each once")
	assert.Equal(t, []string{"agt_c"}, tokenAgents(&authz.AccessToken{ClientID: "agt_c", Subject: "payer_1"}))

	assert.Empty(t, chargeKey(tok, "mdt_1", ""), "no key, no scoped key")
	assert.Equal(t, "agt_c:mdt_1:k1", chargeKey(tok, "mdt_1", "k1"))
	assert.NotEqual(t, chargeKey(tok, "mdt_1", "k1"), chargeKey(tok, "mdt_2", "k1"), "two mandates never share a key")
}

func TestBindingTiesTheExactRequest(t *testing.T) {
	p := payments.ChargeParams{Amount: 500, Currency: "usd", PaymentMethod: "tok_1", MerchantID: "acct_1"}
	base := binding("ten_1", "mdt_1", "agt_1", "k1", &p)
	assert.Len(t, base, 64)
	upper := p
	upper.Currency = "USD"
	assert.Equal(t, base, binding("ten_1", "mdt_1", "agt_1", "k1", &upper), "currency case does not matter")
	for name, change := range map[string]func(q *payments.ChargeParams){
		"amount":   func(q *payments.ChargeParams) { q.Amount++ },
		"currency": func(q *payments.ChargeParams) { q.Currency = "eur" },
		"card":     func(q *payments.ChargeParams) { q.PaymentMethod = "tok_2" },
		"merchant": func(q *payments.ChargeParams) { q.MerchantID = "acct_2" },
	} {
		q := p
		change(&q)
		assert.NotEqual(t, base, binding("ten_1", "mdt_1", "agt_1", "k1", &q), name)
	}
	assert.NotEqual(t, base, binding("ten_1", "mdt_1", "agt_1", "k2", &p), "idempotency key")
	assert.NotEqual(t, base, binding("ten_1", "mdt_1", "agt_2", "k1", &p), "agent")
	assert.NotEqual(t, base, binding("ten_1", "mdt_2", "agt_1", "k1", &p), "mandate")
	assert.NotEqual(t, base, binding("ten_2", "mdt_1", "agt_1", "k1", &p), "tenant")
}

func TestMandateOf(t *testing.T) {
	tok := func(details string) *authz.AccessToken {
		return &authz.AccessToken{AuthorizationDetails: json.RawMessage(details)}
	}
	id, ds, err := MandateOf(tok(`[{"type":"openid_credential"},{"type":"payment_mandate","mandate_id":"mdt_1"}]`))
	require.NoError(t, err)
	assert.Equal(t, "mdt_1", id)
	assert.Len(t, ds, 1, "only payment_mandate elements")

	for _, tc := range []struct{ name, details, code string }{
		{"no details", ``, "mandate_required"},
		{"not JSON", `{`, "mandate_required"},
		{"only other types", `[{"type":"openid_credential"}]`, "mandate_required"},
		{"no mandate id", `[{"type":"payment_mandate"}]`, "mandate_required"},
		{"two mandates", `[{"type":"payment_mandate","mandate_id":"mdt_1"},{"type":"payment_mandate","mandate_id":"mdt_2"}]`, "mandate_ambiguous"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := MandateOf(tok(tc.details))
			require.Error(t, err)
			assert.Equal(t, tc.code, codeOf(err))
		})
	}
	id, _, err = MandateOf(tok(`[{"type":"payment_mandate","mandate_id":"mdt_1"},{"type":"payment_mandate","mandate_id":"mdt_1"}]`))
	require.NoError(t, err, "the same mandate twice is one mandate")
	assert.Equal(t, "mdt_1", id)
}

func TestNewRequestValidatesAtTheBoundary(t *testing.T) {
	s := New(nil, payments.NewService(nil, nil, nil, payments.Config{MaxAmount: 100_000}, nil), nil, Config{}, nil)
	good := RawRequest{Amount: 500, Currency: "USD", PaymentMethod: "tok_visa", MerchantID: "acct_123",
		Purchase: &payments.Purchase{Description: "two books"}, IdempotencyKey: "k1"}
	req, err := s.NewRequest(good)
	require.NoError(t, err)
	p := req.charge.Params()
	assert.Equal(t, "usd", p.Currency, "the payment core normalises the currency")
	assert.Equal(t, "two books", p.Description, "the purchase's description describes the charge")
	assert.Equal(t, "k1", req.idempotencyKey)

	for _, tc := range []struct {
		name   string
		change func(r *RawRequest)
		param  string
	}{
		{"card not a token", func(r *RawRequest) { r.PaymentMethod = "4242424242424242" }, "payment_method"},
		{"card id too long", func(r *RawRequest) { r.PaymentMethod = "tok_" + strings.Repeat("x", 61) }, "payment_method"},
		{"merchant not an account", func(r *RawRequest) { r.MerchantID = "shop.example" }, "merchant"},
		{"approval not an approval id", func(r *RawRequest) { r.ApprovalID = "mdt_1" }, "approval"},
		{"approval id too long", func(r *RawRequest) { r.ApprovalID = "apr_" + strings.Repeat("x", 61) }, "approval"},
		{"zero amount", func(r *RawRequest) { r.Amount = 0 }, "amount"},
		{"amount above the maximum", func(r *RawRequest) { r.Amount = 100_001 }, "amount"},
		{"no currency", func(r *RawRequest) { r.Currency = "" }, "currency"},
		{"unknown currency", func(r *RawRequest) { r.Currency = "xyz" }, "currency"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := good
			tc.change(&r)
			_, err := s.NewRequest(r)
			require.Error(t, err)
			assert.Equal(t, tc.param, paramOf(err))
			assert.NotContains(t, err.Error(), "4242424242424242", "a refusal never repeats a card number")
		})
	}
	r := good
	r.ApprovalID = "apr_1"
	req, err = s.NewRequest(r)
	require.NoError(t, err)
	assert.Equal(t, "apr_1", req.approvalID)
}

func TestApprovalWritesLowerCaseCurrency(t *testing.T) {
	b, err := json.Marshal(Approval{ID: "apr_1", Currency: "USD", Binding: "secret-digest", TenantID: "ten_1"})
	require.NoError(t, err)
	var got map[string]any
	require.NoError(t, json.Unmarshal(b, &got))
	assert.Equal(t, "usd", got["currency"])
	assert.NotContains(t, string(b), "secret-digest", "the binding stays inside")
	assert.NotContains(t, string(b), "ten_1")
}

func TestApprovalURL(t *testing.T) {
	for _, base := range []string{"https://pay.example", "https://pay.example/"} {
		s := New(nil, nil, nil, Config{PublicURL: base}, nil)
		assert.Equal(t, "https://pay.example/approvals/apr_1", s.approvalURL("apr_1"), "the step-up page the payer opens")
	}
	s := New(nil, nil, nil, Config{}, nil)
	assert.Equal(t, 15*time.Minute, s.cfg.ApprovalTTL, "default approval lifetime")
	assert.Equal(t, 3, s.cfg.MaxDepth, "default delegation depth")
}

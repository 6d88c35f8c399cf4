package policies

import (
	"crypto/sha256"
	"encoding/hex"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/perfectpay/perfectpay/internal/money"
)

// Input is everything the charge policy sees. The engine turns it into the
// input document (see Value), built straight into OPA's AST: no JSON round
// trip on the hot path. Absent optional limits are left out of the
// document, never null, so "absent = unrestricted" holds in every rule.
type Input struct {
	Now    time.Time
	Charge Charge
	Token  Token
	// Chain is the charged mandate and its ancestors, root first: the
	// last element is input.mandate, the others input.ancestors.
	Chain    []Mandate
	Agent    Agent
	Tenant   Tenant
	Velocity VelocityCounts
	// Approval is a step-up approval presented with the charge, if any.
	Approval *Approval
	// Fraud is what the fraud defences say (nil when they are off).
	Fraud *Fraud
	// Limits and Currencies are filled by the engine when nil.
	Limits     *InputLimits
	Currencies map[string]int

	// value is the document Value built, kept so that Decide and JSON
	// build it once; no field is changed after Decide.
	value ast.Value
}

// Charge is the charge requested. Merchant comes from the merchant's
// registered profile; Context is what the agent said about the purchase
// (description, line items, order URL): kept for people, read by no rule.
type Charge struct {
	Amount        int64
	Currency      string
	PaymentMethod string
	Merchant      Merchant
	Context       map[string]any
}

// Merchant is the merchant's registered profile; Domains are the verified ones.
type Merchant struct {
	ID, Name, MCC, Country string
	Domains                []string
}

// Token is the agent's verified access token.
type Token struct {
	Sub, ClientID string
	// Act is the delegation chain (RFC 8693), newest actor outermost.
	Act                  *Actor
	AuthorizationDetails []AuthorizationDetail
}

// AuthorizationDetail is one authorization detail of the token (RFC 9396):
// a reference to a mandate, or terms with their limits.
type AuthorizationDetail struct {
	Type, MandateID string
	Limits          *Limits
}

// Mandate is one mandate of the chain as the policy sees it: its limits and
// its counters as of Input.Now.
type Mandate struct {
	ID, Status, Agent, Payer string
	ParentID                 string // empty for a root mandate
	Depth                    int
	Limits
	Spent, ChargeCount int64
	// PeriodSpent is what was spent in the current period as of Input.Now
	// (0 once a new period began); read only when Period is set.
	PeriodSpent int64
}

// Limits are a mandate's limits. Absent optional limits (nil, empty) are
// unrestricted. Currency is upper case ISO 4217.
type Limits struct {
	Currency           string
	MaxAmountPerCharge *int64
	Budget             int64
	// Period (day, week, month) and PeriodBudget cap spending per period.
	Period            string
	PeriodBudget      *int64
	MaxCharges        *int64
	PaymentMethods    []string
	AllowedMerchants  []string // merchant ids or verified domains
	AllowedCategories []string // ISO 18245 MCCs
	BlockedCategories []string
	AllowedCountries  []string // ISO 3166-1 alpha-2
	ValidFrom         *time.Time
	ValidUntil        *time.Time
	ApprovalThreshold *int64
}

// Actor is one link of an act claim.
type Actor struct {
	Sub string
	Act *Actor
}

// Agent is the charging agent's registration.
type Agent struct{ ClientID, Status string }

// Tenant is the account the mandate belongs to. AllowedCountries is the
// account's own list of merchant countries it may pay in, left out of the
// document when empty (unrestricted), so inputs recorded before the list
// existed read the same.
type Tenant struct {
	ID, Status       string
	AllowedCountries []string
}

// Counts are charges and declines in the last hour.
type Counts struct{ Charges, Declines int }

// VelocityCounts are the last hour's counts per agent and per mandate.
type VelocityCounts struct{ Agent, Mandate Counts }

// Approval is a step-up approval of one exact charge.
type Approval struct {
	ID, Status    string // status: pending | approved | denied
	MandateID     string
	Amount        int64
	Currency      string
	PaymentMethod string
	Merchant      string
	ExpiresAt     time.Time
}

// InputLimits are server-side limits the policy applies.
type InputLimits struct {
	Velocity Velocity
}

func (in *Input) currencies() map[string]int {
	out := map[string]int{}
	add := func(c string) {
		if e, ok := money.Exponent(c); ok {
			out[c] = e
		}
	}
	add(in.Charge.Currency)
	for i := range in.Chain {
		add(in.Chain[i].Currency)
	}
	return out
}

// obj builds an AST object from key/value pairs, skipping nil values.
type obj [][2]*ast.Term

func newObj(n int) obj { return make(obj, 0, n) }

func (o obj) add(k string, v *ast.Term) obj {
	if v == nil {
		return o
	}
	return append(o, [2]*ast.Term{key(k), v})
}

func (o obj) term() *ast.Term { return ast.ObjectTerm(o...) }

// keyTerms are the document's object keys and the words of input.fraud,
// built once: terms are immutable once built, so every document shares them
// (a third of the allocations of building the document were its keys).
var keyTerms = func() map[string]*ast.Term {
	m := map[string]*ast.Term{}
	for _, k := range []string{
		"now", "charge", "amount", "currency", "payment_method", "merchant", "context", "id", "name", "mcc",
		"country", "domains", "token", "sub", "client_id", "act", "authorization_details", "type", "mandate_id",
		"mandate", "ancestors", "status", "agent", "payer", "parent_id", "depth", "max_amount_per_charge",
		"budget", "period", "period_budget", "max_charges", "payment_methods", "allowed_merchants",
		"allowed_categories", "blocked_categories", "allowed_countries", "valid_from", "valid_until",
		"approval_threshold", "spent", "charge_count", "period_spent", "tenant", "velocity", "charges",
		"declines", "approval", "expires_at", "limits", "agent_charges_per_hour", "agent_declines_per_hour",
		"mandate_charges_per_hour", "mandate_declines_per_hour", "currencies",
		// input.fraud's keys and the words its values use.
		"fraud", "scope", "window", "count", "metric", "action", "anomaly", "score", "message", "screener",
		"decision", "reasons", "fail_closed", "risk_signals", "stat", "card", "hour", "day", "deny", "challenge",
		"accept", "review", "reject", "unavailable", "rules", "block", "allow", "charge_size", "merchant_mix",
		"spend_rate",
	} {
		m[k] = ast.StringTerm(k)
	}
	for _, k := range statKeys {
		m[k] = ast.StringTerm(k)
	}
	return m
}()

func key(k string) *ast.Term {
	if t, ok := keyTerms[k]; ok {
		return t
	}
	return ast.StringTerm(k)
}

func str(s string) *ast.Term { return ast.StringTerm(s) }

func num(n int64) *ast.Term { return ast.IntNumberTerm(int(n)) }

func optNum(p *int64) *ast.Term {
	if p == nil {
		return nil
	}
	return num(*p)
}

func optStr(s string) *ast.Term {
	if s == "" {
		return nil
	}
	return str(s)
}

func timeTerm(t time.Time) *ast.Term { return str(t.UTC().Format(time.RFC3339Nano)) }

func optTime(t *time.Time) *ast.Term {
	if t == nil {
		return nil
	}
	return timeTerm(*t)
}

func strs(ss []string) *ast.Term {
	if len(ss) == 0 {
		return ast.InternedEmptyArray
	}
	terms := make([]*ast.Term, len(ss))
	for i, s := range ss {
		terms[i] = str(s)
	}
	return ast.ArrayTerm(terms...)
}

func optStrs(ss []string) *ast.Term {
	if len(ss) == 0 {
		return nil
	}
	return strs(ss)
}

func limitsObj(o obj, l *Limits) obj {
	return o.add("currency", str(l.Currency)).
		add("max_amount_per_charge", optNum(l.MaxAmountPerCharge)).
		add("budget", num(l.Budget)).
		add("period", optStr(l.Period)).
		add("period_budget", optNum(l.PeriodBudget)).
		add("max_charges", optNum(l.MaxCharges)).
		add("payment_methods", strs(l.PaymentMethods)).
		add("allowed_merchants", optStrs(l.AllowedMerchants)).
		add("allowed_categories", optStrs(l.AllowedCategories)).
		add("blocked_categories", optStrs(l.BlockedCategories)).
		add("allowed_countries", optStrs(l.AllowedCountries)).
		add("valid_from", optTime(l.ValidFrom)).
		add("valid_until", optTime(l.ValidUntil)).
		add("approval_threshold", optNum(l.ApprovalThreshold))
}

// mandateTerm is a mandate with its counters: period_spent is the current
// period's spending, present only for a mandate with a period.
func mandateTerm(m *Mandate) *ast.Term {
	o := newObj(24).add("id", str(m.ID)).add("status", str(m.Status)).add("agent", str(m.Agent)).
		add("payer", str(m.Payer)).add("parent_id", optStr(m.ParentID)).add("depth", num(int64(m.Depth)))
	o = limitsObj(o, &m.Limits)
	o = o.add("spent", num(m.Spent)).add("charge_count", num(m.ChargeCount))
	if m.Period != "" {
		o = o.add("period_spent", num(m.PeriodSpent))
	}
	return o.term()
}

func actorTerm(a *Actor) *ast.Term {
	if a == nil {
		return nil
	}
	return newObj(2).add("sub", str(a.Sub)).add("act", actorTerm(a.Act)).term()
}

// anyTerm converts JSON-like Go values (maps, slices, strings, numbers,
// booleans) directly; anything else goes through OPA's generic conversion.
func anyTerm(v any) *ast.Term {
	switch x := v.(type) {
	case nil:
		return nil
	case string:
		return str(x)
	case bool:
		return ast.BooleanTerm(x)
	case int:
		return ast.IntNumberTerm(x)
	case int64:
		return num(x)
	case map[string]any:
		o := newObj(len(x))
		for k, e := range x {
			if t := anyTerm(e); t != nil {
				o = append(o, [2]*ast.Term{key(k), t})
			}
		}
		return o.term()
	case []any:
		ts := make([]*ast.Term, 0, len(x))
		for _, e := range x {
			if t := anyTerm(e); t != nil {
				ts = append(ts, t)
			}
		}
		return ast.ArrayTerm(ts...)
	}
	val, err := ast.InterfaceToValue(v)
	if err != nil {
		return nil
	}
	return ast.NewTerm(val)
}

// Value is the input document, built on the first call (change no field
// after it).
func (in *Input) Value() ast.Value {
	if in.value == nil {
		in.value = in.build()
	}
	return in.value
}

func (in *Input) build() ast.Value {
	o := newObj(12).add("now", timeTerm(in.Now))
	c := in.Charge
	merchant := newObj(5).add("id", str(c.Merchant.ID)).add("name", str(c.Merchant.Name)).add("mcc", str(c.Merchant.MCC)).
		add("country", str(c.Merchant.Country)).add("domains", strs(c.Merchant.Domains)).term()
	o = o.add("charge", newObj(5).add("amount", num(c.Amount)).add("currency", str(c.Currency)).
		add("payment_method", str(c.PaymentMethod)).add("merchant", merchant).add("context", anyTerm(c.Context)).term())

	details := make([]*ast.Term, 0, len(in.Token.AuthorizationDetails))
	for i := range in.Token.AuthorizationDetails {
		d := &in.Token.AuthorizationDetails[i]
		do := newObj(16).add("type", str(d.Type)).add("mandate_id", optStr(d.MandateID))
		if d.Limits != nil {
			do = limitsObj(do, d.Limits)
		}
		details = append(details, do.term())
	}
	o = o.add("token", newObj(4).add("sub", str(in.Token.Sub)).add("client_id", str(in.Token.ClientID)).
		add("act", actorTerm(in.Token.Act)).add("authorization_details", ast.ArrayTerm(details...)).term())

	if n := len(in.Chain); n > 0 {
		anc := make([]*ast.Term, 0, n-1)
		for i := range in.Chain[:n-1] {
			anc = append(anc, mandateTerm(&in.Chain[i]))
		}
		o = o.add("mandate", mandateTerm(&in.Chain[n-1])).add("ancestors", ast.ArrayTerm(anc...))
	}
	o = o.add("agent", newObj(2).add("client_id", str(in.Agent.ClientID)).add("status", str(in.Agent.Status)).term()).
		add("tenant", newObj(3).add("id", str(in.Tenant.ID)).add("status", str(in.Tenant.Status)).
			add("allowed_countries", optStrs(in.Tenant.AllowedCountries)).term())
	counts := func(c Counts) *ast.Term {
		return newObj(2).add("charges", num(int64(c.Charges))).add("declines", num(int64(c.Declines))).term()
	}
	o = o.add("velocity", newObj(2).add("agent", counts(in.Velocity.Agent)).add("mandate", counts(in.Velocity.Mandate)).term())
	if a := in.Approval; a != nil {
		o = o.add("approval", newObj(8).add("id", str(a.ID)).add("status", str(a.Status)).add("mandate_id", str(a.MandateID)).
			add("amount", num(a.Amount)).add("currency", str(a.Currency)).add("payment_method", str(a.PaymentMethod)).
			add("merchant", str(a.Merchant)).add("expires_at", timeTerm(a.ExpiresAt)).term())
	}
	if in.Limits != nil {
		v := in.Limits.Velocity
		o = o.add("limits", newObj(1).add("velocity", newObj(4).
			add("agent_charges_per_hour", num(int64(v.AgentChargesPerHour))).
			add("agent_declines_per_hour", num(int64(v.AgentDeclinesPerHour))).
			add("mandate_charges_per_hour", num(int64(v.MandateChargesPerHour))).
			add("mandate_declines_per_hour", num(int64(v.MandateDeclinesPerHour))).term()).term())
	}
	o = o.add("fraud", in.Fraud.term())
	cur := newObj(len(in.Currencies))
	for k, e := range in.Currencies {
		cur = cur.add(k, num(int64(e)))
	}
	o = o.add("currencies", cur.term())
	return o.term().Value
}

// Digest is the SHA-256 of the input document's JSON, recorded with a
// decision so the exact input can be matched later.
func (in *Input) Digest() (string, error) {
	b, err := in.JSON()
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:]), nil
}

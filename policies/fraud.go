package policies

import "github.com/open-policy-agent/opa/v1/ast"

// Fraud is what the fraud defences say about a charge (input.fraud); nil
// when they are off. Every rule that reads it can only deny or ask for a
// person's approval, never allow.
type Fraud struct {
	// Velocity are the counts and sums before this charge, per scope
	// (agent, mandate, card, merchant) and window (hour, day), in the
	// charge's currency.
	Velocity []VelocityStat
	// Limits are the thresholds the policy applies to Velocity.
	Limits []VelocityLimit
	// Anomaly is set while the agent is flagged as anomalous and no person
	// has cleared it.
	Anomaly *Anomaly
	// Screener is the fraud screener's answer.
	Screener *Screening
	// RiskSignals are what the agent said about the risk of the charge
	// ({type, score, action}); they can tighten, never loosen, a decision.
	RiskSignals []RiskSignal
}

// VelocityStat is one scope's totals over one window.
type VelocityStat struct {
	Scope, Window string
	Count         int
	Declines      int
	Amount        int64
}

// VelocityLimit is a threshold: Metric (count | amount) of Scope over
// Window at most Limit, else Action (deny | challenge).
type VelocityLimit struct {
	Scope, Window, Metric, Action string
	Limit                         int64
}

// Anomaly is an agent departing from its own history.
type Anomaly struct {
	Metric  string
	Score   float64
	Message string
}

// Screening is a fraud screener's answer: Decision is accept, review,
// reject or unavailable (no answer in time); FailClosed says an
// unavailable screener denies.
type Screening struct {
	Screener   string
	Decision   string
	Score      int
	Reasons    []string
	FailClosed bool
}

// RiskSignal is one risk signal an agent sent with its charge.
type RiskSignal struct {
	Type   string
	Score  float64
	Action string
}

func (f *Fraud) term() *ast.Term {
	if f == nil {
		return nil
	}
	vel := make([]*ast.Term, len(f.Velocity))
	for i, v := range f.Velocity {
		vel[i] = newObj(5).add("scope", str(v.Scope)).add("window", str(v.Window)).add("count", num(int64(v.Count))).
			add("declines", num(int64(v.Declines))).add("amount", num(v.Amount)).term()
	}
	lim := make([]*ast.Term, len(f.Limits))
	for i, l := range f.Limits {
		lim[i] = newObj(5).add("scope", str(l.Scope)).add("window", str(l.Window)).add("metric", str(l.Metric)).
			add("action", str(l.Action)).add("limit", num(l.Limit)).term()
	}
	o := newObj(5).add("velocity", ast.ArrayTerm(vel...)).add("limits", ast.ArrayTerm(lim...))
	if a := f.Anomaly; a != nil {
		o = o.add("anomaly", newObj(3).add("metric", str(a.Metric)).add("score", ast.FloatNumberTerm(a.Score)).
			add("message", str(a.Message)).term())
	}
	if s := f.Screener; s != nil {
		o = o.add("screener", newObj(5).add("screener", str(s.Screener)).add("decision", str(s.Decision)).
			add("score", num(int64(s.Score))).add("reasons", strs(s.Reasons)).add("fail_closed", ast.BooleanTerm(s.FailClosed)).term())
	}
	rs := make([]*ast.Term, len(f.RiskSignals))
	for i, r := range f.RiskSignals {
		rs[i] = newObj(3).add("type", str(r.Type)).add("score", ast.FloatNumberTerm(r.Score)).add("action", str(r.Action)).term()
	}
	return o.add("risk_signals", ast.ArrayTerm(rs...)).term()
}

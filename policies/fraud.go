package policies

import (
	"slices"
	"strings"
	"sync/atomic"

	"github.com/open-policy-agent/opa/v1/ast"
)

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

// term is input.fraud. The limits are the configuration's, the same on
// every charge: their term is built once and shared (terms are never
// changed once built), and the words the defences use (scopes, windows,
// metrics, actions, screener decisions) are shared terms too.
func (f *Fraud) term() *ast.Term {
	if f == nil {
		return nil
	}
	o := newObj(5).add("velocity", f.velocityTerm()).add("limits", limitsOf(f.Limits).term)
	if a := f.Anomaly; a != nil {
		o = o.add("anomaly", newObj(3).add("metric", key(a.Metric)).add("score", ast.FloatNumberTerm(a.Score)).
			add("message", str(a.Message)).term())
	}
	if s := f.Screener; s != nil {
		o = o.add("screener", screeningTerm(s))
	}
	// No risk signals: no member, so the two rules reading them stop at
	// their first reference.
	if len(f.RiskSignals) > 0 {
		rs := make([]*ast.Term, len(f.RiskSignals))
		for i, r := range f.RiskSignals {
			rs[i] = newObj(3).add("type", str(r.Type)).add("score", ast.FloatNumberTerm(r.Score)).add("action", key(r.Action)).term()
		}
		o = o.add("risk_signals", ast.ArrayTerm(rs...))
	}
	return o.term()
}

// statKeys are the keys of input.fraud.velocity, "scope/window", built
// once for the scopes and windows the defences use.
var statKeys = func() map[[2]string]string {
	m := map[[2]string]string{}
	for _, scope := range []string{"agent", "mandate", "card", "merchant"} {
		for _, window := range []string{"hour", "day"} {
			m[[2]string{scope, window}] = scope + "/" + window
		}
	}
	return m
}()

// statKey is the key of a scope's window in input.fraud.velocity.
func statKey(scope, window string) string {
	if k, ok := statKeys[[2]string{scope, window}]; ok {
		return k
	}
	return scope + "/" + window
}

// velocityTerm is input.fraud.velocity: "scope/window" → {count,
// declines, amount}, so a limit finds its window in one lookup (of two
// windows with the same key the later wins).
func (f *Fraud) velocityTerm() *ast.Term {
	o := newObj(len(f.Velocity))
	for i := range f.Velocity {
		v := &f.Velocity[i]
		o = o.add(statKey(v.Scope, v.Window), newObj(3).add("amount", num(v.Amount)).add("count", num(int64(v.Count))).
			add("declines", num(int64(v.Declines))).term())
	}
	return o.term()
}

// keyedStat is a window with its key in input.fraud.velocity.
type keyedStat struct {
	key string
	v   *VelocityStat
}

// keyedVelocity is f.Velocity with each window's key, in key order, the
// later of two windows with the same key kept (as in the policy's object).
func (f *Fraud) keyedVelocity() []keyedStat {
	out := make([]keyedStat, len(f.Velocity))
	for i := range f.Velocity {
		v := &f.Velocity[i]
		out[i] = keyedStat{statKey(v.Scope, v.Window), v}
	}
	slices.SortStableFunc(out, func(a, b keyedStat) int { return strings.Compare(a.key, b.key) })
	kept := out[:0]
	for i, k := range out {
		if i+1 == len(out) || out[i+1].key != k.key {
			kept = append(kept, k)
		}
	}
	return kept
}

// limitsCache holds the last limits' term and JSON with a copy of the
// limits they were built from.
var limitsCache atomic.Pointer[limitsEntry]

type limitsEntry struct {
	limits []VelocityLimit
	term   *ast.Term
	json   []byte
}

// limitsOf is input.fraud.limits, as a term and as JSON: the limits by
// metric (count, amount), each naming the key of its window in
// input.fraud.velocity. The limits are the configuration's, so both are
// built once and kept while the limits are the same (compared by value,
// so a caller changing its slice gets new ones).
func limitsOf(ls []VelocityLimit) *limitsEntry {
	if c := limitsCache.Load(); c != nil && slices.Equal(c.limits, ls) {
		return c
	}
	var metrics []string // in order of first use
	for _, l := range ls {
		if !slices.Contains(metrics, l.Metric) {
			metrics = append(metrics, l.Metric)
		}
	}
	o := newObj(len(metrics))
	for _, m := range metrics {
		var lim []*ast.Term
		for _, l := range ls {
			if l.Metric == m {
				lim = append(lim, newObj(5).add("action", key(l.Action)).add("limit", num(l.Limit)).
					add("scope", key(l.Scope)).add("stat", key(statKey(l.Scope, l.Window))).add("window", key(l.Window)).term())
			}
		}
		o = o.add(m, ast.ArrayTerm(lim...))
	}
	c := &limitsEntry{limits: slices.Clone(ls), term: o.term(), json: limitsJSON(ls, metrics)}
	limitsCache.Store(c)
	return c
}

// screeningCache holds the last screening without reasons and its term: a
// screener's usual answer (accept, the same score) is the same object on
// every charge.
var screeningCache atomic.Pointer[screeningEntry]

type screeningEntry struct {
	s    Screening
	term *ast.Term
}

func screeningTerm(s *Screening) *ast.Term {
	plain := len(s.Reasons) == 0
	if c := screeningCache.Load(); plain && c != nil && c.s.Screener == s.Screener && c.s.Decision == s.Decision &&
		c.s.Score == s.Score && c.s.FailClosed == s.FailClosed {
		return c.term
	}
	t := ast.ObjectTerm([2]*ast.Term{key("screener"), key(s.Screener)},
		[2]*ast.Term{key("decision"), key(s.Decision)}, [2]*ast.Term{key("score"), num(int64(s.Score))},
		[2]*ast.Term{key("reasons"), strs(s.Reasons)}, [2]*ast.Term{key("fail_closed"), ast.InternedTerm(s.FailClosed)})
	if plain {
		screeningCache.Store(&screeningEntry{s: Screening{Screener: s.Screener, Decision: s.Decision, Score: s.Score, FailClosed: s.FailClosed}, term: t})
	}
	return t
}

// Package policies holds the Rego policies (embedded) and the engine that
// evaluates them: compiled once in strict mode, planned once by OPA's
// planner, run per decision by the plan interpreter into a typed Decision.
package policies

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"slices"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/metrics"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/topdown"
)

//go:embed *.rego
var regoFS embed.FS

// ChargeQuery is the rule the engine evaluates.
const ChargeQuery = "data.perfectpay.charge.decision"

// Results of a decision.
const (
	Allow     = "allow"
	Deny      = "deny"
	Challenge = "challenge"
)

// Reason explains a decision.
type Reason struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Decision is the policy's answer about one charge.
type Decision struct {
	Result  string   `json:"result"`
	Reasons []Reason `json:"reasons"`
	// PolicyVersion identifies the policy modules that decided.
	PolicyVersion string `json:"policy_version"`
}

// Engine evaluates the charge policy. It is safe for concurrent use. By
// default the policy is compiled by OPA's planner and run by the plan
// interpreter (plan.go); EvaluatorTopdown runs it on OPA's own evaluator
// instead (a prepared query), which also runs the Rego test suite, the
// replay of recorded decisions, and the tests that hold the two to the
// same decisions.
type Engine struct {
	plan     *plan                  // nil with EvaluatorTopdown
	query    rego.PreparedEvalQuery // EvaluatorTopdown
	version  string
	velocity Velocity
}

// Evaluator names what evaluates the policy.
type Evaluator string

const (
	// EvaluatorPlan runs OPA's plan of the policy (the default).
	EvaluatorPlan Evaluator = "plan"
	// EvaluatorTopdown runs the policy on OPA's topdown evaluator.
	EvaluatorTopdown Evaluator = "topdown"
)

// chargeEntrypoint is ChargeQuery as the planner names it.
const chargeEntrypoint = "perfectpay/charge/decision"

// Velocity holds the velocity limits per hour (0 turns a limit off). The
// engine puts them into every input as input.limits.velocity.
type Velocity struct {
	AgentChargesPerHour    int `json:"agent_charges_per_hour"`
	AgentDeclinesPerHour   int `json:"agent_declines_per_hour"`
	MandateChargesPerHour  int `json:"mandate_charges_per_hour"`
	MandateDeclinesPerHour int `json:"mandate_declines_per_hour"`
}

// Modules parses the embedded policy modules (Rego v1). withTests adds the
// *_test.rego modules.
func Modules(withTests bool) (map[string]*ast.Module, error) {
	names, err := fs.Glob(regoFS, "*.rego")
	if err != nil {
		return nil, err
	}
	mods := map[string]*ast.Module{}
	for _, name := range names {
		if strings.HasSuffix(name, "_test.rego") && !withTests {
			continue
		}
		src, err := regoFS.ReadFile(name)
		if err != nil {
			return nil, err
		}
		m, err := ast.ParseModuleWithOpts(name, string(src), ast.ParserOptions{RegoVersion: ast.RegoV1})
		if err != nil {
			return nil, err
		}
		mods[name] = m
	}
	return mods, nil
}

// Compile compiles modules in strict mode, as `opa check --strict` does
// (unused variables, imports and arguments, shadowed input/data,
// deprecated built-ins are errors).
func Compile(mods map[string]*ast.Module) (*ast.Compiler, error) {
	c := ast.NewCompiler().WithStrict(true)
	if c.Compile(mods); c.Failed() {
		return nil, fmt.Errorf("policies: compile: %w", c.Errors)
	}
	return c, nil
}

// Version is the hash of the policy modules (not the tests): it changes
// whenever a rule does, and is recorded with every decision.
func Version() (string, error) {
	names, err := fs.Glob(regoFS, "*.rego")
	if err != nil {
		return "", err
	}
	slices.Sort(names)
	h := sha256.New()
	for _, name := range names {
		if strings.HasSuffix(name, "_test.rego") {
			continue
		}
		src, err := regoFS.ReadFile(name)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s\n%d\n", name, len(src))
		h.Write(src)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))[:16], nil
}

// New compiles the embedded policy in strict mode and plans the charge
// query (EvaluatorPlan).
func New(ctx context.Context, v Velocity) (*Engine, error) {
	return NewWith(ctx, v, EvaluatorPlan)
}

// NewWith is New with the evaluator named.
func NewWith(ctx context.Context, v Velocity, ev Evaluator) (*Engine, error) {
	mods, err := Modules(false)
	if err != nil {
		return nil, err
	}
	c, err := Compile(mods)
	if err != nil {
		return nil, err
	}
	version, err := Version()
	if err != nil {
		return nil, err
	}
	e := &Engine{version: version, velocity: v}
	switch ev {
	case EvaluatorPlan, "":
		if e.plan, err = compilePlan(ctx, chargeEntrypoint); err != nil {
			return nil, err
		}
	case EvaluatorTopdown:
		e.query, err = rego.New(
			rego.Query(ChargeQuery),
			rego.Compiler(c),
			rego.Strict(true),
			// A built-in error (say a malformed time) fails the evaluation,
			// and a failed evaluation denies, instead of silently skipping
			// a rule.
			rego.StrictBuiltinErrors(true),
		).PrepareForEval(ctx)
		if err != nil {
			return nil, fmt.Errorf("policies: prepare: %w", err)
		}
	default:
		return nil, fmt.Errorf("policies: unknown evaluator %q (plan or topdown)", ev)
	}
	return e, nil
}

// Version returns the policy version.
func (e *Engine) Version() string { return e.version }

// Velocity returns the velocity limits the engine applies (zero: all off).
func (e *Engine) Velocity() Velocity { return e.velocity }

// Decide evaluates the charge policy on in. An evaluation error is
// returned together with a deny decision; an undefined result denies.
func (e *Engine) Decide(ctx context.Context, in *Input) (Decision, error) {
	if in.Limits == nil {
		in.Limits = &InputLimits{Velocity: e.velocity}
		in.value = nil
	}
	if in.Currencies == nil {
		in.Currencies = in.currencies()
		in.value = nil
	}
	return e.decideValue(ctx, in.Value())
}

// decideValue decides on an input document.
func (e *Engine) decideValue(ctx context.Context, input ast.Value) (Decision, error) {
	// A callback registered with context.AfterFunc cancels the evaluation
	// (OPA would start a goroutine per evaluation to watch ctx; a context
	// that can never be cancelled needs neither). No metrics are
	// collected: nothing reads them.
	if err := ctx.Err(); err != nil {
		return e.deny("policy_error", "the policy could not be evaluated"), fmt.Errorf("policies: eval: %w", err)
	}
	cancel := topdown.NewCancel()
	if ctx.Done() != nil {
		defer context.AfterFunc(ctx, cancel.Cancel)()
	}
	var v *ast.Term
	if e.plan == nil {
		rs, err := e.query.Eval(ctx, rego.EvalParsedInput(input),
			rego.EvalExternalCancel(cancel), rego.EvalMetrics(metrics.NoOp()))
		if err != nil {
			return e.deny("policy_error", "the policy could not be evaluated"), fmt.Errorf("policies: eval: %w", err)
		}
		if len(rs) != 1 || len(rs[0].Expressions) != 1 {
			return e.deny("policy_undefined", "the policy reached no decision"), nil
		}
		x, err := ast.InterfaceToValue(rs[0].Expressions[0].Value)
		if err != nil {
			return e.deny("policy_error", "the policy returned a malformed decision"), err
		}
		v = ast.NewTerm(x)
	} else {
		rs, err := e.plan.eval(ctx, input, cancel)
		if err != nil {
			return e.deny("policy_error", "the policy could not be evaluated"), fmt.Errorf("policies: eval: %w", err)
		}
		if len(rs) == 1 {
			if res, ok := valueOf[ast.Object](rs[0]); ok {
				v = res.Get(ast.InternedTerm("result"))
			}
		}
		if v == nil {
			return e.deny("policy_undefined", "the policy reached no decision"), nil
		}
	}
	d, err := decodeTerm(v)
	if err != nil {
		return e.deny("policy_error", "the policy returned a malformed decision"), err
	}
	d.PolicyVersion = e.version
	return d, nil
}

func (e *Engine) deny(code, msg string) Decision {
	return Decision{Result: Deny, Reasons: []Reason{{Code: code, Message: msg}}, PolicyVersion: e.version}
}

// decode turns the policy's result value into a Decision.
func decode(v any) (Decision, error) {
	obj, ok := v.(map[string]any)
	if !ok {
		return Decision{}, fmt.Errorf("policies: decision is %T, not an object", v)
	}
	var d Decision
	d.Result, _ = obj["result"].(string)
	if d.Result != Allow && d.Result != Deny && d.Result != Challenge {
		return Decision{}, fmt.Errorf("policies: unknown result %q", d.Result)
	}
	list, _ := obj["reasons"].([]any)
	d.Reasons = make([]Reason, 0, len(list))
	for _, r := range list {
		ro, _ := r.(map[string]any)
		code, _ := ro["code"].(string)
		msg, _ := ro["message"].(string)
		d.Reasons = append(d.Reasons, Reason{Code: code, Message: msg})
	}
	if d.Result != Allow && len(d.Reasons) == 0 {
		return Decision{}, fmt.Errorf("policies: %s without a reason", d.Result)
	}
	return d, nil
}

// decodeTerm turns the policy's result term into a Decision, as decode
// does for its JSON form.
func decodeTerm(t *ast.Term) (Decision, error) {
	obj, ok := valueOf[ast.Object](t)
	if !ok {
		return Decision{}, fmt.Errorf("policies: decision is %v, not an object", ast.ValueName(t.Value))
	}
	var d Decision
	if s, ok := valueOf[ast.String](obj.Get(ast.InternedTerm("result"))); ok {
		d.Result = string(s)
	}
	if d.Result != Allow && d.Result != Deny && d.Result != Challenge {
		return Decision{}, fmt.Errorf("policies: unknown result %q", d.Result)
	}
	reasons := obj.Get(ast.InternedTerm("reasons"))
	if set, ok := valueOf[ast.Set](reasons); ok {
		reasons = ast.NewTerm(set.Sorted()) // as its JSON form lists it
	}
	list, _ := valueOf[*ast.Array](reasons)
	if list != nil {
		d.Reasons = make([]Reason, 0, list.Len())
		for i := range list.Len() {
			var r Reason
			if ro, ok := valueOf[ast.Object](list.Elem(i)); ok {
				if s, ok := valueOf[ast.String](ro.Get(ast.InternedTerm("code"))); ok {
					r.Code = string(s)
				}
				if s, ok := valueOf[ast.String](ro.Get(ast.InternedTerm("message"))); ok {
					r.Message = string(s)
				}
			}
			d.Reasons = append(d.Reasons, r)
		}
	} else {
		d.Reasons = []Reason{}
	}
	if d.Result != Allow && len(d.Reasons) == 0 {
		return Decision{}, fmt.Errorf("policies: %s without a reason", d.Result)
	}
	return d, nil
}

func newStrictCompiler() *ast.Compiler {
	return ast.NewCompiler().WithStrict(true).WithEnablePrintStatements(true)
}

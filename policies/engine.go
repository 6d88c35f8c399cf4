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

// Engine evaluates the charge policy. It is safe for concurrent use. The
// policy is compiled by OPA's planner and run by the plan interpreter
// (plan.go); OPA's own evaluator (topdown) runs the Rego test suite, the
// replay of recorded decisions, and a test that holds the two to the same
// decisions.
type Engine struct {
	plan     *plan
	version  string
	velocity Velocity
}

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
// query.
func New(ctx context.Context, v Velocity) (*Engine, error) {
	mods, err := Modules(false)
	if err != nil {
		return nil, err
	}
	if _, err := Compile(mods); err != nil {
		return nil, err
	}
	version, err := Version()
	if err != nil {
		return nil, err
	}
	p, err := compilePlan(ctx, strings.ReplaceAll(strings.TrimPrefix(ChargeQuery, "data."), ".", "/"))
	if err != nil {
		return nil, err
	}
	return &Engine{plan: p, version: version, velocity: v}, nil
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
	// A callback registered with context.AfterFunc cancels the evaluation
	// (a context that can never be cancelled needs none).
	if err := ctx.Err(); err != nil {
		return e.deny("policy_error", "the policy could not be evaluated"), fmt.Errorf("policies: eval: %w", err)
	}
	cancel := topdown.NewCancel()
	if ctx.Done() != nil {
		defer context.AfterFunc(ctx, cancel.Cancel)()
	}
	rs, err := e.plan.eval(ctx, in.Value(), cancel)
	if err != nil {
		return e.deny("policy_error", "the policy could not be evaluated"), fmt.Errorf("policies: eval: %w", err)
	}
	if len(rs) != 1 {
		return e.deny("policy_undefined", "the policy reached no decision"), nil
	}
	res, _ := valueOf[ast.Object](rs[0])
	var v *ast.Term
	if res != nil {
		v = res.Get(ast.InternedTerm("result"))
	}
	if v == nil {
		return e.deny("policy_undefined", "the policy reached no decision"), nil
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
	list, _ := valueOf[*ast.Array](obj.Get(ast.InternedTerm("reasons")))
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

// Package policies holds the Rego policies (embedded) and the engine that
// evaluates them: compiled once in strict mode, prepared once, evaluated per
// decision into a typed Decision.
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

// Engine evaluates the charge policy. It is safe for concurrent use.
type Engine struct {
	query    rego.PreparedEvalQuery
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

// New compiles the embedded policy and prepares the charge query.
func New(ctx context.Context, v Velocity) (*Engine, error) {
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
	pq, err := rego.New(
		rego.Query(ChargeQuery),
		rego.Compiler(c),
		rego.Strict(true),
		// A built-in error (say a malformed time) fails the evaluation, and
		// a failed evaluation denies, instead of silently skipping a rule.
		rego.StrictBuiltinErrors(true),
	).PrepareForEval(ctx)
	if err != nil {
		return nil, fmt.Errorf("policies: prepare: %w", err)
	}
	return &Engine{query: pq, version: version, velocity: v}, nil
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
	// OPA would start a goroutine per evaluation to watch ctx; a callback
	// registered with context.AfterFunc cancels the same way without one
	// (a context that can never be cancelled needs neither). No metrics
	// are collected: nothing reads them.
	if err := ctx.Err(); err != nil {
		return e.deny("policy_error", "the policy could not be evaluated"), fmt.Errorf("policies: eval: %w", err)
	}
	cancel := topdown.NewCancel()
	if ctx.Done() != nil {
		defer context.AfterFunc(ctx, cancel.Cancel)()
	}
	rs, err := e.query.Eval(ctx, rego.EvalParsedInput(in.Value()),
		rego.EvalExternalCancel(cancel), rego.EvalMetrics(metrics.NoOp()))
	if err != nil {
		return e.deny("policy_error", "the policy could not be evaluated"), fmt.Errorf("policies: eval: %w", err)
	}
	if len(rs) != 1 || len(rs[0].Expressions) != 1 {
		return e.deny("policy_undefined", "the policy reached no decision"), nil
	}
	d, err := decode(rs[0].Expressions[0].Value)
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

func newStrictCompiler() *ast.Compiler {
	return ast.NewCompiler().WithStrict(true).WithEnablePrintStatements(true)
}

package policies

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/ir"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/topdown"
	"github.com/stretchr/testify/require"
)

// topdownQuery prepares the charge query for OPA's own evaluator, in the
// engine's strict mode: the reference the plan interpreter is held to.
func topdownQuery(t testing.TB) rego.PreparedEvalQuery {
	t.Helper()
	mods, err := Modules(false)
	require.NoError(t, err)
	c, err := Compile(mods)
	require.NoError(t, err)
	pq, err := rego.New(rego.Query(ChargeQuery), rego.Compiler(c), rego.Strict(true),
		rego.StrictBuiltinErrors(true)).PrepareForEval(context.Background())
	require.NoError(t, err)
	return pq
}

// bothDecide evaluates input with topdown and with the plan. Each result
// is the decision value, nil when undefined; an error is reported as such.
func bothDecide(t testing.TB, pq rego.PreparedEvalQuery, p *plan, input ast.Value) (want, got ast.Value, wantErr, gotErr error) {
	t.Helper()
	ctx := context.Background()
	rs, wantErr := pq.Eval(ctx, rego.EvalParsedInput(input))
	if wantErr == nil && len(rs) == 1 {
		want, wantErr = ast.InterfaceToValue(rs[0].Expressions[0].Value)
		require.NoError(t, wantErr)
	}
	res, gotErr := p.eval(ctx, input, topdown.NewCancel())
	if gotErr == nil && len(res) == 1 {
		if obj, ok := valueOf[ast.Object](res[0]); ok {
			if v := obj.Get(ast.InternedTerm("result")); v != nil {
				// As topdown's results are: JSON, sets as arrays.
				j, err := ast.JSON(v.Value)
				require.NoError(t, err)
				got, err = ast.InterfaceToValue(j)
				require.NoError(t, err)
			}
		}
	}
	return want, got, wantErr, gotErr
}

func requireSameDecision(t testing.TB, pq rego.PreparedEvalQuery, p *plan, name string, input ast.Value) {
	t.Helper()
	want, got, wantErr, gotErr := bothDecide(t, pq, p, input)
	if (wantErr == nil) != (gotErr == nil) {
		t.Fatalf("%s: topdown error %v, plan error %v\ninput: %v", name, wantErr, gotErr, input)
	}
	if wantErr != nil {
		return
	}
	if (want == nil) != (got == nil) || (want != nil && want.Compare(got) != 0) {
		t.Fatalf("%s: decisions differ\ntopdown: %v\nplan:    %v\ninput: %v", name, want, got, input)
	}
}

func chargePlan(t testing.TB) *plan {
	t.Helper()
	p, err := compilePlan(context.Background(), "perfectpay/charge/decision")
	require.NoError(t, err)
	return p
}

// regoCaseInputs are the inputs of the Rego test suite's table-driven
// cases (charge_test.rego: each case patches the allowed base input),
// built by OPA from the suite itself, plus the suite's empty input.
func regoCaseInputs(t testing.TB) []ast.Value {
	t.Helper()
	mods, err := Modules(true)
	require.NoError(t, err)
	c := newStrictCompiler()
	c.Compile(mods)
	require.False(t, c.Failed(), "%v", c.Errors)
	rs, err := rego.New(rego.Compiler(c), rego.Query(`
		ins := array.concat(
			array.concat([json.patch(data.perfectpay.charge_test.base, tc.patch) | some tc in data.perfectpay.charge_test.cases],
				[data.perfectpay.charge_test.with_fraud(tc.patch) | some tc in data.perfectpay.charge_test.fraud_cases]),
			[{}, data.perfectpay.charge_test.base])
		n := count(data.perfectpay.charge_test.cases) + count(data.perfectpay.charge_test.fraud_cases) + 2
	`)).Eval(context.Background())
	require.NoError(t, err)
	require.Len(t, rs, 1)
	list, ok := rs[0].Bindings["ins"].([]any)
	require.True(t, ok)
	require.Equal(t, json.Number(fmt.Sprint(len(list))), rs[0].Bindings["n"], "a case's input is missing")
	require.Greater(t, len(list), 50, "the Rego suite's cases were not found")
	out := make([]ast.Value, 0, len(list))
	for _, x := range list {
		v, err := ast.InterfaceToValue(x)
		require.NoError(t, err)
		out = append(out, v)
	}
	return out
}

// TestPlanAgreesOnTheRegoCases: on every input of the Rego suite, the plan
// interpreter and OPA's evaluator reach the same decision, reasons and
// messages included.
func TestPlanAgreesOnTheRegoCases(t *testing.T) {
	pq, p := topdownQuery(t), chargePlan(t)
	for i, in := range regoCaseInputs(t) {
		requireSameDecision(t, pq, p, fmt.Sprintf("case %d", i), in)
	}
}

// perturb returns input with the value at path replaced by with (removed
// when with is nil).
func perturb(input ast.Value, path ast.Ref, with *ast.Term) ast.Value {
	cp := input.(ast.Object).Copy()
	parent := ast.Value(cp)
	for i, k := range path {
		last := i == len(path)-1
		switch v := parent.(type) {
		case ast.Object:
			if last {
				if with == nil {
					nv := ast.NewObject()
					v.Foreach(func(kk, vv *ast.Term) {
						if kk.Value.Compare(k.Value) != 0 {
							nv.Insert(kk, vv)
						}
					})
					setIn(cp, path[:i], ast.NewTerm(nv))
					return cp
				}
				v.Insert(k, with)
				return cp
			}
			child := v.Get(k)
			c2 := child.Copy()
			v.Insert(k, c2)
			parent = c2.Value
		case *ast.Array:
			idx, _ := k.Value.(ast.Number).Int()
			if last {
				if with == nil {
					elems := []*ast.Term{}
					for j := range v.Len() {
						if j != idx {
							elems = append(elems, v.Elem(j))
						}
					}
					setIn(cp, path[:i], ast.ArrayTerm(elems...))
					return cp
				}
				v.Set(idx, with)
				return cp
			}
			c2 := v.Elem(idx).Copy()
			v.Set(idx, c2)
			parent = c2.Value
		}
	}
	return cp
}

func setIn(root ast.Object, path ast.Ref, t *ast.Term) {
	var cur ast.Value = root
	for i, k := range path {
		last := i == len(path)-1
		switch v := cur.(type) {
		case ast.Object:
			if last {
				v.Insert(k, t)
				return
			}
			cur = v.Get(k).Value
		case *ast.Array:
			idx, _ := k.Value.(ast.Number).Int()
			if last {
				v.Set(idx, t)
				return
			}
			cur = v.Elem(idx).Value
		}
	}
}

// paths lists the path of every value in v (objects and arrays walked).
func paths(v ast.Value, prefix ast.Ref, out *[]ast.Ref) {
	switch x := v.(type) {
	case ast.Object:
		x.Foreach(func(k, e *ast.Term) {
			p := append(slices.Clone(prefix), k)
			*out = append(*out, p)
			paths(e.Value, p, out)
		})
	case *ast.Array:
		for i := range x.Len() {
			p := append(slices.Clone(prefix), ast.InternedTerm(i))
			*out = append(*out, p)
			paths(x.Elem(i).Value, p, out)
		}
	}
}

// TestPlanAgreesOnPerturbedInputs: every value of the allowed input (and
// of the input with the fraud document) removed, or replaced by null, a
// string, a number, an empty array, an empty object or a malformed time:
// the two evaluators agree on each, errors included.
func TestPlanAgreesOnPerturbedInputs(t *testing.T) {
	pq, p := topdownQuery(t), chargePlan(t)
	ins := regoCaseInputs(t)
	bases := []ast.Value{ins[len(ins)-1]}
	for _, in := range ins {
		if obj, ok := in.(ast.Object); ok && obj.Get(ast.InternedTerm("fraud")) != nil {
			bases = append(bases, in) // the first fraud case: the whole fraud document
			break
		}
	}
	require.Len(t, bases, 2)
	withs := []*ast.Term{nil, ast.NullTerm(), ast.StringTerm("x"), ast.IntNumberTerm(0), ast.IntNumberTerm(-1),
		ast.ArrayTerm(), ast.ObjectTerm(), ast.StringTerm("2026-13-99T00:00:00Z"), ast.BooleanTerm(true)}
	n := 0
	for _, w := range withs[1:] { // the whole input replaced: not an object, or empty
		requireSameDecision(t, pq, p, fmt.Sprintf("input := %v", w), w.Value)
		n++
	}
	for _, base := range bases {
		var ps []ast.Ref
		paths(base, nil, &ps)
		for _, path := range ps {
			for _, w := range withs {
				requireSameDecision(t, pq, p, fmt.Sprintf("%v := %v", path, w), perturb(base, path, w))
				n++
			}
		}
	}
	t.Logf("%d perturbed inputs", n)
}

// FuzzPlanAgreesWithTopdown: on any JSON input document, the plan
// interpreter and OPA's evaluator reach the same decision (or both fail).
// The seeds are the Rego suite's inputs.
func FuzzPlanAgreesWithTopdown(f *testing.F) {
	for _, in := range regoCaseInputs(f) {
		b, err := json.Marshal(ast.NewTerm(in))
		require.NoError(f, err)
		f.Add(b)
	}
	pq, p := topdownQuery(f), chargePlan(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		var x any
		if err := json.Unmarshal(b, &x); err != nil {
			return
		}
		v, err := ast.InterfaceToValue(x)
		if err != nil {
			return
		}
		requireSameDecision(t, pq, p, "fuzz", v)
	})
}

// TestPlanRefusesWhatItDoesNotRun: a plan with a statement the
// interpreter has no rule for is refused when loaded, not skipped.
func TestPlanRefusesWhatItDoesNotRun(t *testing.T) {
	pol := &ir.Policy{
		Static: &ir.Static{},
		Plans: &ir.Plans{Plans: []*ir.Plan{{Name: "x", Blocks: []*ir.Block{{Stmts: []ir.Stmt{
			&ir.WithStmt{Local: ir.Input, Block: &ir.Block{}},
		}}}}}},
		Funcs: &ir.Funcs{},
	}
	_, err := loadPlan(pol)
	require.ErrorContains(t, err, "WithStmt")

	pol.Plans.Plans[0].Blocks[0].Stmts = []ir.Stmt{&ir.CallStmt{Func: "no.such.builtin"}}
	_, err = loadPlan(pol)
	require.ErrorContains(t, err, "unknown function")
}

// BenchmarkDecideTopdown is BenchmarkDecide's decision made by OPA's
// evaluator (prepared query, same input document): the plan interpreter's
// baseline in one run.
func BenchmarkDecideTopdown(b *testing.B) {
	e := newEngine(b)
	pq := topdownQuery(b)
	in := baseInput()
	in.Limits = &InputLimits{Velocity: e.velocity}
	in.Currencies = in.currencies()
	ctx := context.Background()
	timeDecisions(b, func() (Decision, error) {
		rs, err := pq.Eval(ctx, rego.EvalParsedInput(in.Value()))
		if err != nil || len(rs) != 1 {
			return Decision{}, fmt.Errorf("%d results: %w", len(rs), err)
		}
		return decode(rs[0].Expressions[0].Value)
	})
}

// planSnippets are small policies, each using Rego constructs the charge
// policy may come to use, so the interpreter's rules for them are held to
// topdown's answers too: sets (iteration and lookup), objects, nested
// `every`, negation, functions with several clauses and else chains,
// partial rules, comprehensions, array patterns and indexes, conflicts
// and built-in errors.
var planSnippets = map[string]string{
	"sets": `
s := {"a", "b", "c"}
out := {"kept": [x | some x in s; x != "b"], "has": s[input.k], "in": input.k in s}`,
	"set lookup undefined": `
s := {"a", "b"}
default out := "none"
out := s[input.k]`,
	"objects": `
out := {k: v | some k, v in input.o; v > 1}`,
	"nested every": `
out if {
	every x in input.xs {
		every y in input.ys { x != y }
	}
}`,
	"negation": `
default out := false
out if not input.x == 1`,
	"functions": `
f(x) := "pos" if x > 0 else := "neg" if x < 0 else := "zero"
g(1) := "one"
g(2) := "two"
out := [f(input.n), object.get({"g": g(input.n)}, "g", "none")]`,
	"function undefined": `
g(1) := "one"
default out := "none"
out := g(input.n)`,
	"partial sets and objects": `
ps contains x if { some x in input.xs; x > 1 }
po[k] := v if { some k, v in input.o }
out := {"ps": ps, "po": po}`,
	"complete rule conflict": `
out := 1 if input.a
out := 2 if input.b`,
	"partial object conflict": `
po[k] := v if { some v in input.xs; k := "same" }
out := po`,
	"comprehensions": `
out := {"a": [y | some x in input.xs; y := x * 2], "s": {y | some x in input.xs; y := x % 2}, "o": {k: x | some x in input.xs; k := sprintf("%d", [x])}}`,
	"array pattern and index": `
out := {"first": a, "last": c, "at": input.xs[input.i]} if [a, _, c] := input.xs`,
	"built-in error": `
out := input.a + 1`,
	"time": `
out := time.parse_rfc3339_ns(input.t) < time.parse_rfc3339_ns("2026-01-01T00:00:00Z")`,
	"some with break out": `
out if {
	some x in input.xs
	x == input.n
}`,
	"strings and counts": `
out := {"n": count(input.s), "c": concat(",", [input.s, "z"]), "u": upper(input.s)}`,
	"array index": `
default out := "none"
out := input.xs[input.i]`,
	"else with default": `
default out := {"r": "deny"}
out := {"r": "a"} if { count(input.xs) > 3 } else := {"r": "b"} if { count(input.xs) > 1 }`,
}

var planSnippetInputs = []string{
	`{}`,
	`{"k": "a", "o": {"x": 1, "y": 2, "z": 3}, "xs": [1, 2, 3], "ys": [4, 5], "x": 2, "n": 1, "i": 1, "a": 1, "s": "héllo", "t": "2025-05-05T00:00:00Z"}`,
	`{"k": "b", "o": {"x": 5}, "xs": [3, 2], "ys": [3], "x": 1, "n": -4, "i": 5, "a": true, "b": true, "s": "", "t": "2027-01-01T00:00:00Z"}`,
	`{"k": "q", "o": [], "xs": [2, 2, 2, 2], "ys": [], "x": "1", "n": 0, "i": -1, "a": "x", "t": "not a time"}`,
	`{"k": 1, "o": {"1": "one"}, "xs": "abc", "ys": {"a": 1}, "n": 2, "i": 1.5, "b": 1, "s": ["x"], "t": 5}`,
}

// TestPlanAgreesOnSnippets runs each snippet with each input through both
// evaluators.
func TestPlanAgreesOnSnippets(t *testing.T) {
	ctx := context.Background()
	for name, src := range planSnippets {
		t.Run(name, func(t *testing.T) {
			mod := "package t\n" + src + "\n"
			fsys := fstest.MapFS{"t.rego": {Data: []byte(mod)}}
			p, err := planModules(ctx, fsys, []string{"t.rego"}, "t/out")
			require.NoError(t, err)
			m, err := ast.ParseModuleWithOpts("t.rego", mod, ast.ParserOptions{RegoVersion: ast.RegoV1})
			require.NoError(t, err)
			pq, err := rego.New(rego.Query("data.t.out"), rego.ParsedModule(m), rego.StrictBuiltinErrors(true)).PrepareForEval(ctx)
			require.NoError(t, err)
			for i, js := range planSnippetInputs {
				v, err := ast.ValueFromReader(strings.NewReader(js))
				require.NoError(t, err)
				requireSameDecision(t, pq, p, fmt.Sprintf("%s, input %d", name, i), v)
			}
		})
	}
}

// TestPlanRefusesWith: the planner's WithStmt (Rego's `with`) is refused
// when the plan is loaded, and so is a built-in the interpreter does not
// run: one that reads the clock (it would read an empty one and skip the
// rule) and one that answers several values.
func TestPlanRefusesWith(t *testing.T) {
	mod := "package t\nx := input.a\nout if {\n\tx == 1 with input.a as 1\n}\n"
	_, err := planModules(context.Background(), fstest.MapFS{"t.rego": {Data: []byte(mod)}}, []string{"t.rego"}, "t/out")
	require.ErrorContains(t, err, "WithStmt")
	for _, src := range []string{
		"default out := \"allow\"\nout := \"deny\" if time.now_ns() > input.exp\n",
		"out := [x | walk(input, x)]\n",
	} {
		_, err := planModules(context.Background(), fstest.MapFS{"t.rego": {Data: []byte("package t\n" + src)}}, []string{"t.rego"}, "t/out")
		require.ErrorContains(t, err, "is not one the interpreter runs", src)
	}
}

// TestPlanCancelled: a cancelled evaluation stops with an error at its
// next rule or loop, which denies.
func TestPlanCancelled(t *testing.T) {
	p := chargePlan(t)
	c := topdown.NewCancel()
	c.Cancel()
	_, err := p.eval(context.Background(), regoCaseInputs(t)[0], c)
	require.ErrorContains(t, err, "cancelled")
}

// TestEnginesDecideTheSame: the engine on the plan and the engine on
// topdown return the same Decision (result, reasons, messages, version) on
// the Rego suite's inputs and on every perturbed input.
func TestEnginesDecideTheSame(t *testing.T) {
	ctx := context.Background()
	onPlan, err := NewWith(ctx, Velocity{}, EvaluatorPlan)
	require.NoError(t, err)
	onTopdown, err := NewWith(ctx, Velocity{}, EvaluatorTopdown)
	require.NoError(t, err)
	ins := regoCaseInputs(t)
	all := slices.Clone(ins)
	var ps []ast.Ref
	base := ins[len(ins)-1]
	paths(base, nil, &ps)
	for _, path := range ps {
		for _, w := range []*ast.Term{nil, ast.NullTerm(), ast.StringTerm("x"), ast.IntNumberTerm(0)} {
			all = append(all, perturb(base, path, w))
		}
	}
	for i, in := range all {
		want, wantErr := onTopdown.decideValue(ctx, in)
		got, gotErr := onPlan.decideValue(ctx, in)
		require.Equal(t, wantErr == nil, gotErr == nil, "input %d: %v / %v", i, wantErr, gotErr)
		require.Equal(t, want, got, "input %d: %v", i, in)
	}
	_, err = NewWith(ctx, Velocity{}, "wasm")
	require.ErrorContains(t, err, "unknown evaluator")
}

// TestDecodeTermTakesASetOfReasons: reasons given as a set decode as
// their JSON form (a sorted list) does.
func TestDecodeTermTakesASetOfReasons(t *testing.T) {
	v := ast.MustParseTerm(`{"result": "challenge", "reasons": {{"code": "b", "message": "2"}, {"code": "a", "message": "1"}}}`)
	got, err := decodeTerm(v)
	require.NoError(t, err)
	j, err := ast.JSON(v.Value)
	require.NoError(t, err)
	want, err := decode(j)
	require.NoError(t, err)
	require.Equal(t, want, got)
	require.Equal(t, []Reason{{"a", "1"}, {"b", "2"}}, got.Reasons)
}

// TestPlanConcurrentEvaluations: evaluations share the plan, its constant
// terms and OPA's interned values; run side by side (under -race in make
// test) they neither race nor change one another's decisions.
func TestPlanConcurrentEvaluations(t *testing.T) {
	p := chargePlan(t)
	ins := regoCaseInputs(t)
	want := make([]ast.Value, len(ins))
	for i, in := range ins {
		rs, err := p.eval(context.Background(), in, nil)
		if err == nil && len(rs) == 1 {
			want[i] = rs[0].Value
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for round := range 5 {
				for j := range ins {
					i := (j + g*7 + round) % len(ins)
					rs, err := p.eval(context.Background(), ins[i], nil)
					var got ast.Value
					if err == nil && len(rs) == 1 {
						got = rs[0].Value
					}
					if (got == nil) != (want[i] == nil) || (got != nil && got.Compare(want[i]) != 0) {
						errs <- fmt.Errorf("input %d: %v, want %v", i, got, want[i])
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for i, in := range regoCaseInputs(t) {
		require.Zero(t, in.Compare(ins[i]), "input %d was changed by its evaluations", i)
	}
}

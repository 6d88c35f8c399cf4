package policies

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/compile"
	"github.com/open-policy-agent/opa/v1/ir"
	"github.com/open-policy-agent/opa/v1/topdown"
)

// A plan is the charge policy compiled by OPA's planner into its
// intermediate representation (package ir: the plan the Wasm target is
// built from), run here by a small interpreter instead of OPA's topdown
// evaluator. The Rego is the same and still decides: the planner, not this
// file, turns each rule into statements. What the interpreter saves is
// topdown's unification, backtracking and per-expression bookkeeping.
//
// Semantics follow OPA's Wasm compiler, which is the reference for the IR:
//   - a statement that is undefined ends the block it is in;
//   - a BreakStmt with index i leaves i+1 enclosing blocks (0: its own);
//   - each block of a BlockStmt is one level, run in turn;
//   - a ScanStmt's body is two levels (0: next element, 1: end the scan);
//   - a NotStmt's block is one level; the statement holds when it is
//     undefined;
//   - a function of two parameters (input, data) is a rule and is computed
//     once per evaluation.
//
// Built-in functions are OPA's own (topdown's implementations), limited to
// planBuiltins; their errors end the evaluation, as
// rego.StrictBuiltinErrors does for topdown. A plan that holds a statement
// or a built-in this interpreter does not run is refused when it is
// loaded, never skipped at evaluation.
//
// One difference from topdown is by design and fails closed: topdown's
// rule index may skip a rule body whose other conditions cannot hold, so
// a built-in error in that body never happens; the plan runs the body in
// order and the error denies the charge (policy_error).
type plan struct {
	strs  []*ast.Term
	nums  map[int]*ast.Term
	funcs []*planFunc
	calls map[*ir.CallStmt]callee
	main  []*ir.Block
	mainN int
}

type planFunc struct {
	name    string
	params  []ir.Local
	ret     ir.Local
	blocks  []*ir.Block
	nlocals int
	rule    bool
	idx     int
}

// callee is what a CallStmt calls: a planned function or a built-in.
type callee struct {
	fn      *planFunc
	builtin topdown.BuiltinFunc
	name    string
}

// planBuiltins are the built-in functions a plan may call: each is
// deterministic, answers at most one value, and needs nothing from the
// evaluation's context (no clock, randomness, network, cache or print
// hook, all of which topdown gives its built-ins and the interpreter does
// not). A plan calling any other is refused when it is loaded: say
// time.now_ns, which would read an empty clock, or walk, which answers
// several values. Add one here only with a test in plan_test.go that
// holds it to topdown.
var planBuiltins = map[string]bool{
	// what charge.rego calls
	"array.concat": true, "concat": true, "count": true, "div": true, "gt": true, "gte": true,
	"internal.member_2": true, "is_array": true, "is_number": true, "is_object": true,
	"is_string": true, "lt": true, "lte": true, "minus": true, "neq": true, "object.get": true,
	"plus": true, "rem": true, "sort": true, "sprintf": true, "time.parse_rfc3339_ns": true,
	// held to topdown by the snippets in plan_test.go
	"mul": true, "upper": true,
}

var (
	planTrue  = ast.BooleanTerm(true)
	planFalse = ast.BooleanTerm(false)
	planData  = ast.NewTerm(ast.NewObject())

	errPlanConflict = errors.New("policies: plan: conflicting values for one document")
)

// breaks returned by exec besides a break index: the block ran to its end,
// or a ReturnLocalStmt ended the function.
const (
	blockDone = -1
	funcDone  = -2
)

// compilePlan plans entrypoint (a rule path such as
// perfectpay/charge/decision) over the embedded policy modules and loads
// the plan.
func compilePlan(ctx context.Context, entrypoint string) (*plan, error) {
	names, err := fs.Glob(regoFS, "*.rego")
	if err != nil {
		return nil, err
	}
	var paths []string
	for _, n := range names {
		if !strings.HasSuffix(n, "_test.rego") {
			paths = append(paths, n)
		}
	}
	return planModules(ctx, regoFS, paths, entrypoint)
}

// planModules plans entrypoint over the Rego modules at paths in fsys.
func planModules(ctx context.Context, fsys fs.FS, paths []string, entrypoint string) (*plan, error) {
	c := compile.New().WithTarget(compile.TargetPlan).WithFS(fsys).WithPaths(paths...).
		WithEntrypoints(entrypoint).WithRegoVersion(ast.RegoV1)
	if err := c.Build(ctx); err != nil {
		return nil, fmt.Errorf("policies: plan: %w", err)
	}
	b := c.Bundle()
	if b == nil || len(b.PlanModules) != 1 {
		return nil, errors.New("policies: plan: the planner produced no plan")
	}
	var p ir.Policy
	if err := json.Unmarshal(b.PlanModules[0].Raw, &p); err != nil {
		return nil, fmt.Errorf("policies: plan: %w", err)
	}
	return loadPlan(&p)
}

// loadPlan checks that every statement of p is one the interpreter runs
// and resolves every call once.
func loadPlan(p *ir.Policy) (*plan, error) {
	if p.Plans == nil || len(p.Plans.Plans) != 1 {
		return nil, errors.New("policies: plan: want exactly one plan")
	}
	out := &plan{nums: map[int]*ast.Term{}, calls: map[*ir.CallStmt]callee{}}
	if p.Static != nil {
		for _, s := range p.Static.Strings {
			out.strs = append(out.strs, ast.StringTerm(s.Value))
		}
	}
	byName := map[string]*planFunc{}
	if p.Funcs != nil {
		for i, f := range p.Funcs.Funcs {
			pf := &planFunc{name: f.Name, params: f.Params, ret: f.Return, blocks: f.Blocks, idx: i,
				rule: len(f.Params) == 2}
			pf.nlocals = int(f.Return) + 1
			for _, l := range f.Params {
				pf.nlocals = max(pf.nlocals, int(l)+1)
			}
			out.funcs = append(out.funcs, pf)
			byName[f.Name] = pf
		}
	}
	out.main = p.Plans.Plans[0].Blocks
	out.mainN = int(ir.Unused)
	check := func(blocks []*ir.Block, n *int) error {
		var bad error
		var visit func(b *ir.Block)
		visit = func(b *ir.Block) {
			for _, s := range b.Stmts {
				if bad != nil {
					return
				}
				if err := out.checkStmt(s, n, byName); err != nil {
					bad = err
					return
				}
				switch s := s.(type) {
				case *ir.BlockStmt:
					for _, sb := range s.Blocks {
						visit(sb)
					}
				case *ir.ScanStmt:
					visit(s.Block)
				case *ir.NotStmt:
					visit(s.Block)
				}
			}
		}
		for _, b := range blocks {
			visit(b)
		}
		return bad
	}
	if err := check(out.main, &out.mainN); err != nil {
		return nil, err
	}
	for _, f := range out.funcs {
		if err := check(f.blocks, &f.nlocals); err != nil {
			return nil, fmt.Errorf("%w (in %s)", err, f.name)
		}
	}
	return out, nil
}

// checkStmt accepts the statements the interpreter runs, records the
// largest local each one names in *n, resolves calls and makes the number
// constants.
func (p *plan) checkStmt(s ir.Stmt, n *int, byName map[string]*planFunc) error {
	use := func(ls ...ir.Local) {
		for _, l := range ls {
			*n = max(*n, int(l)+1)
		}
	}
	op := func(o *ir.Operand) error {
		// A plan read from JSON holds pointers; keep the values.
		switch v := o.Value.(type) {
		case *ir.Local:
			o.Value = *v
		case *ir.StringIndex:
			o.Value = *v
		case *ir.Bool:
			o.Value = *v
		}
		switch v := o.Value.(type) {
		case ir.Local:
			use(v)
		case ir.StringIndex:
			if int(v) < 0 || int(v) >= len(p.strs) {
				return fmt.Errorf("policies: plan: string %d out of range", v)
			}
		case ir.Bool:
		default:
			return fmt.Errorf("policies: plan: operand %T", o.Value)
		}
		return nil
	}
	ops := func(os ...*ir.Operand) error {
		for _, o := range os {
			if err := op(o); err != nil {
				return err
			}
		}
		return nil
	}
	switch s := s.(type) {
	case *ir.CallStmt:
		use(s.Result)
		if f, ok := byName[s.Func]; ok {
			if len(s.Args) != len(f.params) {
				return fmt.Errorf("policies: plan: %s called with %d arguments", s.Func, len(s.Args))
			}
			p.calls[s] = callee{fn: f, name: s.Func}
		} else {
			b := topdown.GetBuiltin(s.Func)
			if b == nil {
				return fmt.Errorf("policies: plan: unknown function %s", s.Func)
			}
			if !planBuiltins[s.Func] {
				return fmt.Errorf("policies: plan: built-in %s is not one the interpreter runs", s.Func)
			}
			p.calls[s] = callee{builtin: b, name: s.Func}
		}
		for i := range s.Args {
			if err := op(&s.Args[i]); err != nil {
				return err
			}
		}
	case *ir.DotStmt:
		use(s.Target)
		return ops(&s.Source, &s.Key)
	case *ir.AssignVarStmt:
		use(s.Target)
		return op(&s.Source)
	case *ir.AssignVarOnceStmt:
		use(s.Target)
		return op(&s.Source)
	case *ir.AssignIntStmt:
		use(s.Target)
	case *ir.ResetLocalStmt:
		use(s.Target)
	case *ir.MakeNullStmt:
		use(s.Target)
	case *ir.MakeNumberIntStmt:
		use(s.Target)
	case *ir.MakeNumberRefStmt:
		use(s.Target)
		if s.Index < 0 || s.Index >= len(p.strs) {
			return fmt.Errorf("policies: plan: number %d out of range", s.Index)
		}
		num := ast.NumberTerm(json.Number(p.strs[s.Index].Value.(ast.String)))
		p.nums[s.Index] = num
	case *ir.MakeArrayStmt:
		use(s.Target)
	case *ir.MakeObjectStmt:
		use(s.Target)
	case *ir.MakeSetStmt:
		use(s.Target)
	case *ir.LenStmt:
		use(s.Target)
		return op(&s.Source)
	case *ir.EqualStmt:
		return ops(&s.A, &s.B)
	case *ir.NotEqualStmt:
		return ops(&s.A, &s.B)
	case *ir.IsArrayStmt:
		return op(&s.Source)
	case *ir.IsObjectStmt:
		return op(&s.Source)
	case *ir.IsSetStmt:
		return op(&s.Source)
	case *ir.IsDefinedStmt:
		use(s.Source)
	case *ir.IsUndefinedStmt:
		use(s.Source)
	case *ir.ArrayAppendStmt:
		use(s.Array)
		return op(&s.Value)
	case *ir.ObjectInsertStmt:
		use(s.Object)
		return ops(&s.Key, &s.Value)
	case *ir.ObjectInsertOnceStmt:
		use(s.Object)
		return ops(&s.Key, &s.Value)
	case *ir.SetAddStmt:
		use(s.Set)
		return op(&s.Value)
	case *ir.ScanStmt:
		use(s.Source, s.Key, s.Value)
	case *ir.ReturnLocalStmt:
		use(s.Source)
	case *ir.ResultSetAddStmt:
		use(s.Value)
	case *ir.BlockStmt, *ir.BreakStmt, *ir.NotStmt, *ir.NopStmt:
	default:
		// WithStmt, CallDynamicStmt and ObjectMergeStmt: the charge policy
		// has no `with`, no dynamic data calls and no merged documents.
		return fmt.Errorf("policies: plan: statement %T is not supported", s)
	}
	return nil
}

// planRun is one evaluation.
type planRun struct {
	p       *plan
	bctx    topdown.BuiltinContext
	cancel  topdown.Cancel
	memo    []*ast.Term
	results []*ast.Term
}

// eval runs the plan on input and returns its result set: one object
// {"result": value} per result.
func (p *plan) eval(ctx context.Context, input ast.Value, cancel topdown.Cancel) (_ []*ast.Term, err error) {
	// A panic in a built-in or in the interpreter fails the evaluation
	// (the charge is then denied), not the request's goroutine.
	defer func() {
		if x := recover(); x != nil {
			err = fmt.Errorf("policies: plan: evaluation panicked: %v", x)
		}
	}()
	r := &planRun{
		p:      p,
		bctx:   topdown.BuiltinContext{Context: ctx, Cancel: cancel},
		cancel: cancel,
		memo:   make([]*ast.Term, len(p.funcs)),
	}
	frame := make([]*ast.Term, p.mainN)
	frame[ir.Input] = ast.NewTerm(input)
	frame[ir.Data] = planData
	for _, b := range p.main {
		k, err := r.exec(frame, b)
		if err != nil {
			return nil, err
		}
		if k > 0 || k == funcDone {
			return nil, errors.New("policies: plan: a plan block broke out of the plan")
		}
	}
	return r.results, nil
}

func (r *planRun) read(frame []*ast.Term, o ir.Operand) *ast.Term {
	switch v := o.Value.(type) {
	case ir.Local:
		return frame[v]
	case ir.StringIndex:
		return r.p.strs[v]
	case ir.Bool:
		if v {
			return planTrue
		}
		return planFalse
	}
	return nil
}

// exec runs block b: blockDone when it ran to its end, funcDone when a
// ReturnLocalStmt ended the function, or the index of the break that left
// it (0: b itself; the caller leaves i more levels).
func (r *planRun) exec(frame []*ast.Term, b *ir.Block) (int, error) {
	for _, s := range b.Stmts {
		switch s := s.(type) {
		case *ir.AssignVarStmt:
			frame[s.Target] = r.read(frame, s.Source)
		case *ir.DotStmt:
			src, ok := s.Source.Value.(ir.Local)
			if !ok {
				return 0, nil
			}
			v := dot(frame[src], r.read(frame, s.Key))
			if v == nil {
				return 0, nil
			}
			frame[s.Target] = v
		case *ir.CallStmt:
			v, err := r.call(frame, s)
			if err != nil {
				return 0, err
			}
			if v == nil {
				return 0, nil
			}
			frame[s.Result] = v
		case *ir.NotEqualStmt:
			a, c := r.read(frame, s.A), r.read(frame, s.B)
			if a == nil || c == nil || a.Value.Compare(c.Value) == 0 {
				return 0, nil
			}
		case *ir.EqualStmt:
			a, c := r.read(frame, s.A), r.read(frame, s.B)
			if a == nil || c == nil || a.Value.Compare(c.Value) != 0 {
				return 0, nil
			}
		case *ir.ResetLocalStmt:
			frame[s.Target] = nil
		case *ir.IsDefinedStmt:
			if frame[s.Source] == nil {
				return 0, nil
			}
		case *ir.IsUndefinedStmt:
			if frame[s.Source] != nil {
				return 0, nil
			}
		case *ir.AssignVarOnceStmt:
			v := r.read(frame, s.Source)
			if cur := frame[s.Target]; cur != nil {
				if v == nil || cur.Value.Compare(v.Value) != 0 {
					return 0, fmt.Errorf("%w: %s", errPlanConflict, location(s.Location))
				}
				continue
			}
			frame[s.Target] = v
		case *ir.MakeArrayStmt:
			frame[s.Target] = ast.NewTerm(ast.NewArrayWithCapacity(int(s.Capacity)))
		case *ir.MakeObjectStmt:
			frame[s.Target] = ast.NewTerm(ast.NewObject())
		case *ir.MakeSetStmt:
			frame[s.Target] = ast.NewTerm(ast.NewSet())
		case *ir.MakeNullStmt:
			frame[s.Target] = ast.NullTerm()
		case *ir.MakeNumberIntStmt:
			frame[s.Target] = ast.InternedTerm(int(s.Value))
		case *ir.AssignIntStmt:
			frame[s.Target] = ast.InternedTerm(int(s.Value))
		case *ir.MakeNumberRefStmt:
			frame[s.Target] = r.p.nums[s.Index]
		case *ir.ArrayAppendStmt:
			t, v := frame[s.Array], r.read(frame, s.Value)
			arr, ok := valueOf[*ast.Array](t)
			if !ok || v == nil {
				return 0, errors.New("policies: plan: append to a non-array")
			}
			t.Value = arr.Append(v)
		case *ir.ObjectInsertStmt:
			obj, ok := valueOf[ast.Object](frame[s.Object])
			k, v := r.read(frame, s.Key), r.read(frame, s.Value)
			if !ok || k == nil || v == nil {
				return 0, errors.New("policies: plan: insert into a non-object")
			}
			obj.Insert(k, v)
		case *ir.ObjectInsertOnceStmt:
			obj, ok := valueOf[ast.Object](frame[s.Object])
			k, v := r.read(frame, s.Key), r.read(frame, s.Value)
			if !ok || k == nil || v == nil {
				return 0, errors.New("policies: plan: insert into a non-object")
			}
			if cur := obj.Get(k); cur != nil {
				if cur.Value.Compare(v.Value) != 0 {
					return 0, fmt.Errorf("%w: %s", errPlanConflict, location(s.Location))
				}
				continue
			}
			obj.Insert(k, v)
		case *ir.SetAddStmt:
			set, ok := valueOf[ast.Set](frame[s.Set])
			v := r.read(frame, s.Value)
			if !ok || v == nil {
				return 0, errors.New("policies: plan: add to a non-set")
			}
			set.Add(v)
		case *ir.LenStmt:
			n, ok := length(r.read(frame, s.Source))
			if !ok {
				return 0, errors.New("policies: plan: length of a scalar")
			}
			frame[s.Target] = ast.InternedTerm(n)
		case *ir.IsArrayStmt:
			if _, ok := valueOf[*ast.Array](r.read(frame, s.Source)); !ok {
				return 0, nil
			}
		case *ir.IsObjectStmt:
			if _, ok := valueOf[ast.Object](r.read(frame, s.Source)); !ok {
				return 0, nil
			}
		case *ir.IsSetStmt:
			if _, ok := valueOf[ast.Set](r.read(frame, s.Source)); !ok {
				return 0, nil
			}
		case *ir.BlockStmt:
			for _, sb := range s.Blocks {
				k, err := r.exec(frame, sb)
				if err != nil || k == funcDone {
					return k, err
				}
				if k > 0 {
					return k - 1, nil
				}
			}
		case *ir.BreakStmt:
			return int(s.Index), nil
		case *ir.ScanStmt:
			k, err := r.scan(frame, s)
			if err != nil || k != blockDone {
				return k, err
			}
		case *ir.NotStmt:
			k, err := r.exec(frame, s.Block)
			switch {
			case err != nil || k == funcDone:
				return k, err
			case k == blockDone:
				return 0, nil // the negated block held
			case k > 0:
				return k - 1, nil
			}
		case *ir.ReturnLocalStmt:
			return funcDone, nil
		case *ir.ResultSetAddStmt:
			if v := frame[s.Value]; v != nil {
				r.results = append(r.results, v)
			}
		case *ir.NopStmt:
		default:
			return 0, fmt.Errorf("policies: plan: statement %T is not supported", s)
		}
	}
	return blockDone, nil
}

// scan runs s's block for each element of its source: blockDone when the
// scan ended, or what its body returned for the levels above the scan.
func (r *planRun) scan(frame []*ast.Term, s *ir.ScanStmt) (int, error) {
	out := blockDone
	each := func(k, v *ast.Term) error {
		if r.cancel != nil && r.cancel.Cancelled() {
			return errors.New("policies: plan: evaluation cancelled")
		}
		frame[s.Key], frame[s.Value] = k, v
		n, err := r.exec(frame, s.Block)
		switch {
		case err != nil:
			return err
		case n == blockDone || n == 0:
			return nil
		case n == 1:
			return errStopScan
		case n == funcDone:
			out = funcDone
		default:
			out = n - 2
		}
		return errStopScan
	}
	src := frame[s.Source]
	if src == nil {
		return blockDone, nil
	}
	var err error
	switch v := src.Value.(type) {
	case *ast.Array:
		for i := 0; i < v.Len() && err == nil; i++ {
			err = each(ast.InternedTerm(i), v.Elem(i))
		}
	case ast.Object:
		err = v.Iter(each)
	case ast.Set:
		err = v.Iter(func(t *ast.Term) error { return each(t, t) })
	}
	if err != nil && !errors.Is(err, errStopScan) {
		return 0, err
	}
	return out, nil
}

var errStopScan = errors.New("stop scan")

// call runs a planned function (a rule once per evaluation) or a built-in;
// nil is an undefined result.
func (r *planRun) call(frame []*ast.Term, s *ir.CallStmt) (*ast.Term, error) {
	c := r.p.calls[s]
	if c.fn == nil {
		args := make([]*ast.Term, len(s.Args))
		for i, a := range s.Args {
			if args[i] = r.read(frame, a); args[i] == nil {
				return nil, nil
			}
		}
		var out *ast.Term
		n := 0
		if err := c.builtin(r.bctx, args, func(t *ast.Term) error { out = t; n++; return nil }); err != nil {
			return nil, fmt.Errorf("policies: plan: %s: %w", c.name, err)
		}
		if n > 1 {
			return nil, fmt.Errorf("policies: plan: %s answered %d values", c.name, n)
		}
		return out, nil
	}
	f := c.fn
	if f.rule {
		if v := r.memo[f.idx]; v != nil {
			return v, nil
		}
	}
	if r.cancel != nil && r.cancel.Cancelled() {
		return nil, errors.New("policies: plan: evaluation cancelled")
	}
	callee := make([]*ast.Term, f.nlocals)
	for i, l := range f.params {
		if callee[l] = r.read(frame, s.Args[i]); callee[l] == nil {
			return nil, nil
		}
	}
	for _, b := range f.blocks {
		k, err := r.exec(callee, b)
		if err != nil {
			return nil, err
		}
		if k == funcDone {
			break
		}
		if k > 0 {
			return nil, fmt.Errorf("policies: plan: a block of %s broke out of it", f.name)
		}
	}
	v := callee[f.ret]
	if f.rule && v != nil {
		r.memo[f.idx] = v
	}
	return v, nil
}

func valueOf[V ast.Value](t *ast.Term) (V, bool) {
	var zero V
	if t == nil {
		return zero, false
	}
	v, ok := t.Value.(V)
	return v, ok
}

// dot is src[key]: an object's value, an array's element, a set's member;
// nil (undefined) otherwise.
func dot(src, key *ast.Term) *ast.Term {
	if src == nil || key == nil {
		return nil
	}
	switch v := src.Value.(type) {
	case ast.Object:
		return v.Get(key)
	case *ast.Array:
		n, ok := key.Value.(ast.Number)
		if !ok {
			return nil
		}
		i, ok := n.Int()
		if !ok || i < 0 || i >= v.Len() {
			return nil
		}
		return v.Elem(i)
	case ast.Set:
		if v.Contains(key) {
			return key
		}
	}
	return nil
}

// length is a collection's size (the planner measures the arrays it is
// about to destructure); a scalar has none.
func length(t *ast.Term) (int, bool) {
	if t == nil {
		return 0, false
	}
	switch v := t.Value.(type) {
	case *ast.Array:
		return v.Len(), true
	case ast.Object:
		return v.Len(), true
	case ast.Set:
		return v.Len(), true
	}
	return 0, false
}

func location(l ir.Location) string {
	return fmt.Sprintf("line %d", l.Row)
}

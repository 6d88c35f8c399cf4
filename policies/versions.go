package policies

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"maps"
	"slices"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
)

// DigestJSON is the input digest of a policy input's JSON (see
// Input.Digest): "sha256:" and its hex SHA-256.
func DigestJSON(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// Sources returns the embedded policy modules (not the tests) by file
// name: what Version digests, kept so a decision can be replayed with the
// exact policy that made it.
func Sources() (map[string]string, error) {
	names, err := fs.Glob(regoFS, "*.rego")
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, name := range names {
		if strings.HasSuffix(name, "_test.rego") {
			continue
		}
		src, err := regoFS.ReadFile(name)
		if err != nil {
			return nil, err
		}
		out[name] = string(src)
	}
	return out, nil
}

// VersionOf is the version of a set of policy modules, computed as Version
// computes the embedded one's, so stored modules prove their own version.
func VersionOf(sources map[string]string) string {
	h := sha256.New()
	for _, name := range slices.Sorted(maps.Keys(sources)) {
		src := sources[name]
		fmt.Fprintf(h, "%s\n%d\n", name, len(src))
		h.Write([]byte(src))
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))[:16]
}

// Replayer evaluates recorded inputs with one kept policy version.
type Replayer struct {
	query   rego.PreparedEvalQuery
	version string
}

// NewReplayer compiles sources (strict, Rego v1, as the engine does) and
// prepares the charge query.
func NewReplayer(ctx context.Context, sources map[string]string) (*Replayer, error) {
	mods := map[string]*ast.Module{}
	for name, src := range sources {
		m, err := ast.ParseModuleWithOpts(name, src, ast.ParserOptions{RegoVersion: ast.RegoV1})
		if err != nil {
			return nil, fmt.Errorf("policies: %s: %w", name, err)
		}
		mods[name] = m
	}
	c, err := Compile(mods)
	if err != nil {
		return nil, err
	}
	pq, err := rego.New(rego.Query(ChargeQuery), rego.Compiler(c), rego.Strict(true), rego.StrictBuiltinErrors(true)).PrepareForEval(ctx)
	if err != nil {
		return nil, fmt.Errorf("policies: prepare: %w", err)
	}
	return &Replayer{query: pq, version: VersionOf(sources)}, nil
}

// Version is the version of the replayer's modules.
func (r *Replayer) Version() string { return r.version }

// Decide evaluates a recorded input (its JSON, as Input.JSON wrote it)
// the way Engine.Decide evaluated it: an evaluation error denies and is
// returned with the deny (as the engine does), an undefined result denies.
// An input that is not JSON returns an error and no decision.
func (r *Replayer) Decide(ctx context.Context, input []byte) (Decision, error) {
	dec := json.NewDecoder(bytes.NewReader(input))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return Decision{}, fmt.Errorf("policies: recorded input: %w", err)
	}
	v, err := ast.InterfaceToValue(doc)
	if err != nil {
		return Decision{}, fmt.Errorf("policies: recorded input: %w", err)
	}
	deny := func(code, msg string) Decision {
		return Decision{Result: Deny, Reasons: []Reason{{Code: code, Message: msg}}, PolicyVersion: r.version}
	}
	rs, err := r.query.Eval(ctx, rego.EvalParsedInput(v))
	if err != nil {
		return deny("policy_error", "the policy could not be evaluated"), fmt.Errorf("policies: eval: %w", err)
	}
	if len(rs) != 1 || len(rs[0].Expressions) != 1 {
		return deny("policy_undefined", "the policy reached no decision"), nil
	}
	d, err := decode(rs[0].Expressions[0].Value)
	if err != nil {
		return deny("policy_error", "the policy returned a malformed decision"), err
	}
	d.PolicyVersion = r.version
	return d, nil
}

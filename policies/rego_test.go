package policies

import (
	"bytes"
	"context"
	"testing"

	"github.com/open-policy-agent/opa/v1/tester"
	"github.com/stretchr/testify/require"
)

// TestRego runs the *_test.rego suites through OPA's tester, compiled in
// strict mode, so `go test ./...` covers the policies without an opa binary.
func TestRego(t *testing.T) {
	mods, err := Modules(true)
	require.NoError(t, err)
	_, err = Compile(mods) // strict mode: `opa check --strict`
	require.NoError(t, err)
	c := newStrictCompiler()
	ch, err := tester.NewRunner().SetCompiler(c).CapturePrintOutput(true).RaiseBuiltinErrors(true).SetModules(mods).RunTests(context.Background(), nil)
	require.NoError(t, err)
	n := 0
	for r := range ch {
		n++
		switch {
		case r.Error != nil:
			t.Errorf("%s: error: %v", r.Name, r.Error)
		case r.Fail:
			t.Errorf("%s: FAIL\n%s", r.Name, bytes.TrimSpace(r.Output))
		default:
			t.Logf("%s: PASS (%v)", r.Name, r.Duration)
		}
	}
	require.Positive(t, n, "no Rego tests ran")
}

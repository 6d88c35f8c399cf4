package server_test

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/app/apptest"
)

// Markers around the README's API reference table.
const (
	routesBegin = "<!-- api-reference:begin -->"
	routesEnd   = "<!-- api-reference:end -->"
)

var routeRow = regexp.MustCompile("^\\| `([A-Z]+)` \\| `([^`]+)` \\|")

// documentedRoutes returns "METHOD PATH" of every row of the README's API
// reference table.
func documentedRoutes(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("../README.md")
	require.NoError(t, err)
	text := string(b)
	i, j := strings.Index(text, routesBegin), strings.Index(text, routesEnd)
	require.True(t, i >= 0 && j > i, "README.md has the API reference table between %s and %s", routesBegin, routesEnd)
	var out []string
	for _, line := range strings.Split(text[i:j], "\n") {
		if m := routeRow.FindStringSubmatch(line); m != nil {
			out = append(out, m[1]+" "+m[2])
		} else if strings.HasPrefix(line, "| `") {
			t.Errorf("README API reference: row %q is not | `METHOD` | `PATH` | credential | what it does |", line)
		}
	}
	return out
}

// TestAPIReferenceMatchesRouter: every route the router holds is in the
// README's API reference, and every documented route exists.
func TestAPIReferenceMatchesRouter(t *testing.T) {
	n := apptest.New(t, "memory")
	var routed []string
	for _, r := range n.App.Server.Routes() {
		routed = append(routed, r.Method+" "+r.Path)
	}
	documented := documentedRoutes(t)
	require.NotEmpty(t, routed)
	for _, r := range routed {
		assert.Contains(t, documented, r, "route %s is missing from the README's API reference", r)
	}
	for _, d := range documented {
		assert.Contains(t, routed, d, "the README documents %s, which the router does not hold", d)
	}
	seen := map[string]bool{}
	for _, d := range documented {
		assert.False(t, seen[d], "%s is documented twice", d)
		seen[d] = true
	}
	slices.Sort(routed)
	t.Logf("%d routes", len(routed))
}

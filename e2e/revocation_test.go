package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// revocationTrials is how many revocations per kind the propagation
// measurement makes.
const revocationTrials = 100

// testRevocation: a revocation on node A (a token, an agent, a mandate with
// its child) makes the very next charge on nodes B and C fail with a 403
// permission_error naming what was revoked, even though B and C had just
// served the credential (their caches said "not revoked"). It then
// measures how long node B's introspection keeps calling a token active
// after a revocation on node A (the LISTEN/NOTIFY cache invalidation).
func testRevocation(t *testing.T, c *cluster) {
	s := newShop(t, c)
	A, B, C := c.nodes[0].URL, c.nodes[1].URL, c.nodes[2].URL

	// warm makes a charge with tok on B and C, so both nodes have verified
	// it and cached that nothing about it is revoked.
	warm := func(t *testing.T, toks ...string) {
		t.Helper()
		for _, tok := range toks {
			for _, n := range []string{B, C} {
				r, err := s.charge(n, tok, 100, s.card)
				require.NoError(t, err)
				require.Equal(t, 200, r.Status, string(r.Body))
				active, err := introspect(n, s.key, tok)
				require.NoError(t, err)
				require.True(t, active)
			}
		}
	}
	// denied checks that a charge with tok on node n is refused for what
	// was revoked, naming one of ids.
	denied := func(t *testing.T, n, tok, code string, ids ...string) {
		t.Helper()
		r, err := s.charge(n, tok, 100, s.card)
		require.NoError(t, err)
		require.Equal(t, 403, r.Status, string(r.Body))
		typ, gotCode, msg := errorOf(r)
		assert.Equal(t, "permission_error", typ)
		assert.Equal(t, code, gotCode)
		assert.True(t, slices.ContainsFunc(ids, func(id string) bool { return strings.Contains(msg, id) }),
			"%q names none of %v", msg, ids)
	}

	t.Run("token", func(t *testing.T) {
		a := s.agent(t)
		m := s.mandate(t, a, 1_000_000)
		tok, other := s.token(t, A, a, m), s.token(t, A, a, m)
		warm(t, tok, other)
		code, body := form(t, A, "/oauth2/revoke", "", "", s.key, url.Values{"token": {tok}})
		require.Equal(t, 200, code, body)
		jti := claimsOf(t, tok)["jti"].(string)
		denied(t, B, tok, "token_revoked", jti)
		denied(t, C, tok, "token_revoked", jti)
		// Only that token: the agent's other token still charges.
		r, err := s.charge(C, other, 100, s.card)
		require.NoError(t, err)
		assert.Equal(t, 200, r.Status, string(r.Body))
	})

	t.Run("agent", func(t *testing.T) {
		a := s.agent(t)
		m := s.mandate(t, a, 1_000_000)
		tok := s.token(t, A, a, m)
		warm(t, tok)
		r := do(t, A, call{Method: "POST", Path: "/v1/agents/" + a.id + "/revoke", Auth: s.key, Body: map[string]any{}})
		require.Equal(t, 200, r.Status, string(r.Body))
		denied(t, B, tok, "agent_revoked", a.id)
		denied(t, C, tok, "agent_revoked", a.id)
	})

	t.Run("mandate with its child", func(t *testing.T) {
		a, b := s.agent(t), s.agent(t)
		m := s.mandate(t, a, 1_000_000)
		tokA := s.token(t, A, a, m)
		tokB, child := s.delegate(t, b, tokA, 10_000)
		warm(t, tokA, tokB)
		r := do(t, A, call{Method: "POST", Path: "/v1/mandates/" + m + "/revoke", Auth: s.key, Body: map[string]any{}})
		require.Equal(t, 200, r.Status, string(r.Body))
		denied(t, B, tokA, "mandate_revoked", m)
		denied(t, C, tokA, "mandate_revoked", m)
		denied(t, B, tokB, "mandate_revoked", m, child)
		denied(t, C, tokB, "mandate_revoked", m, child)
		assert.Equal(t, "revoked", s.getMandate(t, C, child)["status"], "the revocation cascades to the child")
	})

	// Propagation: node B's introspection of a token it has just called
	// active, polled in a loop while node A revokes the token (or its
	// agent). Timings are reported, never asserted.
	t.Run("propagation", func(t *testing.T) {
		a := s.agent(t)
		m := s.mandate(t, a, 1_000_000)
		var tokenLat, agentLat []propagation
		for range revocationTrials {
			tok := s.token(t, A, a, m)
			tokenLat = append(tokenLat, measure(t, B, s.key, tok, func() {
				code, body := form(t, A, "/oauth2/revoke", "", "", s.key, url.Values{"token": {tok}})
				require.Equal(t, 200, code, body)
			}))
		}
		for range revocationTrials {
			ag := s.agent(t)
			tok := s.token(t, A, ag, s.mandate(t, ag, 1000))
			agentLat = append(agentLat, measure(t, B, s.key, tok, func() {
				r := do(t, A, call{Method: "POST", Path: "/v1/agents/" + ag.id + "/revoke", Auth: s.key, Body: map[string]any{}})
				require.Equal(t, 200, r.Status, string(r.Body))
			}))
		}
		report(t, "token revoked on A", tokenLat)
		report(t, "agent revoked on A", agentLat)
	})
}

// introspect asks node n (RFC 7662, tenant key) whether tok is active.
func introspect(n, key, tok string) (bool, error) {
	req, err := http.NewRequest("POST", n+"/oauth2/introspect", strings.NewReader(url.Values{"token": {tok}}.Encode()))
	if err != nil {
		return false, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := httpClient.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return false, err
	}
	var out struct {
		Active *bool `json:"active"`
	}
	if resp.StatusCode != 200 || json.Unmarshal(raw, &out) != nil || out.Active == nil {
		return false, fmt.Errorf("introspection: %d %s", resp.StatusCode, raw)
	}
	return *out.Active, nil
}

// propagation is one trial: from the revoke request being sent (sent) and
// from its answer (answered) to node B first answering active:false.
type propagation struct{ sent, answered time.Duration }

// measure polls node n's introspection of tok (already active there, so
// cached) in a loop while revoke runs, and returns when n first answered
// active:false relative to the revoke request and to its answer.
func measure(t *testing.T, n, key, tok string, revoke func()) propagation {
	t.Helper()
	active, err := introspect(n, key, tok)
	require.NoError(t, err)
	require.True(t, active, "the token is active on the other node before the revocation")
	flipped := make(chan time.Time, 1)
	errs := make(chan error, 1)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		deadline := time.Now().Add(30 * time.Second) // a bound for a broken node, not a timing check
		for time.Now().Before(deadline) {
			select {
			case <-stop:
				return
			default:
			}
			active, err := introspect(n, key, tok)
			if err != nil {
				errs <- err
				return
			}
			if !active {
				flipped <- time.Now()
				return
			}
		}
		errs <- fmt.Errorf("node %s still calls the token active 30 s after its revocation", n)
	}()
	sent := time.Now()
	revoke()
	answered := time.Now()
	select {
	case at := <-flipped:
		return propagation{sent: at.Sub(sent), answered: at.Sub(answered)}
	case err := <-errs:
		t.Fatal(err)
	}
	return propagation{}
}

// report logs p50/p99 of the trials (for BENCHMARKS.md).
func report(t *testing.T, what string, ps []propagation) {
	sent := make([]time.Duration, len(ps))
	answered := make([]time.Duration, len(ps))
	before := 0
	for i, p := range ps {
		sent[i], answered[i] = p.sent, p.answered
		if p.answered < 0 {
			before++
		}
	}
	t.Logf("propagation, %s, %d trials: from the revoke request p50 %v p99 %v max %v; from its answer p50 %v p99 %v max %v; "+
		"node B flipped before A answered in %d trials",
		what, len(ps), pct(sent, 50), pct(sent, 99), slices.Max(sent),
		pct(answered, 50), pct(answered, 99), slices.Max(answered), before)
}

// pct is the p-th percentile (nearest rank) of ds.
func pct(ds []time.Duration, p int) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	return s[max(i-1, 0)]
}

package server_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/app/apptest"
)

// sendForm posts an OAuth form with HTTP Basic client authentication and
// reports a transport error instead of failing the test, so goroutines may
// call it.
func sendForm(n *apptest.Node, path, id, secret string, form url.Values) (int, map[string]any, error) {
	req, err := http.NewRequest("POST", n.URL+path, strings.NewReader(form.Encode()))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, err
	}
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		return resp.StatusCode, nil, fmt.Errorf("%s: %d %s", path, resp.StatusCode, raw)
	}
	return resp.StatusCode, out, nil
}

// TestRefreshRaceOverHTTP sends two uses of one refresh token at once, on
// both stores: exactly one wins, the other is refused, and the refusal is
// reuse, so the whole family is dead: the tokens from before the race and
// the winner's new access and refresh tokens. Results are collected from
// the goroutines and asserted on the test's. (Which branch detects the
// reuse depends on the interleaving; authz's TestRefreshRaceRevokesFamily
// and TestRefreshRaceRevocationBeforeWinnerWrites stage the orderings.)
func TestRefreshRaceOverHTTP(t *testing.T) {
	apptest.EachDriver(t, func(t *testing.T, driver string) {
		n := apptest.New(t, driver)
		_, key := n.Tenant(t)
		id, secret := secretAgent(t, n, key, map[string]any{
			"grant_types": []string{"client_credentials", "refresh_token"},
			"scopes":      []string{"charges:read", "offline_access"},
		})
		for round := range 5 {
			tok := secretToken(t, n, id, secret, "charges:read", "offline_access")
			type result struct {
				status int
				body   map[string]any
				err    error
			}
			results := make(chan result, 2)
			start := make(chan struct{})
			for range 2 {
				go func() {
					<-start
					st, body, err := sendForm(n, "/oauth2/token", id, secret,
						url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}})
					results <- result{st, body, err}
				}()
			}
			close(start)
			var wins []map[string]any
			refused := 0
			for range 2 {
				r := <-results
				require.NoError(t, r.err, "round %d", round)
				switch r.status {
				case 200:
					wins = append(wins, r.body)
				case 400:
					refused++
					assert.Contains(t, []any{"invalid_grant", "invalid_request"}, r.body["error"], "round %d: %v", round, r.body)
				default:
					t.Errorf("round %d: a refresh answered %d %v", round, r.status, r.body)
				}
			}
			require.Len(t, wins, 1, "round %d: exactly one of two uses of a refresh token wins", round)
			assert.Equal(t, 1, refused, "round %d", round)
			// The refused use was reuse: the family is revoked, the
			// winner's new tokens included.
			w := wins[0]
			for what, v := range map[string]any{
				"the family's first access token": tok.AccessToken, "the family's first refresh token": tok.RefreshToken,
				"the winner's new access token": w["access_token"], "the winner's new refresh token": w["refresh_token"],
			} {
				s, ok := v.(string)
				require.True(t, ok && s != "", "round %d: %s missing", round, what)
				assert.Equal(t, false, introspect(t, n, key, s)["active"], "round %d: %s", round, what)
			}
		}
	})
}

// TestAgentRevokedAcrossNodes: an agent revoked through node A cannot
// charge on node B at once, although B had just served its token and cached
// it as live: the charge transaction reads the committed revocation. B's
// introspection follows within a bounded wait (LISTEN/NOTIFY drops its
// cache); the bound only ends a broken test, it is not a timing check.
func TestAgentRevokedAcrossNodes(t *testing.T) {
	a := apptest.New(t, "postgres")
	b := apptest.NewWithURL(t, "postgres", a.App.Config.Store.Postgres.URL)
	sa := newShop(t, a)
	sb := *sa
	sb.n = b
	m := sa.mandate(t, nil)
	tok := sa.token(t, m)
	r := sb.charge(t, tok, 1000, nil, "")
	require.Equal(t, 200, r.Status, string(r.Body))
	require.Equal(t, true, introspect(t, b, sa.key, tok)["active"])

	r = a.Do(t, apptest.Req{Method: "POST", Path: "/v1/agents/" + sa.agent + "/revoke", Key: sa.key})
	require.Equal(t, 200, r.Status, string(r.Body))

	r = sb.charge(t, tok, 1000, nil, "")
	require.Equal(t, 403, r.Status, string(r.Body))
	assert.Equal(t, "permission_error", r.ErrorType())
	assert.Equal(t, "agent_revoked", r.ErrorCode())
	assert.Contains(t, r.JSON["error"].(map[string]any)["message"], sa.agent)
	spent, count := sb.spent(t, m)
	assert.EqualValues(t, 1000, spent, "the refused charge reserved nothing")
	assert.EqualValues(t, 1, count)

	deadline := time.Now().Add(time.Minute)
	for introspect(t, b, sa.key, tok)["active"] != false {
		require.False(t, time.Now().After(deadline), "node B still calls the token active a minute after its agent was revoked")
		time.Sleep(10 * time.Millisecond)
	}
}

package server_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/app/apptest"
)

// currencies returns every "currency" member anywhere in a JSON document,
// with the path that leads to it.
func currencies(path string, v any, out map[string]string) {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if s, ok := e.(string); ok && k == "currency" {
				out[path+"."+k] = s
				continue
			}
			currencies(path+"."+k, e, out)
		}
	case []any:
		for i, e := range x {
			currencies(fmt.Sprintf("%s[%d]", path, i), e, out)
		}
	case string:
		// Event payloads and token claims nest JSON in strings at times.
		if strings.HasPrefix(x, "{") || strings.HasPrefix(x, "[") {
			var inner any
			if json.Unmarshal([]byte(x), &inner) == nil {
				currencies(path, inner, out)
			}
		}
	}
}

// TestCurrencyLowerCaseOnTheWire walks every object that carries a currency
// (mandates, their list, history and signed terms, agent and direct charges,
// approvals, refunds, events, the access token's authorization_details,
// introspection)
// and requires lower case, whatever the case of the request.
func TestCurrencyLowerCaseOnTheWire(t *testing.T) {
	apptest.EachDriver(t, func(t *testing.T, driver string) {
		n := apptest.New(t, driver)
		s := newShop(t, n)
		seen := map[string]string{}
		look := func(what string, r *apptest.Response, want ...int) {
			t.Helper()
			if len(want) == 0 {
				want = []int{200}
			}
			require.Contains(t, want, r.Status, "%s: %s", what, r.Body)
			var doc any
			require.NoError(t, json.Unmarshal(r.Body, &doc), what)
			currencies(what, doc, seen)
		}

		// Either case is accepted on input.
		upper := s.mandate(t, map[string]any{"currency": "USD"})
		lower := s.mandate(t, map[string]any{"currency": "usd"})
		for _, m := range []string{upper, lower} {
			look("mandate "+m, n.Do(t, apptest.Req{Method: "GET", Path: "/v1/mandates/" + m, Key: s.key}))
		}
		look("mandate list", n.Do(t, apptest.Req{Method: "GET", Path: "/v1/mandates", Key: s.key}))
		signed := n.Do(t, apptest.Req{Method: "GET", Path: "/v1/mandates/" + upper + "/jws", Key: s.key})
		require.Equal(t, 200, signed.Status, "%s", signed.Body)
		terms, err := base64.RawURLEncoding.DecodeString(strings.Split(signed.JSON["jws"].(string), ".")[1])
		require.NoError(t, err)
		var termsDoc any
		require.NoError(t, json.Unmarshal(terms, &termsDoc))
		currencies("mandate jws", termsDoc, seen)

		tok := s.token(t, upper)
		claims, err := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[1])
		require.NoError(t, err)
		var claimDoc any
		require.NoError(t, json.Unmarshal(claims, &claimDoc))
		currencies("access token", claimDoc, seen)
		code, intro, _ := postForm(t, n, formReq{path: "/oauth2/introspect", basic: [2]string{s.agent, s.secret}, form: url.Values{"token": {tok}}})
		require.Equal(t, 200, code)
		currencies("introspection", intro, seen)

		look("agent charge (USD)", s.charge(t, tok, 1000, nil, ""))
		look("agent charge (usd)", s.charge(t, tok, 1200, map[string]any{"currency": "usd"}, ""))
		look("approval required", s.charge(t, tok, 4000, nil, ""), 402)
		look("charge denied", s.charge(t, tok, 9000, nil, ""), 403)
		look("mandate history", n.Do(t, apptest.Req{Method: "GET", Path: "/v1/mandates/" + upper + "/events", Key: s.key}))

		direct := charge(t, n, s.key, map[string]any{"amount": 700, "currency": "USD", "payment_method": s.card}, "")
		look("direct charge", direct)
		look("refund", n.Do(t, apptest.Req{Method: "POST", Path: "/v1/refunds", Key: s.key,
			Body: map[string]any{"charge": direct.JSON["id"], "amount": 100}}), 200, 201)
		look("charge list", n.Do(t, apptest.Req{Method: "GET", Path: "/v1/charges", Key: s.key}))
		look("events", n.Do(t, apptest.Req{Method: "GET", Path: "/v1/events?limit=100", Key: s.key}))

		for _, kind := range []string{"mandate", "mandate jws", "access token", "agent charge", "approval required", "direct charge", "refund", "events"} {
			found := false
			for where := range seen {
				found = found || strings.HasPrefix(where, kind)
			}
			require.True(t, found, "no currency seen in %s: the walk proves nothing there", kind)
		}
		var upperCase []string
		for where, cur := range seen {
			if cur != strings.ToLower(cur) {
				upperCase = append(upperCase, fmt.Sprintf("%s = %q", where, cur))
			}
		}
		slices.Sort(upperCase)
		require.Empty(t, upperCase, "currency is lower case on the wire")
	})
}

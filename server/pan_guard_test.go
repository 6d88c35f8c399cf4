package server_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/app/apptest"
	"github.com/perfectpay/perfectpay/authz"
	"github.com/perfectpay/perfectpay/server"
	"github.com/perfectpay/perfectpay/store/pgtest"
)

// pans are card numbers as people type them; the sweep uses them in turn.
var pans = []string{"4000056655665556", "4242 4242 4242 4242", "5555-5555-5555-4444", "order 378282246310005 ok"}

// panDigits are the numbers above as a dump of the database would show
// them, plain or as sent.
var panDigits = []string{"4000056655665556", "4242 4242 4242 4242", "5555-5555-5555-4444", "5555555555554444", "378282246310005"}

// noPANRoutes are routes whose request carries nothing a card number can
// hide in (no body, no stored header).
var noPANRoutes = map[string]bool{"OPTIONS": true, "GET": true, "DELETE": true}

// TestPANGuardEveryRoute sends a card number in every string (member names
// too) of a valid request to every route the router holds, and in the
// Idempotency-Key of every POST: each is refused with 400
// parameter_invalid naming the field, the number is not echoed, and
// nothing is stored. The tokenization body is the one exception. The
// OAuth forms and pages answer in RFC 6749's shape, registration in RFC
// 7591's, MCP before any tool runs. A route added without an example body
// here fails the test.
func TestPANGuardEveryRoute(t *testing.T) {
	apptest.EachDriver(t, func(t *testing.T, driver string) {
		url := ""
		if driver == "postgres" {
			url = pgtest.NewURL(t)
		}
		opTok, withOperator := operatorToken()
		n := apptest.NewWithURL(t, driver, url, withOperator)
		w := newWorld(t, n)
		sw := &sweep{w: w, client: &http.Client{Timeout: 30 * time.Second}}

		// The example requests: the robustness sweep's, with the
		// credential each route takes.
		examples := map[string][]panCase{}
		for _, rt := range w.routes(t) {
			examples[rt.method+" "+rt.path] = append(examples[rt.method+" "+rt.path], panCase{route: rt, auth: rt.cred(w)})
		}
		// Routes the robustness sweep does not drive.
		examples["POST /v1/tenants/{id}/revoke"] = []panCase{{route: route{method: "POST", path: "/v1/tenants/{id}/revoke",
			target: "ten_nope", body: map[string]any{}}, auth: "Bearer " + opTok}}
		for _, action := range []string{"challenge", "verify"} {
			p := "/v1/merchants/{id}/domains/{domain}/" + action
			examples["POST "+p] = []panCase{{route: route{method: "POST", path: p, body: map[string]any{}}, auth: "Bearer " + w.sk,
				at: "/v1/merchants/" + w.merchantOfA + "/domains/a-shop.example/" + action}}
		}
		for k, v := range panMoreExamples(t, n, w, opTok) {
			examples[k] = v
		}
		forms := panForms(t, n, w)
		pw := signInPages(t, n, w)
		more, consent := panMoreForms(t, n, w, pw.payerID)
		for k, v := range more {
			forms[k] = v
		}
		pages := panPages(w, pw, consent)

		seen := 0
		for _, r := range n.App.Server.Routes() {
			key := r.Method + " " + r.Path
			if noPANRoutes[r.Method] {
				continue
			}
			switch key {
			case "POST " + authz.PathRegister:
				t.Run(strings.ReplaceAll(key, "/", "_"), sw.panRegister)
				seen++
				continue
			case "POST " + server.PathMCP:
				t.Run(strings.ReplaceAll(key, "/", "_"), sw.panMCP)
				seen++
				continue
			}
			if pc, ok := pages[key]; ok {
				t.Run(strings.ReplaceAll(key, "/", "_"), func(t *testing.T) { sw.panPage(t, pc) })
				seen++
				continue
			}
			if f, ok := forms[key]; ok {
				t.Run(strings.ReplaceAll(key, "/", "_"), func(t *testing.T) { sw.panForm(t, f) })
				seen++
				continue
			}
			rts, ok := examples[key]
			if !ok {
				t.Errorf("%s has no example request in the PAN sweep: add one (the sweep covers every route)", key)
				continue
			}
			for _, pc := range rts {
				if key == "POST /v1/tokens" {
					continue // the tokenization body carries the card by design
				}
				t.Run(strings.ReplaceAll(key, "/", "_"), func(t *testing.T) { sw.panRoute(t, pc) })
				seen++
			}
		}
		require.Greater(t, seen, 20, "the router was walked")

		if driver == "postgres" {
			assertNoPANStored(t, url)
		}
	})
}

// stringSlots lists where a JSON value holds a string or a member name:
// the param a refusal should name, and a function that returns a copy of
// the value with that string replaced.
type slot struct {
	param   string
	replace func(pan string) any
}

func stringSlots(v any, param string, rebuild func(any) any) []slot {
	join := func(k string) string {
		if param == "" {
			return k
		}
		return param + "." + k
	}
	var out []slot
	switch x := v.(type) {
	case string:
		out = append(out, slot{param, func(pan string) any { return rebuild(pan) }})
	case []any:
		for i := range x {
			out = append(out, stringSlots(x[i], fmt.Sprintf("%s[%d]", param, i), func(nv any) any {
				c := append([]any(nil), x...)
				c[i] = nv
				return rebuild(c)
			})...)
		}
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			// The member name: refused naming the object that holds it.
			out = append(out, slot{param, func(pan string) any {
				c := map[string]any{}
				for k2, v2 := range x {
					if k2 != k {
						c[k2] = v2
					}
				}
				c[pan] = x[k]
				return rebuild(c)
			}})
			out = append(out, stringSlots(x[k], join(k), func(nv any) any {
				c := map[string]any{}
				for k2, v2 := range x {
					c[k2] = v2
				}
				c[k] = nv
				return rebuild(c)
			})...)
		}
	}
	return out
}

// panCase is a route's valid request and the credential it is sent with.
type panCase struct {
	route
	auth string
	at   string // the path, when the template has more than {id}
}

func (sw *sweep) panRoute(t *testing.T, pc panCase) {
	rt, auth := &pc.route, pc.auth
	path := rt.pathFor(rt.target)
	if pc.at != "" {
		path = pc.at
	}
	var before int64
	if rt.measure != nil {
		before = rt.measure(t)
	}
	body, err := json.Marshal(rt.body)
	require.NoError(t, err)
	var generic any
	require.NoError(t, json.Unmarshal(body, &generic))
	i := 0
	send := func(what string, b []byte, idem string) *rresp {
		r := sw.do(t, rreq{method: rt.method, path: path, body: b, ctype: "application/json", auth: auth,
			header: map[string]string{"Idempotency-Key": idem}})
		for _, d := range panDigits {
			assert.NotContains(t, string(r.body), d, "%s: the card number is echoed", what)
		}
		return r
	}
	for _, s := range stringSlots(generic, "", func(v any) any { return v }) {
		pan := pans[i%len(pans)]
		i++
		b, err := json.Marshal(s.replace(pan))
		require.NoError(t, err)
		r := send(s.param, b, "pan-"+randID())
		if assert.Equal(t, 400, r.status, "%s %s: a card number in %q: %s", rt.method, rt.path, s.param, r.body) {
			assert.Equal(t, "parameter_invalid", r.errField("code"), s.param)
			assert.Equal(t, s.param, r.errField("param"))
		}
	}
	// The Idempotency-Key is stored: a card number there is refused too.
	if rt.method == http.MethodPost {
		for _, pan := range pans {
			r := send("Idempotency-Key", body, pan)
			if assert.Equal(t, 400, r.status, "%s %s: a card number as Idempotency-Key: %s", rt.method, rt.path, r.body) {
				assert.Equal(t, "parameter_invalid", r.errField("code"))
				assert.Equal(t, "Idempotency-Key", r.errField("param"))
			}
		}
	}
	if rt.measure != nil {
		assert.Equal(t, before, rt.measure(t), "%s %s: a refused request changed nothing", rt.method, rt.path)
	}
}

// formCase is an OAuth endpoint's valid form with its client credentials.
type formCase struct {
	path  string
	basic [2]string
	form  url.Values
}

func panForms(t *testing.T, n *apptest.Node, w *world) map[string]formCase {
	agent, secret := secretAgent(t, n, w.sk, map[string]any{
		"grant_types": []string{authz.GrantClientCredentials, authz.GrantTokenExchange}, "scopes": []string{"charges:write"}})
	mandate := createMandate(t, n, w.sk, agent, w.card)
	details := fmt.Sprintf(`[{"type":"payment_mandate","mandate_id":%q}]`, mandate)
	return map[string]formCase{
		"POST " + authz.PathToken: {path: authz.PathToken, basic: [2]string{agent, secret}, form: url.Values{
			"grant_type": {"client_credentials"}, "scope": {"charges:write"}, "authorization_details": {details}}},
		"POST " + authz.PathIntrospect: {path: authz.PathIntrospect, basic: [2]string{agent, secret}, form: url.Values{
			"token": {w.agentToken}, "token_type_hint": {"access_token"}}},
		"POST " + authz.PathRevoke: {path: authz.PathRevoke, basic: [2]string{agent, secret}, form: url.Values{
			"token": {"not-a-token"}, "token_type_hint": {"access_token"}}},
	}
}

// panForm puts a card number in each form value (each string inside a
// JSON value) and each parameter name in turn: 400 invalid_request, in
// RFC 6749's shape, naming the parameter.
func (sw *sweep) panForm(t *testing.T, f formCase) {
	type mut struct {
		param string
		form  url.Values
		query string // sent in the URL's query string (which r.Form merges)
	}
	var muts []mut
	i := 0
	next := func() string { i++; return pans[i%len(pans)] }
	for name, vs := range f.form {
		c := cloneForm(f.form)
		delete(c, name)
		c[next()] = vs
		muts = append(muts, mut{form: c})
		c = cloneForm(f.form)
		c.Set(name, next())
		muts = append(muts, mut{param: name, form: c})
		muts = append(muts, mut{param: name, form: f.form, query: url.Values{name: {next()}}.Encode()})
		var j any
		if json.Unmarshal([]byte(vs[0]), &j) == nil {
			for _, s := range stringSlots(j, "", func(v any) any { return v }) {
				b, err := json.Marshal(s.replace(next()))
				require.NoError(t, err)
				c := cloneForm(f.form)
				c.Set(name, string(b))
				want := name + "." + s.param
				if strings.HasPrefix(s.param, "[") || s.param == "" {
					want = name + s.param
				}
				muts = append(muts, mut{param: want, form: c})
			}
		}
	}
	for _, m := range muts {
		auth := "Basic " + basicAuth(f.basic[0], f.basic[1])
		path := f.path
		if m.query != "" {
			path += "?" + m.query
		}
		r := sw.do(t, rreq{method: "POST", path: path, body: []byte(m.form.Encode()), ctype: "application/x-www-form-urlencoded", auth: auth})
		if assert.Equal(t, 400, r.status, "%s: a card number in %q: %s", f.path, m.param, r.body) {
			assert.Equal(t, "invalid_request", r.json["error"], "RFC 6749 shape")
			desc, _ := r.json["error_description"].(string)
			if m.param != "" {
				assert.True(t, strings.HasPrefix(desc, m.param+" "), "%q names %q", desc, m.param)
			}
		}
		for _, d := range panDigits {
			assert.NotContains(t, string(r.body), d, "the card number is echoed")
		}
	}
}

func cloneForm(f url.Values) url.Values {
	c := url.Values{}
	for k, v := range f {
		c[k] = append([]string(nil), v...)
	}
	return c
}

// assertNoPANStored reads every row of every table as text: no card
// number sent by the sweep is there (the vault keeps its cards sealed).
func assertNoPANStored(t *testing.T, dbURL string) {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dbURL)
	require.NoError(t, err)
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE'`)
	require.NoError(t, err)
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.NotEmpty(t, tables)
	for _, tbl := range tables {
		for _, d := range panDigits {
			var n int
			err := conn.QueryRow(ctx, `SELECT count(*) FROM `+pgx.Identifier{tbl}.Sanitize()+` r WHERE strpos(r::text, $1) > 0`, d).Scan(&n)
			require.NoError(t, err, tbl)
			assert.Zero(t, n, "a card number (%s) is stored in clear in %s", d, tbl)
		}
	}
}

func basicAuth(user, pass string) string {
	return base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))
}

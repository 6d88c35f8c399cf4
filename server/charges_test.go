package server_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/accounts"
	"github.com/perfectpay/perfectpay/app"
	"github.com/perfectpay/perfectpay/app/apptest"
	"github.com/perfectpay/perfectpay/audit"
	"github.com/perfectpay/perfectpay/payments"
)

// testCards are the simulated acquirer's cards with a distinctive CVC each,
// so a scan can look for the CVCs too.
var testCards = []struct{ number, cvc, decline string }{
	{"4242424242424242", "731", ""},
	{"5555555555554444", "732", ""},
	{"378282246310005", "7334", ""},
	{"4000000000000002", "734", "generic_decline"},
	{"4000000000009995", "735", "insufficient_funds"},
	{"4000000000009987", "736", "lost_card"},
	{"4000000000009979", "737", "stolen_card"},
	{"4000000000000069", "738", "expired_card"},
	{"4000000000000127", "739", "incorrect_cvc"},
	{"4000000000000119", "741", "processing_error"},
	{"4100000000000019", "742", "fraudulent"},
}

func charge(t *testing.T, n *apptest.Node, key string, body any, idem string) *apptest.Response {
	t.Helper()
	req := apptest.Req{Method: "POST", Path: "/v1/charges", Key: key, Body: body}
	if idem != "" {
		req.Header = map[string]string{"Idempotency-Key": idem}
	}
	return n.Do(t, req)
}

func TestChargesEveryTestCard(t *testing.T) {
	apptest.EachDriver(t, func(t *testing.T, driver string) {
		n := apptest.New(t, driver)
		b, sk := n.Tenant(t)
		pk := apptest.Key(b, accounts.KindPublishable, accounts.ModeTest)
		for _, tc := range testCards {
			tok := tokenize(t, n, pk, tc.number, tc.cvc)
			r := charge(t, n, sk, map[string]any{"amount": 2000, "currency": "usd", "payment_method": tok, "description": "order 17"}, "")
			if tc.decline == "" {
				require.Equal(t, 200, r.Status, string(r.Body))
				assert.Equal(t, "succeeded", r.JSON["status"])
				assert.Equal(t, true, r.JSON["captured"])
				assert.EqualValues(t, 2000, r.JSON["amount_captured"])
				continue
			}
			require.Equal(t, 402, r.Status, tc.number)
			e := r.JSON["error"].(map[string]any)
			assert.Equal(t, "card_error", e["type"])
			assert.Equal(t, payments.ErrorCode(tc.decline), e["code"], tc.number)
			assert.Equal(t, tc.decline, e["decline_code"], tc.number)
			ch := r.JSON["charge"].(map[string]any)
			assert.Equal(t, "failed", ch["status"])
			assert.Equal(t, tc.decline, ch["decline_code"])
			assert.True(t, strings.HasPrefix(ch["id"].(string), "ch_"))
			got := n.Do(t, apptest.Req{Method: "GET", Path: "/v1/charges/" + ch["id"].(string), Key: sk})
			assert.Equal(t, "failed", got.JSON["status"], "the failed charge is kept")
		}
	})
}

func TestChargeLifecycle(t *testing.T) {
	apptest.EachDriver(t, func(t *testing.T, driver string) {
		n, verify := verifiedNode(t, driver, func(c *app.Config) { c.Payments.MaxAmount = 1_000_000 })
		b, sk := n.Tenant(t)
		verify(b.Tenant.ID) // so a live key's charge is refused for its mode, not for verification
		pk := apptest.Key(b, accounts.KindPublishable, accounts.ModeTest)
		tok := tokenize(t, n, pk, "4242424242424242", "123")

		// Amounts and currencies.
		for _, tc := range []struct {
			body  string
			code  string
			param string
		}{
			{`{"amount": 10.5, "currency": "usd", "payment_method": "` + tok + `"}`, "parameter_invalid", "amount"},
			{`{"amount": "100", "currency": "usd", "payment_method": "` + tok + `"}`, "parameter_invalid", "amount"},
			{`{"amount": 1e3, "currency": "usd", "payment_method": "` + tok + `"}`, "parameter_invalid", "amount"},
			{`{"amount": -5, "currency": "usd", "payment_method": "` + tok + `"}`, "parameter_invalid", "amount"},
			{`{"amount": 0, "currency": "usd", "payment_method": "` + tok + `"}`, "amount_too_small", "amount"},
			{`{"amount": 1000001, "currency": "usd", "payment_method": "` + tok + `"}`, "amount_too_large", "amount"},
			{`{"amount": 99999999999999999999, "currency": "usd", "payment_method": "` + tok + `"}`, "parameter_invalid", "amount"},
			{`{"amount": 100, "currency": "xts", "payment_method": "` + tok + `"}`, "invalid_currency", "currency"},
			{`{"amount": 100, "payment_method": "` + tok + `"}`, "parameter_missing", "currency"},
			{`{"currency": "usd", "payment_method": "` + tok + `"}`, "parameter_missing", "amount"},
			{`{"amount": 100, "currency": "usd", "payment_method": "tok_nope"}`, "resource_missing", "payment_method"},
			{`{"amount": 100, "currency": "usd", "payment_method": "` + tok + `", "metadata": {"note": "4000 0000 0000 0002"}}`, "parameter_invalid", "metadata.note"},
			{`{"amount": 100, "currency": "usd", "payment_method": "` + tok + `", "metadata": {"4000000000000002": "x"}}`, "parameter_invalid", "metadata"},
		} {
			r := charge(t, n, sk, tc.body, "")
			assert.Equal(t, 400, r.Status, tc.body)
			assert.Equal(t, tc.code, r.ErrorCode(), tc.body)
			assert.Equal(t, tc.param, r.JSON["error"].(map[string]any)["param"], tc.body)
			assert.NotContains(t, string(r.Body), "0000 0000", "a refused card number is not echoed")
			assert.NotContains(t, string(r.Body), "000000000000", "a refused card number is not echoed")
		}
		for cur, amount := range map[string]int64{"jpy": 500, "usd": 1999, "bhd": 1500, "USD": 1} {
			r := charge(t, n, sk, map[string]any{"amount": amount, "currency": cur, "payment_method": tok}, "")
			require.Equal(t, 200, r.Status, string(r.Body))
			assert.Equal(t, strings.ToLower(cur), r.JSON["currency"])
			assert.EqualValues(t, amount, r.JSON["amount"])
		}

		// Authorize, capture part, refund in steps.
		r := charge(t, n, sk, map[string]any{"amount": 5000, "currency": "eur", "payment_method": tok, "capture": false, "metadata": map[string]string{"order": "o-1"}}, "")
		require.Equal(t, 200, r.Status)
		assert.Equal(t, "requires_capture", r.JSON["status"])
		assert.Equal(t, false, r.JSON["captured"])
		id := r.JSON["id"].(string)
		r = n.Do(t, apptest.Req{Method: "POST", Path: "/v1/charges/" + id + "/capture", Key: sk, Body: map[string]any{"amount": 5001}})
		assert.Equal(t, 400, r.Status)
		r = n.Do(t, apptest.Req{Method: "POST", Path: "/v1/charges/" + id + "/capture", Key: sk, Body: map[string]any{"amount": 4000}})
		require.Equal(t, 200, r.Status, string(r.Body))
		assert.Equal(t, "succeeded", r.JSON["status"])
		assert.EqualValues(t, 4000, r.JSON["amount_captured"])
		r = n.Do(t, apptest.Req{Method: "POST", Path: "/v1/charges/" + id + "/void", Key: sk})
		assert.Equal(t, 400, r.Status)
		r = n.Do(t, apptest.Req{Method: "POST", Path: "/v1/refunds", Key: sk, Body: map[string]any{"charge": id, "amount": 1500}})
		require.Equal(t, 200, r.Status, string(r.Body))
		assert.Equal(t, "succeeded", r.JSON["status"])
		refundID := r.JSON["id"].(string)
		r = n.Do(t, apptest.Req{Method: "POST", Path: "/v1/refunds", Key: sk, Body: map[string]any{"charge": id, "amount": 2501}})
		assert.Equal(t, 400, r.Status)
		assert.Equal(t, "amount_too_large", r.ErrorCode())
		r = n.Do(t, apptest.Req{Method: "POST", Path: "/v1/refunds", Key: sk, Body: map[string]any{"charge": id}})
		require.Equal(t, 200, r.Status)
		assert.EqualValues(t, 2500, r.JSON["amount"])
		r = n.Do(t, apptest.Req{Method: "GET", Path: "/v1/charges/" + id, Key: sk})
		assert.EqualValues(t, 4000, r.JSON["amount_refunded"])
		assert.Equal(t, true, r.JSON["refunded"])
		assert.Equal(t, "o-1", r.JSON["metadata"].(map[string]any)["order"])
		r = n.Do(t, apptest.Req{Method: "GET", Path: "/v1/refunds/" + refundID, Key: sk})
		assert.EqualValues(t, 1500, r.JSON["amount"])

		// Void an authorization.
		r = charge(t, n, sk, map[string]any{"amount": 300, "currency": "usd", "payment_method": tok, "capture": false}, "")
		vid := r.JSON["id"].(string)
		r = n.Do(t, apptest.Req{Method: "POST", Path: "/v1/charges/" + vid + "/void", Key: sk})
		require.Equal(t, 200, r.Status)
		assert.Equal(t, "canceled", r.JSON["status"])
		r = n.Do(t, apptest.Req{Method: "POST", Path: "/v1/charges/" + vid + "/capture", Key: sk})
		assert.Equal(t, 400, r.Status)
		assert.Equal(t, "charge_not_capturable", r.ErrorCode())

		// Idempotent replay: same key and body, one charge; other body, 422.
		body := map[string]any{"amount": 777, "currency": "usd", "payment_method": tok}
		r1 := charge(t, n, sk, body, "order-777")
		r2 := charge(t, n, sk, body, "order-777")
		require.Equal(t, 200, r1.Status)
		assert.Equal(t, r1.JSON["id"], r2.JSON["id"])
		assert.Equal(t, "true", r2.Header.Get("Idempotent-Replayed"))
		body["amount"] = 778
		assert.Equal(t, 422, charge(t, n, sk, body, "order-777").Status)
		declined := tokenize(t, n, pk, "4000000000000002", "123")
		d1 := charge(t, n, sk, map[string]any{"amount": 100, "currency": "usd", "payment_method": declined}, "decl-1")
		d2 := charge(t, n, sk, map[string]any{"amount": 100, "currency": "usd", "payment_method": declined}, "decl-1")
		assert.Equal(t, 402, d2.Status)
		assert.Equal(t, d1.JSON["charge"].(map[string]any)["id"], d2.JSON["charge"].(map[string]any)["id"], "a decline replays too")
		rr := n.Do(t, apptest.Req{Method: "POST", Path: "/v1/refunds", Key: sk, Body: map[string]any{"charge": r1.JSON["id"]}, Header: map[string]string{"Idempotency-Key": "rf"}})
		rr2 := n.Do(t, apptest.Req{Method: "POST", Path: "/v1/refunds", Key: sk, Body: map[string]any{"charge": r1.JSON["id"]}, Header: map[string]string{"Idempotency-Key": "rf"}})
		assert.Equal(t, rr.JSON["id"], rr2.JSON["id"])

		// List with a cursor, newest first.
		var ids []string
		after := ""
		for {
			path := "/v1/charges?limit=4"
			if after != "" {
				path += "&starting_after=" + after
			}
			r := n.Do(t, apptest.Req{Method: "GET", Path: path, Key: sk})
			require.Equal(t, 200, r.Status)
			data := r.JSON["data"].([]any)
			for _, d := range data {
				ids = append(ids, d.(map[string]any)["id"].(string))
			}
			if r.JSON["has_more"] != true {
				break
			}
			after = ids[len(ids)-1]
		}
		assert.Len(t, ids, 8)
		assert.Equal(t, d1.JSON["charge"].(map[string]any)["id"], ids[0])
		assert.Equal(t, 400, n.Do(t, apptest.Req{Method: "GET", Path: "/v1/charges?limit=500", Key: sk}).Status)

		// Keys: charges:read cannot charge; publishable keys cannot; the
		// live key sees none of the test charges.
		rk := n.Do(t, apptest.Req{Method: "POST", Path: "/v1/api_keys", Key: sk, Body: map[string]any{"type": "restricted", "scopes": []string{"charges:read"}}}).JSON["secret"].(string)
		assert.Equal(t, 403, charge(t, n, rk, map[string]any{"amount": 100, "currency": "usd", "payment_method": tok}, "").Status)
		assert.Equal(t, 200, n.Do(t, apptest.Req{Method: "GET", Path: "/v1/charges/" + id, Key: rk}).Status)
		assert.Equal(t, 403, charge(t, n, pk, map[string]any{"amount": 100, "currency": "usd", "payment_method": tok}, "").Status)
		live := apptest.Key(b, accounts.KindSecret, accounts.ModeLive)
		assert.Equal(t, 404, n.Do(t, apptest.Req{Method: "GET", Path: "/v1/charges/" + id, Key: live}).Status)
		assert.Equal(t, 400, charge(t, n, live, map[string]any{"amount": 100, "currency": "usd", "payment_method": tok}, "").Status)

		// Every change is audited.
		_, err := n.App.Audit.SealAll(context.Background())
		require.NoError(t, err)
		entries, err := n.App.Audit.List(context.Background(), audit.Filter{Target: id})
		require.NoError(t, err)
		var actions []string
		for _, e := range entries {
			actions = append(actions, e.Action)
		}
		assert.Equal(t, []string{"charge.created", "charge.succeeded", "charge.captured"}, actions)
	})
}

func TestChargeProcessorTimeouts(t *testing.T) {
	apptest.EachDriver(t, func(t *testing.T, driver string) {
		n := apptest.New(t, driver, func(c *app.Config) {
			c.Payments.ProcessorTimeout = 100 * time.Millisecond
			c.Payments.ResolveAfter = time.Second
		})
		b, sk := n.Tenant(t)
		tok := tokenize(t, n, apptest.Key(b, accounts.KindPublishable, accounts.ModeTest), "4242424242424242", "123")
		sim := n.App.Simulator

		sim.InjectFault(payments.OpAuthorize, payments.FaultTimeout, 1)
		r := charge(t, n, sk, map[string]any{"amount": 100, "currency": "usd", "payment_method": tok}, "")
		require.Equal(t, 200, r.Status, "one lost answer is retried with the same reference")
		auth, _ := sim.Authorization(r.JSON["id"].(string))
		assert.EqualValues(t, 100, auth.Captured)

		sim.InjectFault(payments.OpAuthorize, payments.FaultTimeout, 3)
		r = charge(t, n, sk, map[string]any{"amount": 100, "currency": "usd", "payment_method": tok}, "t-1")
		require.Equal(t, 402, r.Status)
		assert.Equal(t, "processing_error", r.ErrorCode())
		id := r.JSON["charge"].(map[string]any)["id"].(string)
		auth, _ = sim.Authorization(id)
		assert.True(t, auth.Voided, "the acquirer's authorization was reversed")

		// Capture with the processor down: 503, nothing changed, retry works.
		r = charge(t, n, sk, map[string]any{"amount": 100, "currency": "usd", "payment_method": tok, "capture": false}, "")
		cid := r.JSON["id"].(string)
		sim.InjectFault(payments.OpCapture, payments.FaultError, 3)
		r = n.Do(t, apptest.Req{Method: "POST", Path: "/v1/charges/" + cid + "/capture", Key: sk, Header: map[string]string{"Idempotency-Key": "cap"}})
		assert.Equal(t, 503, r.Status)
		assert.Equal(t, "processor_unavailable", r.ErrorCode())
		r = n.Do(t, apptest.Req{Method: "POST", Path: "/v1/charges/" + cid + "/capture", Key: sk, Header: map[string]string{"Idempotency-Key": "cap"}})
		assert.Equal(t, 200, r.Status, "a 5xx is not stored: the retry runs again")
		assert.Equal(t, "succeeded", r.JSON["status"])
	})
}

// TestNoCardDataAtRest tokenizes and charges every test card, with replays,
// captures, refunds, voids and declines, then searches every log line and
// everything stored: every table on Postgres, every field of the memory
// store, for the card numbers (plain, spaced, hex) and the CVCs. Card
// numbers are also logged through the node's logger, which must redact them.
func TestNoCardDataAtRest(t *testing.T) {
	apptest.EachDriver(t, func(t *testing.T, driver string) {
		n := apptest.New(t, driver)
		b, sk := n.Tenant(t)
		pk := apptest.Key(b, accounts.KindPublishable, accounts.ModeTest)
		var responses bytes.Buffer
		for i, tc := range testCards {
			spaced := tc.number[:4] + " " + tc.number[4:8] + " " + tc.number[8:]
			r := n.Do(t, apptest.Req{Method: "POST", Path: "/v1/tokens", Key: pk, Body: cardBody(spaced, tc.cvc),
				Header: map[string]string{"Idempotency-Key": fmt.Sprint("tok-", i)}})
			require.Equal(t, 200, r.Status)
			responses.Write(r.Body)
			tok := r.JSON["id"].(string)
			for range 2 { // the second is a replay
				r = charge(t, n, sk, map[string]any{"amount": 1000, "currency": "usd", "payment_method": tok, "capture": i%2 == 0}, fmt.Sprint("ch-", i))
				responses.Write(r.Body)
			}
			if r.Status == 200 {
				id := r.JSON["id"].(string)
				if i%2 == 0 {
					responses.Write(n.Do(t, apptest.Req{Method: "POST", Path: "/v1/refunds", Key: sk, Body: map[string]any{"charge": id, "amount": 400}}).Body)
				} else {
					responses.Write(n.Do(t, apptest.Req{Method: "POST", Path: "/v1/charges/" + id + "/void", Key: sk}).Body)
				}
			}
			responses.Write(n.Do(t, apptest.Req{Method: "GET", Path: "/v1/tokens/" + tok, Key: sk}).Body)
			// A malformed request and a bad card, whose errors are logged.
			responses.Write(n.Do(t, apptest.Req{Method: "POST", Path: "/v1/tokens", Key: pk, Body: `{"card":{"number":"` + tc.number + `","cvc":"` + tc.cvc + `",`}).Body)
			responses.Write(n.Do(t, apptest.Req{Method: "POST", Path: "/v1/tokens", Key: pk, Body: cardBody(tc.number+"0", tc.cvc)}).Body)
			// The node's own logger, as any code path may use it: card numbers
			// in the message, in attributes, in an error and in a struct.
			n.App.Log.Error("card "+spaced+" seen", "number", tc.number, "dashed", strings.ReplaceAll(spaced, " ", "-"),
				"err", fmt.Errorf("card %s declined", tc.number), "card", struct{ Number string }{tc.number})
		}
		_, err := n.App.Audit.SealAll(context.Background())
		require.NoError(t, err)

		var stored string
		if n.App.Postgres != nil {
			stored = dumpAllTables(t, n)
		} else {
			stored = dumpValue(reflect.ValueOf(n.App.Memory))
		}
		require.Contains(t, stored, b.Tenant.ID, "the dump really covers the data")
		require.Contains(t, stored, "charge.succeeded", "… including the outbox")
		logs := n.Logs.String()
		require.Contains(t, logs, `"route":"/v1/tokens"`)

		for _, tc := range testCards {
			for where, text := range map[string]string{"database": stored, "logs": logs, "responses": responses.String()} {
				for _, form := range []string{tc.number, tc.number[:4] + " " + tc.number[4:8], tc.number[:len(tc.number)-4],
					hex.EncodeToString([]byte(tc.number))} {
					assertAbsent(t, text, form, "card number in "+where)
				}
				// A CVC is 3-4 digits: look for it as a value, not inside ids.
				for _, form := range []string{`"` + tc.cvc + `"`, `:` + tc.cvc + `,`, `:` + tc.cvc + `}`, `=` + tc.cvc, `\"` + tc.cvc + `\"`, "\n" + tc.cvc + "\n"} {
					assertAbsent(t, text, form, "CVC in "+where)
				}
			}
		}
		assertAbsent(t, strings.ToLower(stored), `"cvc"`, "no field named cvc is stored")
	})
}

// assertAbsent fails when needle occurs in text, quoting only its surroundings.
func assertAbsent(t *testing.T, text, needle, what string) {
	t.Helper()
	if i := strings.Index(text, needle); i >= 0 {
		t.Errorf("%s: found %q in …%s…", what, needle, text[max(0, i-80):min(len(text), i+len(needle)+80)])
	}
}

// dumpValue renders every string, byte slice and number reachable from v,
// unexported fields included (read-only reflection), one per line.
func dumpValue(v reflect.Value) string {
	var sb strings.Builder
	seen := map[uintptr]bool{}
	var walk func(v reflect.Value)
	walk = func(v reflect.Value) {
		switch v.Kind() {
		case reflect.Pointer, reflect.Interface:
			if v.IsNil() {
				return
			}
			if v.Kind() == reflect.Pointer {
				if seen[v.Pointer()] {
					return
				}
				seen[v.Pointer()] = true
			}
			walk(v.Elem())
		case reflect.Struct:
			for i := range v.NumField() {
				walk(v.Field(i))
			}
		case reflect.Map:
			it := v.MapRange()
			for it.Next() {
				walk(it.Key())
				walk(it.Value())
			}
		case reflect.Slice, reflect.Array:
			if v.Type().Elem().Kind() == reflect.Uint8 {
				b := make([]byte, v.Len())
				for i := range b {
					b[i] = byte(v.Index(i).Uint())
				}
				sb.Write(b)
				sb.WriteString("\n" + hex.EncodeToString(b) + "\n")
				return
			}
			for i := range v.Len() {
				walk(v.Index(i))
			}
		case reflect.String:
			sb.WriteString(v.String() + "\n")
		}
	}
	walk(v)
	return sb.String()
}

// Benchmarks over loopback HTTP with 16 concurrent keep-alive clients:
// tokenizations (publishable key, CVC verification with the simulated
// acquirer, envelope encryption, insert, audit) and merchant charges
// (detokenize, pending insert + audit, simulated authorization+capture,
// result + audit + outbox event, stored idempotent response).
func BenchmarkTokenize(b *testing.B) {
	for _, d := range apptest.Drivers {
		b.Run(d, func(b *testing.B) {
			benchPayments(b, d, func(i int64, keys benchKeys) *http.Request {
				body, _ := json.Marshal(cardBody("4242424242424242", "123"))
				return benchReq("/v1/tokens", keys.pk, i, body)
			})
		})
	}
}

func BenchmarkCharge(b *testing.B) {
	for _, d := range apptest.Drivers {
		b.Run(d, func(b *testing.B) {
			benchPayments(b, d, func(i int64, keys benchKeys) *http.Request {
				body := fmt.Appendf(nil, `{"amount":%d,"currency":"usd","payment_method":%q}`, 100+i%1000, keys.tok)
				return benchReq("/v1/charges", keys.sk, i, body)
			})
		})
	}
}

type benchKeys struct{ sk, pk, tok string }

func benchReq(path, key string, i int64, body []byte) *http.Request {
	req, _ := http.NewRequest(http.MethodPost, "http://placeholder"+path, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", fmt.Sprint("bench-", i))
	return req
}

func benchPayments(b *testing.B, driver string, mk func(i int64, keys benchKeys) *http.Request) {
	n := apptest.New(b, driver, func(c *app.Config) { c.Log.Level = "error" })
	bs, sk := n.Tenant(b)
	keys := benchKeys{sk: sk, pk: apptest.Key(bs, accounts.KindPublishable, accounts.ModeTest)}
	r := n.Do(b, apptest.Req{Method: "POST", Path: "/v1/tokens", Key: keys.pk, Body: cardBody("4242424242424242", "123")})
	keys.tok = r.JSON["id"].(string)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	var seq atomic.Int64
	b.SetParallelism(8) // 8 × GOMAXPROCS(2) = 16 clients
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req := mk(seq.Add(1), keys)
			req.URL.Host = n.HTTP.Listener.Addr().String()
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
}

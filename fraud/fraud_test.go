package fraud_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/fraud"
	"github.com/perfectpay/perfectpay/internal/egress"
	"github.com/perfectpay/perfectpay/policies"
)

func sampleCharge() *fraud.Charge {
	return &fraud.Charge{
		Reference: "mdt_1:2026-03-01T09:00:00Z", TenantID: "ten_1", AgentID: "agt_1", MandateID: "mdt_1",
		Amount: 12345, Currency: "usd", Merchant: policies.Merchant{ID: "acct_1", Name: "Acme Books", MCC: "5942", Country: "US"},
		Card: fraud.Card{Fingerprint: "fp_abc", Brand: "visa", Last4: "4242"}, At: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC),
	}
}

// fake is a vendor's endpoint: it checks the request, then answers.
func fake(t *testing.T, path string, check func(r *http.Request, body map[string]any), answer string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		assert.Equal(t, http.MethodPost, r.Method)
		assert.Equal(t, path, r.URL.RequestURI())
		assert.Equal(t, "application/json", r.Header.Get("Content-Type"))
		raw, err := io.ReadAll(r.Body)
		require.NoError(t, err)
		var body map[string]any
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber() // prices are decimal strings of the document
		require.NoError(t, dec.Decode(&body))
		r.Body = io.NopCloser(nil)
		r.Header.Set("X-Raw-Body", string(raw))
		check(r, body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, answer)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestSignifydRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		action   string
		score    string
		decision string
		ours     int
	}{{"ACCEPT", "920", fraud.Accept, 8}, {"HOLD", "430", fraud.Review, 57}, {"REJECT", "35", fraud.Reject, 96}} {
		srv := fake(t, "/v3/orders/events/checkouts", func(r *http.Request, body map[string]any) {
			user, pass, ok := r.BasicAuth()
			assert.True(t, ok)
			assert.Equal(t, "sig_key", user)
			assert.Empty(t, pass)
			assert.Equal(t, "mdt_1:2026-03-01T09:00:00Z", body["checkoutId"])
			purchase := body["purchase"].(map[string]any)
			assert.Equal(t, "123.45", purchase["totalPrice"].(json.Number).String())
			assert.Equal(t, "USD", purchase["currency"])
			tx := body["transactions"].([]any)[0].(map[string]any)
			assert.Equal(t, "4242", tx["checkoutPaymentDetails"].(map[string]any)["cardLast4"])
		}, `{"signifydId": 44, "checkoutId": "mdt_1:2026-03-01T09:00:00Z", "orderId": "mdt_1:2026-03-01T09:00:00Z",
			"decision": {"createdAt": "2026-03-01T09:00:01Z", "checkpointAction": "`+tc.action+`", "checkpointActionReason": "model", "score": `+tc.score+`}}`)
		r, err := fraud.NewSignifyd(fraud.VendorConfig{URL: srv.URL, Key: "sig_key"}, loopback).Screen(context.Background(), sampleCharge())
		require.NoError(t, err)
		assert.Equal(t, tc.decision, r.Decision)
		assert.Equal(t, tc.ours, r.Score)
		assert.Equal(t, []string{"model"}, r.Reasons)
	}
}

func TestRiskifiedRoundTrip(t *testing.T) {
	for _, tc := range []struct{ status, decision string }{{"approved", fraud.Accept}, {"declined", fraud.Reject}} {
		srv := fake(t, "/api/decide", func(r *http.Request, body map[string]any) {
			assert.Equal(t, "application/vnd.riskified.com; version=2", r.Header.Get("Accept"))
			assert.Equal(t, "shop.example", r.Header.Get("X-Riskified-Shop-Domain"))
			mac := hmac.New(sha256.New, []byte("rsk_token"))
			mac.Write([]byte(r.Header.Get("X-Raw-Body")))
			assert.Equal(t, hex.EncodeToString(mac.Sum(nil)), r.Header.Get("X-Riskified-Hmac-Sha256"), "the body is signed")
			order := body["order"].(map[string]any)
			assert.Equal(t, "123.45", order["total_price"].(json.Number).String())
			assert.Equal(t, "XXXX-XXXX-XXXX-4242", order["payment_details"].([]any)[0].(map[string]any)["credit_card_number"])
		}, `{"order": {"id": "mdt_1:2026-03-01T09:00:00Z", "status": "`+tc.status+`", "description": "Reviewed and `+tc.status+`"}}`)
		r, err := fraud.NewRiskified(fraud.VendorConfig{URL: srv.URL, Key: "rsk_token", Account: "shop.example"}, loopback).Screen(context.Background(), sampleCharge())
		require.NoError(t, err)
		assert.Equal(t, tc.decision, r.Decision)
	}
}

func TestKountRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		decision, omniscore, ours string
		score                     int
	}{{"APPROVE", "88.5", fraud.Accept, 11}, {"REVIEW", "40", fraud.Review, 60}, {"DECLINE", "3", fraud.Reject, 97}} {
		srv := fake(t, "/commerce/v2/orders?riskInquiry=true", func(r *http.Request, body map[string]any) {
			assert.Equal(t, "Bearer kount_key", r.Header.Get("Authorization"))
			assert.Equal(t, "agents", body["channel"])
			tx := body["transactions"].([]any)[0].(map[string]any)
			assert.Equal(t, "123.45", tx["orderTotal"].(json.Number).String())
			assert.Equal(t, "USD", tx["currency"])
		}, `{"order": {"orderId": "K1", "riskInquiry": {"decision": "`+tc.decision+`", "omniscore": `+tc.omniscore+`}}}`)
		r, err := fraud.NewKount(fraud.VendorConfig{URL: srv.URL, Key: "kount_key", Account: "agents"}, loopback).Screen(context.Background(), sampleCharge())
		require.NoError(t, err)
		assert.Equal(t, tc.ours, r.Decision)
		assert.Equal(t, tc.score, r.Score)
	}
}

func TestVendorErrorsAreErrors(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusBadGateway) }))
	defer srv.Close()
	_, err := fraud.NewKount(fraud.VendorConfig{URL: srv.URL, Key: "k"}, loopback).Screen(context.Background(), sampleCharge())
	require.Error(t, err)
	odd := fake(t, "/api/decide", func(*http.Request, map[string]any) {}, `{"order": {"status": "maybe"}}`)
	_, err = fraud.NewRiskified(fraud.VendorConfig{URL: odd.URL, Key: "k"}, loopback).Screen(context.Background(), sampleCharge())
	require.ErrorIs(t, err, fraud.ErrBadAnswer)
}

// loopback lets the adapters reach the fake vendors on this machine over
// plain http, as the egress guard does in dev mode.
var loopback = egress.Policy{AllowHTTPLoopback: true}

// The adapters reach their vendor only through the egress guard: with
// the production policy a vendor on a loopback (or private) address is
// refused before any request leaves, plain http is refused, a redirect is
// an answer (not followed), and an answer past 1 MiB is refused.
func TestVendorsGoThroughTheEgressGuard(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		hits.Add(1)
		_, _ = io.WriteString(w, `{"order": {"status": "approved"}}`)
	}))
	defer srv.Close()
	for _, s := range []fraud.Screener{
		fraud.NewSignifyd(fraud.VendorConfig{URL: srv.URL, Key: "k"}, egress.Policy{}),
		fraud.NewRiskified(fraud.VendorConfig{URL: srv.URL, Key: "k"}, egress.Policy{}),
		fraud.NewKount(fraud.VendorConfig{URL: srv.URL, Key: "k"}, egress.Policy{}),
	} {
		_, err := s.Screen(context.Background(), sampleCharge())
		require.ErrorIs(t, err, egress.ErrDestinationRefused, s.Name())
	}
	_, err := fraud.NewKount(fraud.VendorConfig{URL: "http://kount.example", Key: "k"}, egress.Policy{}).Screen(context.Background(), sampleCharge())
	require.ErrorContains(t, err, "must use https")
	assert.Zero(t, hits.Load(), "nothing reached the vendor")

	moved := httptest.NewServer(http.RedirectHandler(srv.URL+"/api/decide", http.StatusFound))
	defer moved.Close()
	_, err = fraud.NewRiskified(fraud.VendorConfig{URL: moved.URL, Key: "k"}, loopback).Screen(context.Background(), sampleCharge())
	require.ErrorContains(t, err, "answered 302")
	assert.Zero(t, hits.Load(), "the redirect is not followed")

	big := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, `{"order": {"status": "approved", "description": "`+strings.Repeat("x", 1<<20)+`"}}`)
	}))
	defer big.Close()
	_, err = fraud.NewRiskified(fraud.VendorConfig{URL: big.URL, Key: "k"}, loopback).Screen(context.Background(), sampleCharge())
	require.ErrorIs(t, err, fraud.ErrBadAnswer)
	assert.ErrorContains(t, err, "longer than")
}

// slow is a screener that answers when released, or never.
type slow struct{ release chan struct{} }

func (slow) Name() string { return "slow" }

func (s slow) Screen(ctx context.Context, _ *fraud.Charge) (fraud.Result, error) {
	select {
	case <-s.release:
		return fraud.Result{Decision: fraud.Accept}, nil
	case <-ctx.Done():
		return fraud.Result{}, ctx.Err()
	}
}

// A screener past its timeout is "unavailable"; the tenant's fail mode
// rides along for the policy, which denies only when it fails closed.
func TestScreenerTimeoutFailOpenAndClosed(t *testing.T) {
	s := slow{release: make(chan struct{})}
	defer close(s.release)
	for _, closed := range []bool{false, true} {
		res, err := fraud.Screen(context.Background(), s, sampleCharge(), time.Millisecond, closed)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		assert.Equal(t, fraud.Unavailable, res.Decision)
		assert.Equal(t, closed, res.FailClosed)

		eng, err := policies.New(context.Background(), policies.Velocity{})
		require.NoError(t, err)
		in := policyInput()
		in.Fraud = &policies.Fraud{Screener: res}
		d, err := eng.Decide(context.Background(), in)
		require.NoError(t, err)
		if closed {
			assert.Equal(t, policies.Deny, d.Result)
			require.Len(t, d.Reasons, 1)
			assert.Equal(t, "screener_unavailable", d.Reasons[0].Code)
		} else {
			assert.Equal(t, policies.Allow, d.Result, "%+v", d.Reasons)
		}
	}
}

func policyInput() *policies.Input {
	return &policies.Input{
		Now:    time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC),
		Charge: policies.Charge{Amount: 2000, Currency: "USD", PaymentMethod: "tok_1", Merchant: policies.Merchant{ID: "acct_1", Name: "Acme", MCC: "5942", Country: "US", Domains: []string{}}},
		Token:  policies.Token{Sub: "cus_1", ClientID: "agt_1", AuthorizationDetails: []policies.AuthorizationDetail{{Type: "payment_mandate", MandateID: "mdt_1"}}},
		Chain: []policies.Mandate{{ID: "mdt_1", Status: "active", Agent: "agt_1", Payer: "cus_1",
			Limits: policies.Limits{Currency: "USD", Budget: 100000, PaymentMethods: []string{"tok_1"}}}},
		Agent:  policies.Agent{ClientID: "agt_1", Status: "active"},
		Tenant: policies.Tenant{ID: "ten_1", Status: "active"},
	}
}

func TestRulesScreener(t *testing.T) {
	r := fraud.NewRules(fraud.RulesConfig{RecentDeclines: 3, DeclinesWeight: 40, CardDeclinedWeight: 30,
		RiskyCategories: []string{"7995"}, CategoryWeight: 30, Review: 50, Reject: 90})
	c := sampleCharge()
	res, err := r.Screen(context.Background(), c)
	require.NoError(t, err)
	assert.Equal(t, fraud.Accept, res.Decision)
	c.Velocity = fraud.Velocities{Agent: fraud.Stats{Hour: fraud.Totals{Declines: 4}}, Card: fraud.Stats{Hour: fraud.Totals{Declines: 1}}}
	res, _ = r.Screen(context.Background(), c)
	assert.Equal(t, fraud.Review, res.Decision)
	assert.Equal(t, 70, res.Score)
	c.Merchant.MCC = "7995"
	res, _ = r.Screen(context.Background(), c)
	assert.Equal(t, fraud.Reject, res.Decision)
	assert.Len(t, res.Reasons, 3)
}

func TestWindowsCountAndSlide(t *testing.T) {
	w := fraud.NewWindows(1000)
	t0 := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	for i := range 7 {
		w.Record(t0.Add(time.Duration(i)*time.Minute), 1000, i%3 == 0, "merchant:m")
	}
	st := w.Stats("merchant:m", t0.Add(10*time.Minute))
	assert.Equal(t, fraud.Totals{Count: 7, Declines: 3, Amount: 7000}, st.Hour)
	assert.Equal(t, st.Hour, st.Day)
	st = w.Stats("merchant:m", t0.Add(61*time.Minute))
	assert.Zero(t, st.Hour.Count, "out of the hour")
	assert.Equal(t, 7, st.Day.Count, "still in the day")
	assert.Zero(t, w.Stats("merchant:m", t0.Add(25*time.Hour)).Day.Count)
	assert.Zero(t, w.Stats("other", t0).Hour.Count)
}

func TestWindowsBoundedMemory(t *testing.T) {
	w := fraud.NewWindows(1000)
	t0 := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	for i := range 20_000 {
		w.Record(t0, 1, false, "agent:"+string(rune('a'+i%26))+time.Duration(i).String())
	}
	assert.LessOrEqual(t, w.Len(), 1000)
}

// An agent's synthetic history of ordinary charges, then one far out of
// line: flagged once, the flag standing until cleared.
func TestAnomalyOnSyntheticHistory(t *testing.T) {
	a := fraud.NewAnomalies(fraud.AnomalyConfig{MinHistory: 10, Threshold: 6}, 1000)
	for i := range 30 {
		a.Record("agt", int64(2000+(i%7)*150), "5942") // 20.00 to 29.00
	}
	f, isNew := a.Check("agt", 2600, "5942")
	assert.Nil(t, f, "an ordinary charge")
	assert.False(t, isNew)
	f, isNew = a.Check("agt", 250000, "5942")
	require.NotNil(t, f, "a charge a hundred times the usual")
	assert.True(t, isNew)
	assert.Equal(t, "charge_size", f.Metric)
	assert.Greater(t, f.Score, 6.0)
	assert.Contains(t, f.Message, "median of 2450")
	f, isNew = a.Check("agt", 2100, "5942")
	require.NotNil(t, f, "the flag stands for the next charges")
	assert.False(t, isNew)
	assert.True(t, a.Clear("agt"))
	f, _ = a.Check("agt", 2100, "5942")
	assert.Nil(t, f, "cleared by a person")
	assert.False(t, a.Clear("agt"))

	young := fraud.NewAnomalies(fraud.AnomalyConfig{MinHistory: 10, Threshold: 6}, 1000)
	for range 5 {
		young.Record("new", 2000, "5942")
	}
	f, _ = young.Check("new", 250000, "5942")
	assert.Nil(t, f, "too short a history to judge")
}

// An agent's synthetic history: thirty charges at bookshops and
// stationers (two categories), then one at a money transfer service (a
// category it never used) is flagged for its merchant mix, with the
// numbers in the reason. A varied history, or a short one, makes a new
// category likely enough, and charge sizes stay as they were.
func TestAnomalyMerchantMix(t *testing.T) {
	cfg := fraud.AnomalyConfig{MinHistory: 10, MerchantMix: 0.05}
	a := fraud.NewAnomalies(cfg, 1000)
	for i := range 30 {
		a.Record("agt", 2500, []string{"5942", "5943"}[i%3/2]) // 20 bookshop, 10 stationer
	}
	f, isNew := a.Check("agt", 2500, "5943")
	assert.Nil(t, f, "a category it uses")
	assert.False(t, isNew)
	f, isNew = a.Check("agt", 2500, "4829")
	require.NotNil(t, f, "a category it never used")
	assert.True(t, isNew)
	assert.Equal(t, "merchant_mix", f.Metric)
	assert.InDelta(t, 31.0, f.Score, 0.01, "1 / (1/31)")
	assert.Contains(t, f.Message, "merchant category 4829, which none of its last 30 charges used (2 categories, 0 of them used once): a new category had a likelihood of 3.2% (limit 5.0%)")
	f, isNew = a.Check("agt", 2500, "5942")
	require.NotNil(t, f, "the flag stands for the next charges")
	assert.False(t, isNew)

	t.Run("varied history", func(t *testing.T) {
		a := fraud.NewAnomalies(cfg, 1000)
		for i := range 30 { // 20 categories, 10 of them used once
			a.Record("agt", 2500, fmt.Sprint(5000+i%20))
		}
		f, _ := a.Check("agt", 2500, "4829")
		assert.Nil(t, f, "new categories are usual for this agent")
	})
	t.Run("short history", func(t *testing.T) {
		a := fraud.NewAnomalies(cfg, 1000)
		for range 15 { // 1/16 = 6.25 %: not yet unlikely enough
			a.Record("agt", 2500, "5942")
		}
		f, _ := a.Check("agt", 2500, "4829")
		assert.Nil(t, f, "too short a history to call a new category rare")
		a.Record("agt", 2500, "5942")
		for range 4 {
			a.Record("agt", 2500, "5942")
		}
		f, _ = a.Check("agt", 2500, "4829")
		require.NotNil(t, f, "1/21 = 4.8 %")
		assert.Contains(t, f.Message, "likelihood of 4.8%")
	})
	t.Run("off", func(t *testing.T) {
		a := fraud.NewAnomalies(fraud.AnomalyConfig{MinHistory: 10, Threshold: 6}, 1000)
		for range 30 {
			a.Record("agt", 2500, "5942")
		}
		f, _ := a.Check("agt", 2500, "4829")
		assert.Nil(t, f, "merchant_mix 0 turns the check off")
	})
	t.Run("the history keeps its last 32 charges", func(t *testing.T) {
		a := fraud.NewAnomalies(cfg, 1000)
		a.Record("agt", 2500, "4829")
		for range 40 {
			a.Record("agt", 2500, "5942")
		}
		f, _ := a.Check("agt", 2500, "4829")
		require.NotNil(t, f, "a category used only before the last 32 charges is new again")
		assert.Contains(t, f.Message, "none of its last 32 charges")
	})
}

// The Assessor takes the merchant category from the merchant's profile:
// its MCC, else the merchant itself.
func TestAssessorMerchantMix(t *testing.T) {
	a := fraud.NewAssessor(fraud.Config{MaxKeys: 1000, Anomaly: fraud.AnomalyConfig{MinHistory: 10, MerchantMix: 0.05}}, nil, nil, nil, nil)
	in := policyInput()
	t0 := time.Date(2026, 3, 1, 0, 30, 0, 0, time.UTC)
	in.Charge.Merchant.MCC = ""
	for i := range 25 {
		in.Now = t0.Add(time.Duration(i) * time.Hour)
		a.Assess(context.Background(), in)
		require.Nil(t, in.Fraud.Anomaly, "charge %d", i)
		a.Observe(context.Background(), in, false)
	}
	in.Charge.Merchant.ID = "acct_elsewhere"
	a.Assess(context.Background(), in)
	require.NotNil(t, in.Fraud.Anomaly)
	assert.Equal(t, "merchant_mix", in.Fraud.Anomaly.Metric)
	assert.Contains(t, in.Fraud.Anomaly.Message, "merchant category acct_elsewhere")
	assert.Equal(t, fraud.MerchantCategory(policies.Merchant{ID: "acct_1", MCC: "5942"}), "5942")
}

// An agent that spends steadily through the day, then many times its
// hourly average within an hour, is flagged for its spend rate.
func TestAnomalySpendRate(t *testing.T) {
	a := fraud.NewAssessor(fraud.Config{MaxKeys: 1000, Anomaly: fraud.AnomalyConfig{MinHistory: 10, SpendRateFactor: 5}}, nil, nil, nil, nil)
	in := policyInput()
	t0 := time.Date(2026, 3, 1, 0, 30, 0, 0, time.UTC)
	for h := range 20 { // a charge of 20.00 an hour, each in the charge's size range
		in.Now = t0.Add(time.Duration(h) * time.Hour)
		in.Charge.Amount = 2000
		a.Assess(context.Background(), in)
		require.Nil(t, in.Fraud.Anomaly, "hour %d", h)
		a.Observe(context.Background(), in, false)
	}
	in.Now = t0.Add(20 * time.Hour)
	for i := range 4 { // 4 charges of 20.00 within the hour: 4× the average, under 5×
		in.Now = in.Now.Add(time.Minute)
		a.Assess(context.Background(), in)
		require.Nil(t, in.Fraud.Anomaly, "charge %d of the burst", i+1)
		a.Observe(context.Background(), in, false)
	}
	in.Now = in.Now.Add(time.Minute)
	in.Charge.Amount = 3000
	a.Assess(context.Background(), in)
	require.NotNil(t, in.Fraud.Anomaly, "the hour passes five times the average")
	assert.Equal(t, "spend_rate", in.Fraud.Anomaly.Metric)
	assert.Contains(t, in.Fraud.Anomaly.Message, "11000 spent in the last hour with this charge")
	f, err := a.AnomalyOf(context.Background(), "ten_1", "agt_1")
	require.NoError(t, err)
	assert.NotNil(t, f, "the flag stands until cleared")
}

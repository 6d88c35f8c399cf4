package policies

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

// BenchmarkDecideSidecar times the decision BenchmarkDecide times, asked of
// the same policy in an `opa run --server` sidecar over loopback HTTP (the
// usual alternative to embedding OPA), so the two p50s compare directly.
// It needs PERFECTPAY_BENCH_OPA_URL (the bench/sidebyside program starts
// the sidecar with policies/charge.rego and sets it) and skips without it.
func BenchmarkDecideSidecar(b *testing.B) {
	base := os.Getenv("PERFECTPAY_BENCH_OPA_URL")
	if base == "" {
		b.Skip("PERFECTPAY_BENCH_OPA_URL is not set (see bench/sidebyside)")
	}
	e := newEngine(b)
	in := baseInput()
	in.Limits = &InputLimits{Velocity: e.Velocity()}
	in.Currencies = in.currencies()
	doc, err := in.JSON()
	if err != nil {
		b.Fatal(err)
	}
	body := append(append([]byte(`{"input":`), doc...), '}')
	u := strings.TrimSuffix(base, "/") + "/v1/data/" + strings.ReplaceAll(strings.TrimPrefix(ChargeQuery, "data."), ".", "/")
	client := &http.Client{Timeout: 10 * time.Second}
	ctx := context.Background()
	ask := func() (Decision, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
		if err != nil {
			return Decision{}, err
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			return Decision{}, err
		}
		defer resp.Body.Close()
		raw, err := io.ReadAll(resp.Body)
		if err != nil {
			return Decision{}, err
		}
		var out struct {
			Result Decision `json:"result"`
		}
		if err := json.Unmarshal(raw, &out); err != nil {
			return Decision{}, err
		}
		return out.Result, nil
	}
	want, err := e.Decide(ctx, baseInput())
	if err != nil {
		b.Fatal(err)
	}
	if got, err := ask(); err != nil || got.Result != want.Result {
		b.Fatalf("the sidecar decided %+v (%v), the engine %+v", got, err, want)
	}
	durations := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		d, err := ask()
		durations = append(durations, time.Since(start))
		if err != nil || d.Result != Allow {
			b.Fatalf("%v %v", d, err)
		}
	}
	b.StopTimer()
	slices.Sort(durations)
	b.ReportMetric(float64(durations[len(durations)/2].Nanoseconds())/1000, "p50-µs")
	b.ReportMetric(float64(durations[len(durations)*99/100].Nanoseconds())/1000, "p99-µs")
}

package compliance_test

import (
	"context"
	"crypto/sha256"
	"io"
	"os"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/compliance"
	"github.com/perfectpay/perfectpay/store/pgtest"
)

// BenchmarkAuditExport streams PERFECTPAY_EXPORT_ROWS audit rows (default
// 1,000,000) from PostgreSQL to JSONL and reports the peak heap in use
// while it runs: it stays at a batch's worth whatever the row count.
//
//	go test -run '^$' -bench BenchmarkAuditExport -benchtime 1x ./compliance/
func BenchmarkAuditExport(b *testing.B) {
	rows := 1_000_000
	if v := os.Getenv("PERFECTPAY_EXPORT_ROWS"); v != "" {
		var err error
		rows, err = strconv.Atoi(v)
		require.NoError(b, err)
	}
	ctx := context.Background()
	st := pgtest.NewStore(b)
	_, err := st.Pool().Exec(ctx, `INSERT INTO audit_events (id, tenant_id, actor_type, actor_id, action, target, data, created_at, content_hash)
		SELECT 'aud_bench_' || g, 'ten_bench', 'api_key', 'key_bench', 'bench.row', 'obj_' || g,
			'{"n":' || g || ',"note":"a row of the audit export benchmark"}', now(), sha256(g::text::bytea)
		FROM generate_series(1, $1::int) g`, rows)
	require.NoError(b, err)
	x, _ := exporter(b, st)
	for b.Loop() {
		runtime.GC()
		var base runtime.MemStats
		runtime.ReadMemStats(&base)
		var peak atomic.Uint64
		done := make(chan struct{})
		go func() {
			t := time.NewTicker(20 * time.Millisecond)
			defer t.Stop()
			var ms runtime.MemStats
			for {
				select {
				case <-done:
					return
				case <-t.C:
					runtime.ReadMemStats(&ms)
					if ms.HeapInuse > peak.Load() {
						peak.Store(ms.HeapInuse)
					}
				}
			}
		}()
		h := sha256.New()
		_, m, err := x.Export(ctx, compliance.ExportRequest{Kind: compliance.ExportAudit, Format: compliance.FormatJSONL, TenantID: "ten_bench"}, io.Writer(h))
		close(done)
		require.NoError(b, err)
		require.EqualValues(b, rows, m.Rows)
		b.ReportMetric(float64(base.HeapInuse)/(1<<20), "base-heap-MB")
		b.ReportMetric(float64(peak.Load())/(1<<20), "peak-heap-MB")
		b.ReportMetric(float64(m.Bytes)/(1<<20), "export-MB")
	}
}

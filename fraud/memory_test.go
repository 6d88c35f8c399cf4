package fraud_test

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/perfectpay/perfectpay/fraud"
)

// BenchmarkWindowsMemory100kAgents reports the heap the velocity windows
// and the anomaly histories take for 100,000 agents, each with its own
// mandate and card, all at 100 merchants (one charge each: a key's slots
// are fixed, so more charges take no more memory).
//
//	go test ./fraud/ -run '^$' -bench WindowsMemory -benchtime 1x
func BenchmarkWindowsMemory100kAgents(b *testing.B) {
	const agents = 100_000
	t0 := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	for b.Loop() {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		w := fraud.NewWindows(1_000_000)
		a := fraud.NewAnomalies(fraud.AnomalyConfig{MinHistory: 10, Threshold: 8}, 1_000_000)
		for i := range agents {
			id := fmt.Sprintf("ten_0123456789abcdef:agt_%016d", i)
			w.Record(t0, 2500, false, "agent:"+id+":USD", "mandate:mdt_"+id+":USD", "card:fp_"+id+":USD",
				fmt.Sprintf("merchant:acct_%d:USD", i%100))
			a.Record(id, 2500, "5942")
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(1<<20), "MiB")
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/agents, "B/agent")
		runtime.KeepAlive(w)
		runtime.KeepAlive(a)
	}
}

package abuse_test

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/perfectpay/perfectpay/abuse"
)

// BenchmarkDefencesMemory100kAgents reports the heap the rate limits and
// the card-testing windows take for 100,000 agents, each with its agent
// and charge budgets and its card-testing signals and one card.
//
//	go test ./abuse/ -run '^$' -bench DefencesMemory -benchtime 1x
func BenchmarkDefencesMemory100kAgents(b *testing.B) {
	const agents = 100_000
	lim := abuse.Limit{Rate: 50, Per: time.Second, Burst: 100}
	ct := abuse.CardTestingConfig{Window: time.Hour, Cooldown: time.Hour, MaxDistinctCards: 10, MaxTokenizations: 100}
	for b.Loop() {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		l := abuse.NewLimiter(1_000_000, nil)
		c := abuse.NewCardTesting(ct, 1_000_000, nil)
		for i := range agents {
			id := fmt.Sprintf("agt_%016d", i)
			l.Allow("agent:50/1000000000/100:"+id, lim, 1)
			l.Allow("charge:50/1000000000/100:"+id, lim, 1)
			c.Observe(abuse.Observation{Sources: []abuse.Source{{Kind: "agent", Value: id}}, Fingerprint: "fp_" + id, Charge: true, Amount: 2500})
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(1<<20), "MiB")
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/agents, "B/agent")
		runtime.KeepAlive(l)
		runtime.KeepAlive(c)
	}
}

package fraud

import (
	"fmt"
	"math"
	"slices"
	"sync"

	"github.com/perfectpay/perfectpay/policies"
)

// AnomalyConfig tunes the anomaly detector.
type AnomalyConfig struct {
	// MinHistory charges of an agent are needed before it can be flagged.
	MinHistory int `mapstructure:"min_history"`
	// Threshold is the robust z-score (in MADs, scaled to standard
	// deviations) past which a charge size is anomalous; 0 turns it off.
	Threshold float64 `mapstructure:"threshold"`
	// SpendRateFactor flags an agent whose spending in the last hour
	// (this charge included) passes this many times its hourly average
	// over the rest of the day, once it made MinHistory charges in that
	// rest; 0 turns it off.
	SpendRateFactor float64 `mapstructure:"spend_rate_factor"`
}

// historyLen is how many recent charge sizes an agent's history keeps
// (fixed: 32 × 8 bytes per agent).
const historyLen = 32

type history struct {
	amounts [historyLen]float64
	n, next int
}

// Anomalies holds each agent's recent charge sizes as this node saw them
// (detection is per node) and, for an Assessor without a store, the agents
// flagged as anomalous; a flag stays until a person clears it. Bounded to
// maxKeys agents. Safe for concurrent use.
type Anomalies struct {
	cfg   AnomalyConfig
	mu    sync.Mutex
	hist  map[string]*history
	flags map[string]policies.Anomaly
	max   int
}

// NewAnomalies returns a detector for at most maxKeys agents.
func NewAnomalies(cfg AnomalyConfig, maxKeys int) *Anomalies {
	return &Anomalies{cfg: cfg, hist: map[string]*history{}, flags: map[string]policies.Anomaly{}, max: max(16, maxKeys)}
}

// Check returns the agent's flag: the standing one, or a new one when
// amount departs from its history (isNew is then true). It keeps the flag
// in this node's memory: the Assessor does so only without a store.
func (a *Anomalies) Check(agent string, amount int64) (flag *policies.Anomaly, isNew bool) {
	if a.cfg.Threshold <= 0 {
		return nil, false
	}
	if f := a.Flag(agent); f != nil {
		return f, false
	}
	f := a.Detect(agent, amount)
	if f == nil {
		return nil, false
	}
	return a.Raise(agent, *f)
}

// Detect returns a new flag when amount departs from the agent's history
// of this node, nil otherwise; it keeps nothing.
func (a *Anomalies) Detect(agent string, amount int64) *policies.Anomaly {
	if a.cfg.Threshold <= 0 {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	h, ok := a.hist[agent]
	if !ok || h.n < max(3, a.cfg.MinHistory) {
		return nil
	}
	z, med := RobustZ(h.amounts[:h.n], float64(amount))
	if math.Abs(z) <= a.cfg.Threshold {
		return nil
	}
	return &policies.Anomaly{Metric: "charge_size", Score: math.Round(z*10) / 10,
		Message: fmt.Sprintf("agent %s: a charge of %d is %.1f robust standard deviations from its median of %.0f over its last %d charges; a person must clear the agent",
			agent, amount, z, med, h.n)}
}

// Raise flags the agent with f unless it is flagged already; isNew says
// whether f is the new flag.
func (a *Anomalies) Raise(agent string, f policies.Anomaly) (flag *policies.Anomaly, isNew bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if cur, ok := a.flags[agent]; ok {
		return &cur, false
	}
	if len(a.flags) >= a.max {
		for k := range a.flags {
			delete(a.flags, k)
			break
		}
	}
	a.flags[agent] = f
	return &f, true
}

// Record adds a charge size to the agent's history.
func (a *Anomalies) Record(agent string, amount int64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	h, ok := a.hist[agent]
	if !ok {
		if len(a.hist) >= a.max {
			for k := range a.hist {
				delete(a.hist, k)
				break
			}
		}
		h = &history{}
		a.hist[agent] = h
	}
	h.amounts[h.next] = float64(amount)
	h.next = (h.next + 1) % historyLen
	h.n = min(historyLen, h.n+1)
}

// Clear lifts the agent's flag; false when it had none.
func (a *Anomalies) Clear(agent string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	_, ok := a.flags[agent]
	delete(a.flags, agent)
	return ok
}

// Flag returns the agent's standing flag, if any.
func (a *Anomalies) Flag(agent string) *policies.Anomaly {
	a.mu.Lock()
	defer a.mu.Unlock()
	if f, ok := a.flags[agent]; ok {
		return &f
	}
	return nil
}

// RobustZ is the robust z-score of x against xs: 0.6745 (x − median) / MAD,
// the median absolute deviation standing in for the standard deviation so
// that a few outliers in the history do not hide the next one. A MAD of 0
// (a history of equal amounts) is taken as 1% of the median, at least 1.
func RobustZ(xs []float64, x float64) (z, median float64) {
	s := slices.Clone(xs)
	median = med(s)
	dev := make([]float64, len(s))
	for i, v := range s {
		dev[i] = math.Abs(v - median)
	}
	mad := med(dev)
	if mad == 0 {
		mad = max(1, median/100)
	}
	return 0.6745 * (x - median) / mad, median
}

func med(s []float64) float64 {
	slices.Sort(s)
	n := len(s)
	if n == 0 {
		return 0
	}
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

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
	// MerchantMix flags a charge in a merchant category (the MCC, else
	// the merchant) that none of the agent's last charges used, once it
	// made MinHistory of them, when that history made a new category less
	// likely than this (0.05: 5 %); 0 turns it off. The likelihood is
	// Good-Turing's, smoothed: (categories used once + 1) / (charges + 1),
	// so an agent that always buys from the same few kinds of merchant is
	// flagged by its first purchase of another kind, while one whose
	// purchases are varied is not.
	MerchantMix float64 `mapstructure:"merchant_mix"`
}

// historyLen is how many recent charges an agent's history keeps: their
// sizes and merchant categories (fixed: 32 × 12 bytes per agent).
const historyLen = 32

type history struct {
	amounts [historyLen]float64
	cats    [historyLen]uint32 // hashed merchant categories (categoryHash)
	n, next int
}

// MerchantCategory is what the merchant mix compares: the merchant's
// category code (MCC), else the merchant itself.
func MerchantCategory(m policies.Merchant) string {
	if m.MCC != "" {
		return m.MCC
	}
	return m.ID
}

// categoryHash is the FNV-1a hash of a category: 4 bytes per charge
// instead of the string, with a collision between two of an agent's 32
// categories unlikely (about 1 in 10 million).
func categoryHash(s string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(s); i++ {
		h ^= uint32(s[i])
		h *= 16777619
	}
	return h
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
func (a *Anomalies) Check(agent string, amount int64, category string) (flag *policies.Anomaly, isNew bool) {
	if a.off() {
		return nil, false
	}
	if f := a.Flag(agent); f != nil {
		return f, false
	}
	f := a.Detect(agent, amount, category)
	if f == nil {
		return nil, false
	}
	return a.Raise(agent, *f)
}

func (a *Anomalies) off() bool { return a.cfg.Threshold <= 0 && a.cfg.MerchantMix <= 0 }

// Detect returns a new flag when a charge of amount in the merchant
// category departs from the agent's history of this node (its size, then
// its merchant mix), nil otherwise; it keeps nothing.
func (a *Anomalies) Detect(agent string, amount int64, category string) *policies.Anomaly {
	return a.detect([]byte(agent), amount, category)
}

// detect is Detect of an agent key built in a buffer: looked up without
// allocating.
func (a *Anomalies) detect(agent []byte, amount int64, category string) *policies.Anomaly {
	if a.off() {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	h, ok := a.hist[string(agent)]
	if !ok || h.n < max(3, a.cfg.MinHistory) {
		return nil
	}
	if a.cfg.Threshold > 0 {
		z, med := h.robustZ(float64(amount))
		if math.Abs(z) > a.cfg.Threshold {
			return &policies.Anomaly{Metric: "charge_size", Score: math.Round(z*10) / 10,
				Message: fmt.Sprintf("agent %s: a charge of %d is %.1f robust standard deviations from its median of %.0f over its last %d charges; a person must clear the agent",
					string(agent), amount, z, med, h.n)}
		}
	}
	if a.cfg.MerchantMix > 0 && category != "" {
		return a.mix(string(agent), h, category)
	}
	return nil
}

// mix is a new flag when category is new to the agent's history h and
// that history made a new category less likely than MerchantMix. Called
// with a.mu held.
func (a *Anomalies) mix(agent string, h *history, category string) *policies.Anomaly {
	c := categoryHash(category)
	cats := h.cats[:h.n]
	if slices.Contains(cats, c) {
		return nil
	}
	distinct, once := 0, 0
	for i, x := range cats {
		if slices.Contains(cats[:i], x) {
			continue
		}
		distinct++
		n := 0
		for _, y := range cats[i:] {
			if y == x {
				n++
			}
		}
		if n == 1 {
			once++
		}
	}
	p := float64(once+1) / float64(h.n+1)
	if p >= a.cfg.MerchantMix {
		return nil
	}
	return &policies.Anomaly{Metric: "merchant_mix", Score: math.Round(10/p) / 10,
		Message: fmt.Sprintf("agent %s: a charge in merchant category %s, which none of its last %d charges used (%d categories, %d of them used once): a new category had a likelihood of %.1f%% (limit %.1f%%); a person must clear the agent",
			agent, category, h.n, distinct, once, 100*p, 100*a.cfg.MerchantMix)}
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

// Record adds a charge's size and merchant category to the agent's
// history.
func (a *Anomalies) Record(agent string, amount int64, category string) {
	a.record([]byte(agent), amount, category)
}

func (a *Anomalies) record(agent []byte, amount int64, category string) {
	c := categoryHash(category)
	a.mu.Lock()
	defer a.mu.Unlock()
	h, ok := a.hist[string(agent)]
	if !ok {
		if len(a.hist) >= a.max {
			for k := range a.hist {
				delete(a.hist, k)
				break
			}
		}
		h = &history{}
		a.hist[string(agent)] = h
	}
	h.amounts[h.next] = float64(amount)
	h.cats[h.next] = c
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

// robustZ is RobustZ against the history's charge sizes, in fixed
// buffers (no allocation).
func (h *history) robustZ(x float64) (z, median float64) {
	var s, dev [historyLen]float64
	n := copy(s[:], h.amounts[:h.n])
	median = med(s[:n])
	for i, v := range s[:n] {
		dev[i] = math.Abs(v - median)
	}
	mad := med(dev[:n])
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

package abuse

import (
	"fmt"
	"hash/maphash"
	"sync"
	"time"
)

// CardTestingConfig sets when a source is taken for a card tester. Every
// threshold counts over Window; 0 turns a signal off.
type CardTestingConfig struct {
	Window   time.Duration `mapstructure:"window"`
	Cooldown time.Duration `mapstructure:"cooldown"`
	// MaxTokenizations is the most card tokenizations from one source.
	MaxTokenizations int `mapstructure:"max_tokenizations"`
	// MaxDistinctCards is the most different cards (fingerprints) one
	// source tokenizes or charges.
	MaxDistinctCards int `mapstructure:"max_distinct_cards"`
	// MaxDeclineRatio of a source's charges may be declined, once it made
	// at least DeclineMinCharges.
	MaxDeclineRatio   float64 `mapstructure:"max_decline_ratio"`
	DeclineMinCharges int     `mapstructure:"decline_min_charges"`
	// MaxSmallCharges is the most charges of at most SmallAmount (minor
	// units) from one source.
	SmallAmount     int64 `mapstructure:"small_amount"`
	MaxSmallCharges int   `mapstructure:"max_small_charges"`
	// MaxIncorrectCVC is the most incorrect_cvc declines of one source.
	MaxIncorrectCVC int `mapstructure:"max_incorrect_cvc"`
}

// Off reports whether the detector does nothing.
func (c CardTestingConfig) Off() bool { return c.Window <= 0 || c.Cooldown <= 0 }

// windowBuckets is how many slices a window is cut into: counts leave the
// window a slice at a time.
const windowBuckets = 6

type ctBucket struct {
	slot                                    int64
	tokenizations, charges, declines, small uint32
	cvc                                     uint32
}

// ctState is one source's signals. Memory per source is fixed apart from
// the distinct cards, which are capped at MaxDistinctCards+1.
type ctState struct {
	buckets [windowBuckets]ctBucket
	cards   map[uint64]int64 // fingerprint hash → last seen (unix ns)
	seen    int64            // last activity (unix ns), for eviction
}

// Signals are a source's counts over the window.
type Signals struct {
	Tokenizations int `json:"tokenizations"`
	Charges       int `json:"charges"`
	Declines      int `json:"declines"`
	SmallCharges  int `json:"small_charges"`
	IncorrectCVC  int `json:"incorrect_cvc"`
	DistinctCards int `json:"distinct_cards"`
}

// CardTesting watches tokenizations and charges per source (publishable
// or secret key, agent, IP, card fingerprint) and blocks a source for a
// cool-down when one of its signals passes its threshold. Bounded in
// memory (MaxKeys sources; idle ones go first). Safe for concurrent use.
type CardTesting struct {
	cfg    CardTestingConfig
	mu     sync.Mutex
	now    func() time.Time
	seed   maphash.Seed
	states map[string]*ctState
	max    int
	blocks *Blocklist
	// tokenCards maps a card token to its fingerprint, so a charge on a
	// token of a blocked card is refused before it is made.
	tokenCards *boundedMap
}

// Observation is one tokenization or charge seen.
type Observation struct {
	// Sources are who made it: the credential, the IP, the card.
	Sources []Source
	// Fingerprint of the card ("" when unknown); it counts towards
	// distinct cards of the other sources.
	Fingerprint string
	// Charge is false for a tokenization.
	Charge       bool
	Amount       int64
	Declined     bool
	IncorrectCVC bool
}

// NewCardTesting returns a detector holding at most maxKeys sources.
func NewCardTesting(cfg CardTestingConfig, maxKeys int, now func() time.Time) *CardTesting {
	if now == nil {
		now = time.Now
	}
	return &CardTesting{
		cfg: cfg, now: now, seed: maphash.MakeSeed(), states: map[string]*ctState{}, max: max(1, maxKeys),
		blocks: NewBlocklist(maxKeys, now), tokenCards: newBoundedMap(maxKeys),
	}
}

// SetClock replaces the clock (tests).
func (c *CardTesting) SetClock(now func() time.Time) {
	c.mu.Lock()
	c.now = now
	c.mu.Unlock()
	c.blocks.SetClock(now)
}

// Blocked reports whether any of srcs is blocked, and for how long still.
func (c *CardTesting) Blocked(srcs ...Source) (time.Duration, bool) {
	if c == nil || c.cfg.Off() {
		return 0, false
	}
	for _, s := range srcs {
		if s.Value == "" {
			continue
		}
		if left, ok := c.blocks.Blocked(s.key()); ok {
			return left, true
		}
	}
	return 0, false
}

// CardOfToken is the fingerprint of a token this node has seen ("" when
// none).
func (c *CardTesting) CardOfToken(token string) string {
	if c == nil {
		return ""
	}
	return c.tokenCards.get(token)
}

// RememberToken notes a token's card fingerprint.
func (c *CardTesting) RememberToken(token, fingerprint string) {
	if c == nil || token == "" || fingerprint == "" {
		return
	}
	c.tokenCards.put(token, fingerprint)
}

// Observe counts o against each of its sources and returns the blocks it
// starts.
func (c *CardTesting) Observe(o Observation) []Block {
	if c == nil || c.cfg.Off() {
		return nil
	}
	var tripped []struct {
		src    Source
		reason string
	}
	c.mu.Lock()
	now := c.now().UnixNano()
	slotLen := int64(c.cfg.Window) / windowBuckets
	slot := now / max(1, slotLen)
	var fp uint64
	if o.Fingerprint != "" {
		fp = maphash.String(c.seed, o.Fingerprint)
	}
	for _, s := range o.Sources {
		if s.Value == "" {
			continue
		}
		st := c.state(s.key(), now)
		b := &st.buckets[slot%windowBuckets]
		if b.slot != slot {
			*b = ctBucket{slot: slot}
		}
		if o.Charge {
			b.charges++
			if o.Declined {
				b.declines++
			}
			if o.Amount > 0 && o.Amount <= c.cfg.SmallAmount {
				b.small++
			}
			if o.IncorrectCVC {
				b.cvc++
			}
		} else {
			b.tokenizations++
		}
		if fp != 0 && s.Kind != "card" {
			c.noteCard(st, fp, now)
		}
		if reason := c.tripped(c.signals(st, slot, now)); reason != "" {
			tripped = append(tripped, struct {
				src    Source
				reason string
			}{s, reason})
		}
	}
	c.mu.Unlock()
	var out []Block
	for _, t := range tripped {
		if until, started := c.blocks.Block(t.src.key(), c.cfg.Cooldown); started {
			out = append(out, Block{Source: t.src, Until: until, Reason: t.reason})
		}
	}
	return out
}

// SignalsOf returns the counts of one source (tests, operators).
func (c *CardTesting) SignalsOf(src Source) Signals {
	c.mu.Lock()
	defer c.mu.Unlock()
	st, ok := c.states[src.key()]
	if !ok {
		return Signals{}
	}
	now := c.now().UnixNano()
	return c.signals(st, now/max(1, int64(c.cfg.Window)/windowBuckets), now)
}

// Len is the number of sources held.
func (c *CardTesting) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.states)
}

func (c *CardTesting) state(key string, now int64) *ctState {
	st, ok := c.states[key]
	if !ok {
		if len(c.states) >= c.max {
			c.evict(now)
		}
		st = &ctState{}
		c.states[key] = st
	}
	st.seen = now
	return st
}

// evict drops the sources idle for a whole window; when none is, the
// least recently active of a sample. Called with c.mu held.
func (c *CardTesting) evict(now int64) {
	for k, st := range c.states {
		if now-st.seen >= int64(c.cfg.Window) {
			delete(c.states, k)
		}
	}
	if len(c.states) < c.max {
		return
	}
	var oldest string
	var at int64
	n := 0
	for k, st := range c.states { // map order is random: a sample
		if oldest == "" || st.seen < at {
			oldest, at = k, st.seen
		}
		if n++; n >= 64 {
			break
		}
	}
	delete(c.states, oldest)
}

func (c *CardTesting) noteCard(st *ctState, fp uint64, now int64) {
	if c.cfg.MaxDistinctCards <= 0 {
		return
	}
	if st.cards == nil {
		st.cards = map[uint64]int64{}
	}
	if _, ok := st.cards[fp]; !ok && len(st.cards) > c.cfg.MaxDistinctCards {
		for k, seen := range st.cards {
			if now-seen >= int64(c.cfg.Window) {
				delete(st.cards, k)
			}
		}
		if len(st.cards) > c.cfg.MaxDistinctCards {
			return // already over: counting more changes nothing
		}
	}
	st.cards[fp] = now
}

func (c *CardTesting) signals(st *ctState, slot, now int64) Signals {
	var s Signals
	for _, b := range st.buckets {
		if b.slot <= slot-windowBuckets || b.slot > slot {
			continue
		}
		s.Tokenizations += int(b.tokenizations)
		s.Charges += int(b.charges)
		s.Declines += int(b.declines)
		s.SmallCharges += int(b.small)
		s.IncorrectCVC += int(b.cvc)
	}
	for _, seen := range st.cards {
		if now-seen < int64(c.cfg.Window) {
			s.DistinctCards++
		}
	}
	return s
}

// tripped names the first signal over its threshold ("" when none).
func (c *CardTesting) tripped(s Signals) string {
	cfg := c.cfg
	switch {
	case cfg.MaxTokenizations > 0 && s.Tokenizations > cfg.MaxTokenizations:
		return fmt.Sprintf("%d tokenizations in %s, limit %d", s.Tokenizations, cfg.Window, cfg.MaxTokenizations)
	case cfg.MaxDistinctCards > 0 && s.DistinctCards > cfg.MaxDistinctCards:
		return fmt.Sprintf("%d distinct cards in %s, limit %d", s.DistinctCards, cfg.Window, cfg.MaxDistinctCards)
	case cfg.MaxIncorrectCVC > 0 && s.IncorrectCVC > cfg.MaxIncorrectCVC:
		return fmt.Sprintf("%d incorrect_cvc declines in %s, limit %d", s.IncorrectCVC, cfg.Window, cfg.MaxIncorrectCVC)
	case cfg.MaxSmallCharges > 0 && s.SmallCharges > cfg.MaxSmallCharges:
		return fmt.Sprintf("%d charges of at most %d in %s, limit %d", s.SmallCharges, cfg.SmallAmount, cfg.Window, cfg.MaxSmallCharges)
	case cfg.MaxDeclineRatio > 0 && s.Charges >= max(1, cfg.DeclineMinCharges) &&
		float64(s.Declines) > cfg.MaxDeclineRatio*float64(s.Charges):
		return fmt.Sprintf("%d of %d charges declined in %s, limit %.0f%%", s.Declines, s.Charges, cfg.Window, cfg.MaxDeclineRatio*100)
	}
	return ""
}

// boundedMap is a string map of at most max entries; when full, an
// arbitrary eighth of it goes.
type boundedMap struct {
	mu  sync.Mutex
	m   map[string]string
	max int
}

func newBoundedMap(n int) *boundedMap { return &boundedMap{m: map[string]string{}, max: max(8, n)} }

func (b *boundedMap) get(k string) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.m[k]
}

func (b *boundedMap) put(k, v string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.m[k]; !ok && len(b.m) >= b.max {
		n := b.max / 8
		for k := range b.m {
			delete(b.m, k)
			if n--; n <= 0 {
				break
			}
		}
	}
	b.m[k] = v
}

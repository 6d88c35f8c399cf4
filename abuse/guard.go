package abuse

import (
	"sync"
	"time"
)

// GuardConfig tunes the authentication-failure guard.
type GuardConfig struct {
	// Window is how long a failure counts: BlockAfter failures within it
	// block the source (failures leak out one every Window/BlockAfter).
	Window time.Duration `mapstructure:"window"`
	// ThrottleAfter failures put the source on Throttle: every further
	// attempt (good or bad) spends its allowance.
	ThrottleAfter int   `mapstructure:"throttle_after"`
	Throttle      Limit `mapstructure:"throttle"`
	// BlockAfter failures block the source for Cooldown: every attempt
	// gets 429, whatever it carries.
	BlockAfter int           `mapstructure:"block_after"`
	Cooldown   time.Duration `mapstructure:"cooldown"`
}

// Off reports whether the guard does nothing.
func (c GuardConfig) Off() bool { return c.BlockAfter <= 0 || c.Window <= 0 }

// Source is what failures are counted against: an IP address or a
// client (an agent's client id).
type Source struct {
	Kind  string `json:"kind"` // "ip" | "client"
	Value string `json:"value"`
}

func (s Source) key() string { return s.Kind + ":" + s.Value }

// Block is a source blocked for a cool-down.
type Block struct {
	Source   Source    `json:"source"`
	Failures int       `json:"failures"`
	Until    time.Time `json:"until"`
	// Reason says what tripped the block (card testing), empty for
	// authentication failures.
	Reason string `json:"reason,omitempty"`
}

// Guard counts authentication failures per source, throttles a source
// past ThrottleAfter and blocks it past BlockAfter. It never records which
// credential or which part of it was wrong. Safe for concurrent use.
type Guard struct {
	cfg      GuardConfig
	failures *Limiter
	throttle *Limiter
	blocks   *Blocklist
}

// NewGuard returns a guard holding at most maxKeys sources in each table.
func NewGuard(cfg GuardConfig, maxKeys int, now func() time.Time) *Guard {
	return &Guard{
		cfg:      cfg,
		failures: NewLimiter(maxKeys, now),
		throttle: NewLimiter(maxKeys, now),
		blocks:   NewBlocklist(maxKeys, now),
	}
}

// SetClock replaces the clock of every table (tests).
func (g *Guard) SetClock(now func() time.Time) {
	g.failures.SetClock(now)
	g.throttle.SetClock(now)
	g.blocks.SetClock(now)
}

func (g *Guard) failLimit() Limit {
	return Limit{Rate: g.cfg.BlockAfter, Per: g.cfg.Window, Burst: g.cfg.BlockAfter}
}

// Check says whether an attempt from srcs may go ahead; when not, how long
// to wait. A throttled source spends its throttle allowance.
func (g *Guard) Check(srcs ...Source) (ok bool, retryAfter time.Duration) {
	if g == nil || g.cfg.Off() {
		return true, 0
	}
	for _, s := range srcs {
		if left, blocked := g.blocks.Blocked(s.key()); blocked {
			return false, left
		}
	}
	if g.cfg.ThrottleAfter <= 0 {
		return true, 0
	}
	for _, s := range srcs {
		p := g.failures.Peek(s.key(), g.failLimit())
		if p.Limit-p.Remaining < g.cfg.ThrottleAfter {
			continue
		}
		if d := g.throttle.Allow(s.key(), g.cfg.Throttle, 1); !d.Allowed {
			return false, d.RetryAfter
		}
	}
	return true, 0
}

// Fail records one failed authentication from each of srcs and returns
// the blocks it starts (each block once).
func (g *Guard) Fail(srcs ...Source) []Block {
	if g == nil || g.cfg.Off() {
		return nil
	}
	var out []Block
	for _, s := range srcs {
		if s.Value == "" {
			continue
		}
		d := g.failures.Allow(s.key(), g.failLimit(), 1)
		if d.Allowed && d.Remaining > 0 {
			continue
		}
		if until, started := g.blocks.Block(s.key(), g.cfg.Cooldown); started {
			out = append(out, Block{Source: s, Failures: g.cfg.BlockAfter, Until: until})
		}
	}
	return out
}

// Blocked reports whether src is blocked and for how long still.
func (g *Guard) Blocked(src Source) (time.Duration, bool) {
	if g == nil {
		return 0, false
	}
	return g.blocks.Blocked(src.key())
}

// Blocklist holds keys blocked until a time, bounded in size: expired
// entries go first; when it is full of live ones, the ones expiring
// soonest make room. Safe for concurrent use.
type Blocklist struct {
	mu    sync.Mutex
	now   func() time.Time
	until map[string]time.Time
	max   int
}

// NewBlocklist returns a blocklist of at most maxKeys keys.
func NewBlocklist(maxKeys int, now func() time.Time) *Blocklist {
	if now == nil {
		now = time.Now
	}
	return &Blocklist{now: now, until: make(map[string]time.Time), max: max(1, maxKeys)}
}

// SetClock replaces the clock (tests).
func (b *Blocklist) SetClock(now func() time.Time) {
	b.mu.Lock()
	b.now = now
	b.mu.Unlock()
}

// Block blocks key for d from now. started is false when key was already
// blocked (the block is not extended, so a blocked source cannot keep
// itself blocked forever by accident, nor be audited twice).
func (b *Blocklist) Block(key string, d time.Duration) (until time.Time, started bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	if u, ok := b.until[key]; ok && now.Before(u) {
		return u, false
	}
	if len(b.until) >= b.max {
		b.evict(now)
	}
	until = now.Add(d)
	b.until[key] = until
	return until, true
}

// Blocked reports whether key is blocked and for how much longer.
func (b *Blocklist) Blocked(key string) (time.Duration, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	u, ok := b.until[key]
	if !ok {
		return 0, false
	}
	left := u.Sub(b.now())
	if left <= 0 {
		delete(b.until, key)
		return 0, false
	}
	return left, true
}

// Clear lifts key's block.
func (b *Blocklist) Clear(key string) {
	b.mu.Lock()
	delete(b.until, key)
	b.mu.Unlock()
}

// Len is the number of keys held.
func (b *Blocklist) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.until)
}

func (b *Blocklist) evict(now time.Time) {
	for k, u := range b.until {
		if !now.Before(u) {
			delete(b.until, k)
		}
	}
	for len(b.until) >= b.max {
		var soonest string
		var at time.Time
		for k, u := range b.until {
			if soonest == "" || u.Before(at) {
				soonest, at = k, u
			}
		}
		delete(b.until, soonest)
	}
}

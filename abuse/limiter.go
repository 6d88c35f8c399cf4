// Package abuse holds the in-memory defences against abusive traffic: rate
// limits (GCRA), the authentication-failure guard that throttles and then
// blocks a source, and the card-testing detector. Everything here is per
// node and bounded in memory; the HTTP layer decides what to key it by.
package abuse

import (
	"hash/maphash"
	"math"
	"sync"
	"time"
)

// Limit is a rate with a burst: Burst requests may come at once, then one
// every Per/Rate. The zero Limit (Rate 0) means no limit.
type Limit struct {
	Rate  int           `mapstructure:"rate" json:"rate"`
	Per   time.Duration `mapstructure:"per" json:"per"`
	Burst int           `mapstructure:"burst" json:"burst"`
}

// Off reports whether l limits nothing.
func (l Limit) Off() bool { return l.Rate <= 0 || l.Per <= 0 }

// Share is this node's part of a cluster-wide limit spread over nodes
// nodes: the rate and the burst divided (rounded up, at least 1), so the
// nodes together admit at most the limit plus one request per node.
func (l Limit) Share(nodes int) Limit {
	if nodes <= 1 || l.Off() {
		return l
	}
	div := func(v int) int { return max(1, (v+nodes-1)/nodes) }
	return Limit{Rate: div(l.Rate), Per: l.Per, Burst: div(l.burst())}
}

func (l Limit) burst() int { return max(1, l.Burst) }

// interval is the emission interval: the time one request's allowance
// takes to come back.
func (l Limit) interval() time.Duration {
	return time.Duration(math.Ceil(float64(l.Per) / float64(l.Rate)))
}

// Decision is the answer of a limiter.
type Decision struct {
	Allowed bool
	// Limit is the burst (the quota of the policy) and Window how long a
	// drained quota takes to refill.
	Limit  int
	Window time.Duration
	// Remaining is how many more requests would be allowed now.
	Remaining int
	// Reset is when the quota is full again, from now.
	Reset time.Duration
	// RetryAfter is how long a refused caller must wait (0 when allowed).
	RetryAfter time.Duration
}

// Limiter is a GCRA (generic cell rate algorithm) limiter over many keys:
// per key it keeps one time, the theoretical arrival time (TAT) of the
// next request. Keys whose TAT has passed hold no information (a fresh key
// behaves the same), so they are evicted; the number of keys held is
// bounded by MaxKeys. Safe for concurrent use.
type Limiter struct {
	now    func() time.Time
	seed   maphash.Seed
	shards []shard
	// perShard is the most keys one shard holds.
	perShard int
}

type shard struct {
	mu   sync.Mutex
	tats map[string]int64 // unix nanoseconds
	ops  int
}

const shardCount = 64

// NewLimiter returns a limiter holding at most maxKeys keys (at least
// shardCount). now is the clock (time.Now when nil).
func NewLimiter(maxKeys int, now func() time.Time) *Limiter {
	if now == nil {
		now = time.Now
	}
	per := max(1, maxKeys/shardCount)
	l := &Limiter{now: now, seed: maphash.MakeSeed(), shards: make([]shard, shardCount), perShard: per}
	for i := range l.shards {
		l.shards[i].tats = make(map[string]int64)
	}
	return l
}

// SetClock replaces the clock (tests).
func (l *Limiter) SetClock(now func() time.Time) { l.now = now }

// Now is the limiter's clock.
func (l *Limiter) Now() time.Time { return l.now() }

func (l *Limiter) shard(key string) *shard {
	return &l.shards[maphash.String(l.seed, key)%uint64(len(l.shards))]
}

// Allow spends cost (at least 1) of key's allowance under lim.
func (l *Limiter) Allow(key string, lim Limit, cost int) Decision {
	return allow(l, key, maphash.String(l.seed, key), lim, cost)
}

// AllowBytes is Allow of a key built in a buffer: a key the limiter
// already holds is looked up without allocating.
func (l *Limiter) AllowBytes(key []byte, lim Limit, cost int) Decision {
	return allow(l, key, maphash.Bytes(l.seed, key), lim, cost)
}

// allow is Allow of key, whose hash (under l.seed) is hash.
func allow[K string | []byte](l *Limiter, key K, hash uint64, lim Limit, cost int) Decision {
	if lim.Off() {
		return Decision{Allowed: true, Remaining: math.MaxInt32}
	}
	cost = max(1, cost)
	t := lim.interval().Nanoseconds()
	tau := t * int64(lim.burst())
	now := l.now().UnixNano()
	s := &l.shards[hash%uint64(len(l.shards))]
	s.mu.Lock()
	defer s.mu.Unlock()
	tat, ok := s.tats[string(key)]
	if !ok || tat < now {
		tat = now
	}
	newTAT := tat + t*int64(cost)
	d := Decision{Limit: lim.burst(), Window: time.Duration(tau)}
	if newTAT-now > tau {
		d.RetryAfter = time.Duration(newTAT - tau - now)
		d.Reset = time.Duration(tat - now)
		d.Remaining = max(0, int((tau-(tat-now))/t))
		return d
	}
	if !ok {
		s.evict(now, l.perShard)
	}
	s.tats[string(key)] = newTAT
	d.Allowed = true
	d.Reset = time.Duration(newTAT - now)
	d.Remaining = int((tau - (newTAT - now)) / t)
	return d
}

// Peek reports key's state under lim without spending anything.
func (l *Limiter) Peek(key string, lim Limit) Decision {
	if lim.Off() {
		return Decision{Allowed: true, Remaining: math.MaxInt32}
	}
	t := lim.interval().Nanoseconds()
	tau := t * int64(lim.burst())
	now := l.now().UnixNano()
	s := l.shard(key)
	s.mu.Lock()
	tat, ok := s.tats[key]
	s.mu.Unlock()
	if !ok || tat < now {
		tat = now
	}
	d := Decision{Limit: lim.burst(), Window: time.Duration(tau), Reset: time.Duration(tat - now)}
	d.Remaining = max(0, int((tau-(tat-now))/t))
	d.Allowed = d.Remaining > 0
	if !d.Allowed {
		d.RetryAfter = time.Duration(tat + t - tau - now)
	}
	return d
}

// Len is the number of keys held (tests, metrics).
func (l *Limiter) Len() int {
	n := 0
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		n += len(s.tats)
		s.mu.Unlock()
	}
	return n
}

// evict makes room for one more key: every key whose TAT has passed is
// dropped; if the shard is still full, the keys closest to idle (the
// smallest TATs of a sample) go. Called with s.mu held.
func (s *shard) evict(now int64, limit int) {
	s.ops++
	if len(s.tats) < limit && s.ops < limit {
		return
	}
	s.ops = 0
	for k, tat := range s.tats {
		if tat <= now {
			delete(s.tats, k)
		}
	}
	if len(s.tats) < limit {
		return
	}
	// Still full of active keys: drop an eighth of the shard, the ones
	// nearest to idle among those seen. A dropped key starts afresh, so
	// under a flood of distinct keys a limit can be exceeded by at most
	// one burst per eviction; memory stays bounded.
	drop := max(1, len(s.tats)/8)
	type kv struct {
		k string
		t int64
	}
	victims := make([]kv, 0, drop)
	for k, tat := range s.tats {
		if len(victims) < drop {
			victims = append(victims, kv{k, tat})
			continue
		}
		worst := 0
		for i := range victims {
			if victims[i].t > victims[worst].t {
				worst = i
			}
		}
		if tat < victims[worst].t {
			victims[worst] = kv{k, tat}
		}
	}
	for _, v := range victims {
		delete(s.tats, v.k)
	}
}

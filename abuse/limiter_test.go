package abuse_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/abuse"
)

// fakeClock is a clock tests move by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock { return &fakeClock{t: time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestLimiterBurstThenRate(t *testing.T) {
	clk := newClock()
	l := abuse.NewLimiter(10_000, clk.Now)
	lim := abuse.Limit{Rate: 10, Per: time.Second, Burst: 5}

	for i := range 5 {
		d := l.Allow("k", lim, 1)
		require.True(t, d.Allowed, "request %d of the burst", i+1)
		assert.Equal(t, 4-i, d.Remaining)
		assert.Equal(t, 5, d.Limit)
	}
	d := l.Allow("k", lim, 1)
	require.False(t, d.Allowed, "the burst is spent")
	assert.Equal(t, 100*time.Millisecond, d.RetryAfter, "one request's allowance comes back after Per/Rate")
	assert.Equal(t, 0, d.Remaining)

	assert.True(t, l.Allow("other", lim, 1).Allowed, "keys have budgets of their own")

	clk.Advance(99 * time.Millisecond)
	assert.False(t, l.Allow("k", lim, 1).Allowed)
	clk.Advance(time.Millisecond)
	assert.True(t, l.Allow("k", lim, 1).Allowed, "recovered after RetryAfter")
	assert.False(t, l.Allow("k", lim, 1).Allowed)

	clk.Advance(time.Hour)
	d = l.Allow("k", lim, 1)
	require.True(t, d.Allowed)
	assert.Equal(t, 4, d.Remaining, "an idle key is full again, never more")
}

func TestLimiterOffAllowsEverything(t *testing.T) {
	l := abuse.NewLimiter(1000, nil)
	for range 1000 {
		require.True(t, l.Allow("k", abuse.Limit{}, 1).Allowed)
	}
	assert.Zero(t, l.Len(), "an off limit holds no state")
}

// A node's share of a limit: over n nodes the shares add up to the limit
// plus at most one request per node.
func TestLimitShare(t *testing.T) {
	lim := abuse.Limit{Rate: 100, Per: time.Second, Burst: 10}
	for _, n := range []int{1, 2, 3, 7, 10, 100} {
		s := lim.Share(n)
		assert.LessOrEqual(t, s.Burst*n, lim.Burst+n-1, "n=%d", n)
		assert.GreaterOrEqual(t, s.Burst*n, lim.Burst, "n=%d", n)
		assert.LessOrEqual(t, s.Rate*n, lim.Rate+n-1, "n=%d", n)
		assert.GreaterOrEqual(t, s.Burst, 1)
	}
	assert.Equal(t, lim, lim.Share(1))
	assert.True(t, abuse.Limit{}.Share(4).Off())
}

// Memory is bounded: idle keys are evicted first; a flood of distinct
// active keys never grows the table past its bound.
func TestLimiterBoundedMemory(t *testing.T) {
	clk := newClock()
	const maxKeys = 64 * 16
	l := abuse.NewLimiter(maxKeys, clk.Now)
	lim := abuse.Limit{Rate: 1, Per: time.Minute, Burst: 3}
	for i := range 20 * maxKeys {
		l.Allow(fmt.Sprintf("k%d", i), lim, 1)
	}
	assert.LessOrEqual(t, l.Len(), maxKeys, "active keys stay within the bound")

	clk.Advance(2 * time.Minute) // everything idle
	for i := range maxKeys {
		l.Allow(fmt.Sprintf("n%d", i), lim, 1)
	}
	assert.LessOrEqual(t, l.Len(), maxKeys)
	// A key that is still limited survives a sweep of idle ones.
	for range 3 {
		l.Allow("hot", lim, 1)
	}
	for i := range maxKeys / 2 {
		clk.Advance(time.Millisecond)
		l.Allow(fmt.Sprintf("m%d", i), abuse.Limit{Rate: 1000, Per: time.Second, Burst: 1}, 1)
	}
	assert.False(t, l.Allow("hot", lim, 1).Allowed, "a limited key was not evicted in favour of idle ones")
}

func TestLimiterConcurrentNeverOverAdmits(t *testing.T) {
	l := abuse.NewLimiter(10_000, newClock().Now) // the clock stands still
	lim := abuse.Limit{Rate: 1, Per: time.Hour, Burst: 50}
	var wg sync.WaitGroup
	var mu sync.Mutex
	allowed := 0
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				if l.Allow("k", lim, 1).Allowed {
					mu.Lock()
					allowed++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	assert.Equal(t, 50, allowed)
}

func TestGuardThrottlesThenBlocks(t *testing.T) {
	clk := newClock()
	g := abuse.NewGuard(abuse.GuardConfig{
		Window: 10 * time.Minute, ThrottleAfter: 3, Throttle: abuse.Limit{Rate: 1, Per: 10 * time.Second, Burst: 1},
		BlockAfter: 6, Cooldown: 15 * time.Minute,
	}, 10_000, clk.Now)
	ip := abuse.Source{Kind: "ip", Value: "203.0.113.9"}
	other := abuse.Source{Kind: "ip", Value: "198.51.100.1"}

	for range 3 {
		ok, _ := g.Check(ip)
		require.True(t, ok)
		require.Empty(t, g.Fail(ip))
	}
	ok, _ := g.Check(ip)
	require.True(t, ok, "throttled: one attempt per 10s")
	ok, retry := g.Check(ip)
	require.False(t, ok, "throttled: the second attempt within 10s waits")
	assert.Equal(t, 10*time.Second, retry)
	ok, _ = g.Check(other)
	assert.True(t, ok, "another source is not throttled")

	require.Empty(t, g.Fail(ip))
	require.Empty(t, g.Fail(ip))
	blocks := g.Fail(ip)
	require.Len(t, blocks, 1, "the sixth failure blocks")
	assert.Equal(t, ip, blocks[0].Source)
	assert.Equal(t, clk.Now().Add(15*time.Minute), blocks[0].Until)
	assert.Empty(t, g.Fail(ip), "a block starts once")

	ok, retry = g.Check(ip)
	require.False(t, ok)
	assert.Equal(t, 15*time.Minute, retry)
	clk.Advance(15 * time.Minute)
	ok, _ = g.Check(ip)
	assert.True(t, ok, "the cool-down is over")
}

func TestBlocklistBounded(t *testing.T) {
	clk := newClock()
	b := abuse.NewBlocklist(10, clk.Now)
	for i := range 100 {
		clk.Advance(time.Second)
		b.Block(fmt.Sprintf("k%d", i), time.Hour)
	}
	assert.Equal(t, 10, b.Len())
	_, blocked := b.Blocked("k99")
	assert.True(t, blocked, "the newest blocks stay")
	_, blocked = b.Blocked("k0")
	assert.False(t, blocked, "the soonest to expire made room")
}

// A key spent as bytes is the same key spent as a string: one budget.
func TestLimiterAllowBytesSharesTheKey(t *testing.T) {
	clk := newClock()
	l := abuse.NewLimiter(10_000, clk.Now)
	lim := abuse.Limit{Rate: 1, Per: time.Second, Burst: 3}
	buf := make([]byte, 0, 64)
	for i := range 3 {
		var d abuse.Decision
		if i%2 == 0 {
			d = l.AllowBytes(append(buf[:0], "agent:agt_1"...), lim, 1)
		} else {
			d = l.Allow("agent:agt_1", lim, 1)
		}
		require.True(t, d.Allowed, "request %d", i+1)
		assert.Equal(t, 2-i, d.Remaining)
	}
	assert.False(t, l.AllowBytes(append(buf[:0], "agent:agt_1"...), lim, 1).Allowed)
	assert.False(t, l.Allow("agent:agt_1", lim, 1).Allowed)
	assert.Equal(t, 1, l.Len())
	assert.True(t, l.AllowBytes(append(buf[:0], "agent:agt_2"...), lim, 1).Allowed, "another key, its own budget")
}

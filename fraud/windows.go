// Package fraud holds the fraud signals of agent charges: velocity windows
// (counts and sums per agent, mandate, card and merchant over the last hour
// and day), the anomaly detector (a robust z-score of an agent against its
// own history), and the screeners (a built-in rules screener and adapters
// for Signifyd, Riskified and Kount) run with a strict timeout. The
// Assessor puts them all into the charge policy's input; the policy
// decides.
package fraud

import (
	"sync"
	"time"
)

// Window lengths and their slices: the last hour is counted in 10-minute
// slices and the last day in 2-hour slices, so "the last hour" covers
// between 50 and 60 minutes and "the last day" between 22 and 24 hours
// (the slice in progress is always whole).
const (
	hourSlice  = 10 * time.Minute
	hourSlices = 6
	daySlice   = 2 * time.Hour
	daySlices  = 12
)

type slot struct {
	n        uint32 // slice number since the epoch
	count    uint32
	declines uint32
	sum      int64
}

// series is one key's windows: a fixed 18 slots (432 bytes).
type series struct {
	hour [hourSlices]slot
	day  [daySlices]slot
	seen int64 // last write, unix ns (eviction)
}

// Totals are the counts and sum of one window.
type Totals struct {
	Count    int   `json:"count"`
	Declines int   `json:"declines"`
	Amount   int64 `json:"amount"`
}

// Stats are a key's totals over the last hour and the last day.
type Stats struct {
	Hour Totals `json:"hour"`
	Day  Totals `json:"day"`
}

// Windows are velocity windows over many keys, bounded to MaxKeys (keys
// idle for a day go first, then the least recently written of a sample).
// Safe for concurrent use.
type Windows struct {
	mu   sync.Mutex
	m    map[string]*series
	max  int
	tick int
}

// NewWindows returns windows holding at most maxKeys keys.
func NewWindows(maxKeys int) *Windows {
	return &Windows{m: map[string]*series{}, max: max(16, maxKeys)}
}

// Record counts one charge of amount at t for every key.
func (w *Windows) Record(t time.Time, amount int64, declined bool, keys ...string) {
	ns := t.UnixNano()
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, k := range keys {
		count(w, k, ns, amount, declined)
	}
}

// record is Record of keys held as bytes (a nil key is skipped): a key
// already held costs no allocation.
func (w *Windows) record(t time.Time, amount int64, declined bool, keys ...[]byte) {
	ns := t.UnixNano()
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, k := range keys {
		if k != nil {
			count(w, k, ns, amount, declined)
		}
	}
}

// count counts one charge for key k; called with w.mu held.
func count[K string | []byte](w *Windows, k K, ns int64, amount int64, declined bool) {
	hn, dn := uint32(ns/int64(hourSlice)), uint32(ns/int64(daySlice))
	s, ok := w.m[string(k)]
	if !ok {
		if len(w.m) >= w.max {
			w.evict(ns)
		}
		s = &series{}
		w.m[string(k)] = s
	}
	s.seen = ns
	add(&s.hour[hn%hourSlices], hn, amount, declined)
	add(&s.day[dn%daySlices], dn, amount, declined)
}

func add(s *slot, n uint32, amount int64, declined bool) {
	if s.n != n {
		*s = slot{n: n}
	}
	s.count++
	s.sum += amount
	if declined {
		s.declines++
	}
}

// Stats returns key's totals as of t.
func (w *Windows) Stats(key string, t time.Time) Stats { return stats(w, key, t) }

// stats is Stats of a key held as bytes, without allocating.
func (w *Windows) stats(key []byte, t time.Time) Stats { return stats(w, key, t) }

func stats[K string | []byte](w *Windows, key K, t time.Time) Stats {
	ns := t.UnixNano()
	hn, dn := uint32(ns/int64(hourSlice)), uint32(ns/int64(daySlice))
	w.mu.Lock()
	defer w.mu.Unlock()
	s, ok := w.m[string(key)]
	if !ok {
		return Stats{}
	}
	return Stats{Hour: total(s.hour[:], hn), Day: total(s.day[:], dn)}
}

func total(slots []slot, now uint32) Totals {
	var t Totals
	n := uint32(len(slots))
	for _, s := range slots {
		if s.n > now || s.n+n <= now || s.count == 0 {
			continue
		}
		t.Count += int(s.count)
		t.Declines += int(s.declines)
		t.Amount += s.sum
	}
	return t
}

// Len is the number of keys held.
func (w *Windows) Len() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.m)
}

// evict makes room: now and then (every max/8 evictions) every key idle
// for a whole day goes; otherwise the least recently written of a sample
// of 64. Called with w.mu held.
func (w *Windows) evict(now int64) {
	if w.tick++; w.tick >= w.max/8 {
		w.tick = 0
		for k, s := range w.m {
			if now-s.seen >= int64(24*time.Hour) {
				delete(w.m, k)
			}
		}
		if len(w.m) < w.max {
			return
		}
	}
	var oldest string
	var at int64
	n := 0
	for k, s := range w.m {
		if oldest == "" || s.seen < at {
			oldest, at = k, s.seen
		}
		if n++; n >= 64 {
			break
		}
	}
	delete(w.m, oldest)
}

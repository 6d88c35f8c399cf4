package server_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/perfectpay/perfectpay/app"
	"github.com/perfectpay/perfectpay/app/apptest"
)

// scaleClients is the number of concurrent keep-alive clients.
const scaleClients = 64

// BenchmarkTokenScale mints b.N client_credentials tokens at
// POST /oauth2/token with 64 concurrent clients over loopback, then
// introspects a sample of them with 64 clients, then measures what the
// node keeps: the resident set and live heap per token (after a GC), and
// the CPU the idle process burns. Client and server share this process
// and the machine's cores. Run it with a fixed count:
//
//	go test ./server/ -run '^$' -bench TokenScale -benchtime 200000x
//
// TOKEN_SCALE_IDLE (a duration, default 10s) is the idle window;
// TOKEN_SCALE_SEAL_INTERVAL (a duration) sets the audit sealer's interval,
// so a long one shows what sealing costs the run;
// TOKEN_SCALE_IDLE_PROFILE names a file for a CPU profile of that window,
// TOKEN_SCALE_HEAP_PROFILE one for a heap profile once the tokens are in.
// It reports tokens/s, introspections/s, p50/p99/p99.9 latency of each,
// KB of RSS and of heap per live token, and idle CPU in % of one core.
func BenchmarkTokenScale(b *testing.B) {
	duration := func(name string, d time.Duration) time.Duration {
		if v := os.Getenv(name); v != "" {
			var err error
			if d, err = time.ParseDuration(v); err != nil {
				b.Fatal(err)
			}
		}
		return d
	}
	idle := duration("TOKEN_SCALE_IDLE", 10*time.Second)
	seal := duration("TOKEN_SCALE_SEAL_INTERVAL", 0)
	for _, driver := range apptest.Drivers {
		b.Run(driver, func(b *testing.B) {
			n := apptest.New(b, driver, func(c *app.Config) {
				c.Log.Level = "error"
				c.Store.Postgres.MaxConns = 20
				if seal > 0 {
					// The sealer ticks at most every half checkpoint
					// interval: both move, or the tick stays.
					c.Audit.SealInterval, c.Audit.CheckpointInterval = seal, 2*seal
				}
			})
			_, key := n.Tenant(b)
			id, secret := secretAgent(b, n, key, nil)
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: scaleClients, MaxConnsPerHost: scaleClients}}
			post := func(path string, form url.Values, user, pass, bearer string) []byte {
				req, _ := http.NewRequest("POST", n.URL+path, strings.NewReader(form.Encode()))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				if user != "" {
					req.SetBasicAuth(user, pass)
				}
				if bearer != "" {
					req.Header.Set("Authorization", "Bearer "+bearer)
				}
				resp, err := client.Do(req)
				if err != nil {
					b.Error(err)
					return nil
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					b.Errorf("%s: status %d: %s", path, resp.StatusCode, body)
					return nil
				}
				return body
			}
			// load runs total calls of fn with 64 clients and returns the
			// rate and the sorted latencies.
			load := func(total int, fn func(i int)) (float64, []time.Duration) {
				lat := make([]time.Duration, total)
				var next atomic.Int64
				var wg sync.WaitGroup
				start := time.Now()
				for range scaleClients {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for {
							i := int(next.Add(1) - 1)
							if i >= total || b.Failed() {
								return
							}
							t0 := time.Now()
							fn(i)
							lat[i] = time.Since(t0)
						}
					}()
				}
				wg.Wait()
				rate := float64(total) / time.Since(start).Seconds()
				slices.Sort(lat)
				return rate, lat
			}
			pct := func(lat []time.Duration, p float64) float64 {
				return float64(lat[min(len(lat)-1, int(float64(len(lat))*p))].Microseconds()) / 1000
			}

			settle := func() (rssKB, heapKB float64) {
				runtime.GC()
				debug.FreeOSMemory()
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				return float64(rss()) / 1024, float64(ms.HeapInuse) / 1024
			}
			rss0, heap0 := settle()

			// Keep a sample of the tokens for introspection, not all of them.
			const sampleEvery = 100
			sample := make([]string, (b.N+sampleEvery-1)/sampleEvery)
			form := url.Values{"grant_type": {"client_credentials"}}
			b.ResetTimer()
			proc0, machine0 := cpuTime(), machineBusy()
			rate, lat := load(b.N, func(i int) {
				body := post("/oauth2/token", form, id, secret, "")
				if i%sampleEvery == 0 && body != nil {
					var t struct {
						AccessToken string `json:"access_token"`
					}
					_ = json.Unmarshal(body, &t)
					sample[i/sampleEvery] = t.AccessToken
				}
			})
			b.StopTimer()
			proc, machine := cpuTime()-proc0, machineBusy()-machine0
			if b.Failed() || b.N < 1000 {
				return // the first round of one token measures nothing
			}
			// Where a token's CPU goes: this process (node and clients) and
			// the rest of the machine (PostgreSQL, when it is the store).
			b.ReportMetric(float64(machine.Microseconds())/float64(b.N), "machine-cpu-µs/token")
			b.ReportMetric(float64(proc.Microseconds())/float64(b.N), "process-cpu-µs/token")
			b.ReportMetric(rate, "tokens/s")
			b.ReportMetric(pct(lat, .50), "mint-p50-ms")
			b.ReportMetric(pct(lat, .99), "mint-p99-ms")
			b.ReportMetric(pct(lat, .999), "mint-p99.9-ms")

			rss1, heap1 := settle()
			if f := os.Getenv("TOKEN_SCALE_HEAP_PROFILE"); f != "" {
				out, err := os.Create(f + "." + driver)
				if err != nil {
					b.Fatal(err)
				}
				if err := pprof.Lookup("heap").WriteTo(out, 0); err != nil {
					b.Fatal(err)
				}
				out.Close()
			}
			b.ReportMetric((rss1-rss0)/float64(b.N)*1024, "rss-B/token")
			b.ReportMetric((heap1-heap0)/float64(b.N)*1024, "heap-B/token")

			total := min(max(b.N, 2000), 50_000)
			irate, ilat := load(total, func(i int) {
				post("/oauth2/introspect", url.Values{"token": {sample[i%len(sample)]}}, "", "", key)
			})
			b.ReportMetric(irate, "introspections/s")
			b.ReportMetric(pct(ilat, .50), "intro-p50-ms")
			b.ReportMetric(pct(ilat, .99), "intro-p99-ms")
			b.ReportMetric(pct(ilat, .999), "intro-p99.9-ms")

			client.CloseIdleConnections()
			settle()
			if f := os.Getenv("TOKEN_SCALE_IDLE_PROFILE"); f != "" {
				out, err := os.Create(f + "." + driver)
				if err != nil {
					b.Fatal(err)
				}
				defer out.Close()
				if err := pprof.StartCPUProfile(out); err != nil {
					b.Fatal(err)
				}
				defer pprof.StopCPUProfile()
			}
			cpu0 := cpuTime()
			time.Sleep(idle) // the measurement is the idle window itself
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(idle)*100, "idle-cpu-%")
		})
	}
}

// rss is this process's resident set in bytes.
func rss() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb * 1024
		}
	}
	return 0
}

// machineBusy is the CPU time every process on the machine has used
// (/proc/stat: user, nice, system, irq and softirq; not idle, iowait or
// time stolen by the hypervisor), 0 where it cannot be read.
func machineBusy() time.Duration {
	raw, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(raw), "\n")
	var busy int64
	for i, f := range strings.Fields(line) {
		if n, err := strconv.ParseInt(f, 10, 64); err == nil && (i <= 3 || i == 6 || i == 7) { // user nice system, irq softirq
			busy += n
		}
	}
	return time.Duration(busy) * (time.Second / 100) // USER_HZ
}

// cpuTime is the user and system CPU this process used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

package server

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

type metrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

func newMetrics(reg *prometheus.Registry) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "perfectpay_http_requests_total",
			Help: "HTTP requests by method, route template and status.",
		}, []string{"method", "route", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "perfectpay_http_request_duration_seconds",
			Help:    "HTTP request latency by method and route template.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"method", "route", "status"}),
	}
	reg.MustRegister(m.requests, m.latency, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) observe(method, route string, status int, d time.Duration) {
	st := strconv.Itoa(status)
	m.requests.WithLabelValues(method, route, st).Inc()
	m.latency.WithLabelValues(method, route, st).Observe(d.Seconds())
}

// MetricsHandler serves the Prometheus metrics, behind the bearer token
// when one is configured (Deps.MetricsToken).
func (s *Server) MetricsHandler() http.Handler {
	prom := promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{})
	return s.wrap(func(w http.ResponseWriter, r *http.Request) error {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			return Errorf(http.StatusMethodNotAllowed, TypeInvalidRequest, "method_not_allowed", "", "%s is not allowed on /metrics.", r.Method)
		}
		if s.MetricsToken.Set() {
			scheme, cred := bearer(r)
			if scheme != "bearer" || !s.MetricsToken.Matches(cred) {
				w.Header().Set("WWW-Authenticate", `Bearer realm="metrics"`)
				return Errorf(http.StatusUnauthorized, TypeAuthentication, "invalid_metrics_token", "",
					"/metrics needs the metrics bearer token (server.metrics_token).")
			}
		}
		prom.ServeHTTP(w, r)
		return nil
	})
}

// ServeMetrics serves /metrics (and nothing else) on ln until ctx ends:
// the separate listen address of server.metrics_addr, which can be bound
// where only the scraper reaches.
func (s *Server) ServeMetrics(ctx context.Context, ln net.Listener) error {
	mux := http.NewServeMux()
	mux.Handle("/metrics", s.MetricsHandler())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 15 * time.Second, WriteTimeout: 30 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := srv.Shutdown(sctx)
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		return serr
	}
	return err
}

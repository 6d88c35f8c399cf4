// Package server is the HTTP layer: the router, middleware (request id,
// logging, metrics, authentication, idempotency, access audit) and the
// handlers. It holds no business rules; those live in the domain packages.
package server

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/perfectpay/perfectpay/accounts"
	"github.com/perfectpay/perfectpay/audit"
	"github.com/perfectpay/perfectpay/idempotency"
	"github.com/perfectpay/perfectpay/store"
)

// Mounter is a group of handlers that adds its routes to the API router.
// Each domain's handlers implement it; server.New wires them in one place.
type Mounter interface {
	Mount(api *API)
}

// Deps are the server's explicit dependencies.
type Deps struct {
	Log         *slog.Logger
	Accounts    *accounts.Service
	Audit       store.Runner[audit.Writer]
	Idempotency store.Runner[idempotency.Repo]
	Ping        func(ctx context.Context) error
	// AgentAuth authenticates a bearer value that is not an API key (an
	// agent's access token). Nil until the issuer is wired.
	AgentAuth AgentAuthenticator
	// IdempotencyHMACKey keys the request hashes idempotency records keep.
	IdempotencyHMACKey []byte
	// IdempotencyTTL is how long a stored response is replayed.
	IdempotencyTTL time.Duration
	// Handlers of the domains, mounted on the API router.
	Handlers []Mounter
	// MetricsToken, when set, is the hash of the bearer token /metrics
	// asks for (compared in constant time); unset, /metrics is open.
	MetricsToken accounts.TokenHash
	// MetricsOwnListener takes /metrics off the API router: it is served
	// only by ServeMetrics, on a listen address of its own.
	MetricsOwnListener bool
	// OperatorKey is the hash of the platform operator's token, which
	// the operator endpoints (tenant revocation) ask for; unset, they
	// refuse every caller.
	OperatorKey accounts.TokenHash
	// Abuse are the rate limits and abuse defences; nil turns them off.
	Abuse *Defences
	// BaseURL is the server's public base URL; with it, every 401 names
	// the protected resource metadata (RFC 9728) of the resource asked.
	BaseURL string
	// ResourcePaths are the paths of protected resources other than the
	// API that publish metadata of their own (the MCP endpoint).
	ResourcePaths []string
}

// Server is the HTTP handler of the API.
type Server struct {
	Deps
	log     *slog.Logger
	router  *mux.Router
	metrics *metrics
	reg     *prometheus.Registry
	// accessLog and answers commit access-audit entries and stored
	// idempotent answers of many requests together (audit.Group).
	accessLog *audit.Group[audit.Writer]
	answers   *audit.Group[idempotency.Repo]
}

// New builds the router with every route.
func New(d Deps) *Server {
	if d.IdempotencyTTL == 0 {
		d.IdempotencyTTL = 24 * time.Hour
	}
	s := &Server{Deps: d, log: d.Log, router: mux.NewRouter(), reg: prometheus.NewRegistry()}
	s.metrics = newMetrics(s.reg)
	s.accessLog = audit.NewGroup(d.Audit, 0)
	s.answers = audit.NewGroup(d.Idempotency, 0)
	s.router.Use(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if m := mux.CurrentRoute(r); m != nil {
				if tpl, err := m.GetPathTemplate(); err == nil {
					state(r).route = tpl
				}
			}
			next.ServeHTTP(w, r)
		})
	})
	s.router.NotFoundHandler = s.wrap(func(w http.ResponseWriter, r *http.Request) error {
		return Errorf(http.StatusNotFound, TypeInvalidRequest, "route_not_found", "", "Unrecognized request URL (%s %s).", r.Method, r.URL.Path)
	})
	s.router.MethodNotAllowedHandler = s.wrap(func(w http.ResponseWriter, r *http.Request) error {
		return Errorf(http.StatusMethodNotAllowed, TypeInvalidRequest, "method_not_allowed", "", "%s is not allowed on %s.", r.Method, r.URL.Path)
	})
	s.router.Handle("/healthz", s.wrap(func(w http.ResponseWriter, r *http.Request) error {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
		return nil
	})).Methods(http.MethodGet)
	s.router.Handle("/readyz", s.wrap(func(w http.ResponseWriter, r *http.Request) error {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := s.Ping(ctx); err != nil {
			s.log.WarnContext(r.Context(), "readiness: store unreachable", "err", err)
			return Errorf(http.StatusServiceUnavailable, TypeAPI, "store_unavailable", "", "The store is unreachable.")
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
		return nil
	})).Methods(http.MethodGet)
	if !d.MetricsOwnListener {
		s.router.Handle("/metrics", s.MetricsHandler()).Methods(http.MethodGet)
	}

	api := &API{s: s, r: s.router}
	(&keyHandlers{s: s}).Mount(api)
	(&tenantHandlers{s: s}).Mount(api)
	for _, h := range d.Handlers {
		h.Mount(api)
	}
	return s
}

// Route is one registered route: method and path template.
type Route struct{ Method, Path string }

// Routes lists every route the router holds, in registration order, so
// tests can check they cover each one.
func (s *Server) Routes() []Route {
	var out []Route
	_ = s.router.Walk(func(r *mux.Route, _ *mux.Router, _ []*mux.Route) error {
		path, err := r.GetPathTemplate()
		if err != nil {
			return nil //nolint:nilerr // a route without a path (a subrouter) is skipped
		}
		methods, err := r.GetMethods()
		if err != nil {
			return nil //nolint:nilerr // a route without methods matches none: skipped
		}
		for _, m := range methods {
			out = append(out, Route{Method: m, Path: path})
		}
		return nil
	})
	return out
}

// Registry is the Prometheus registry the server reports to; domains may
// register their own collectors on it.
func (s *Server) Registry() *prometheus.Registry { return s.reg }

// ServeHTTP runs the outer middleware: request id, body limit, metrics,
// access log and access audit, then the router.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	st := &reqState{id: newRequestID(), ip: s.sourceIP(r)}
	ctx := withState(r.Context(), st)
	r = r.WithContext(ctx)
	w.Header().Set("Request-Id", st.id)
	if r.Body != nil {
		r.Body = http.MaxBytesReader(w, r.Body, MaxBodyBytes)
	}
	rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
	s.router.ServeHTTP(rec, r)

	route := st.route
	if route == "" {
		route = "unmatched"
	}
	dur := time.Since(start)
	s.metrics.observe(r.Method, route, rec.status, dur)
	s.log.InfoContext(ctx, "request", "method", r.Method, "route", route, "status", rec.status,
		"duration_ms", float64(dur.Microseconds())/1000, "ip", st.ip)
	if st.principal != nil {
		s.auditRequest(ctx, st, r.Method, route, rec.status)
	}
}

// auditRequest writes the access entry for an authenticated request by
// group commit: it returns once the batch holding the entry committed.
func (s *Server) auditRequest(ctx context.Context, st *reqState, method, route string, status int) {
	p := st.principal
	e := &audit.Entry{
		TenantID: p.TenantID, ActorType: p.ActorType, ActorID: p.CredentialID, IP: st.ip,
		Action: "api.request", RequestID: st.id, Method: method, Route: route, Status: status,
	}
	err := s.accessLog.Do(func(ctx context.Context, tx audit.Writer) error { return audit.Append(ctx, tx, e) })
	if err != nil {
		s.log.ErrorContext(ctx, "access audit failed", "err", err)
	}
}

type statusRecorder struct {
	http.ResponseWriter
	status      int
	wroteHeader bool
}

func (r *statusRecorder) WriteHeader(code int) {
	if !r.wroteHeader {
		r.status, r.wroteHeader = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	r.wroteHeader = true
	return r.ResponseWriter.Write(b)
}

func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// handlerFunc is a handler that returns its error for writeError.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// wrap turns a handlerFunc into an http.Handler, recovering panics.
func (s *Server) wrap(fn handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if p := recover(); p != nil {
				if err, ok := p.(error); ok && errors.Is(err, http.ErrAbortHandler) {
					panic(p)
				}
				s.log.ErrorContext(r.Context(), "panic in handler", "panic", p)
				s.writeError(w, r, Errorf(http.StatusInternalServerError, TypeAPI, "internal_error", "", "An internal error occurred."))
			}
		}()
		if err := fn(w, r); err != nil {
			s.writeError(w, r, err)
		}
	})
}

package server

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/perfectpay/perfectpay/internal/apierr"
	"github.com/perfectpay/perfectpay/store"
)

// Error types, as Stripe names them.
const (
	TypeInvalidRequest = "invalid_request_error"
	TypeAuthentication = "authentication_error"
	TypePermission     = "permission_error"
	TypeCard           = "card_error"
	TypeIdempotency    = "idempotency_error"
	TypeRateLimit      = "rate_limit_error"
	TypeAPI            = "api_error"
)

// Error is the one API error. Handlers return it (or any error, which
// becomes a generic 500).
type Error struct {
	Status  int    `json:"-"`
	Type    string `json:"type"`
	Code    string `json:"code,omitempty"`
	Message string `json:"message"`
	Param   string `json:"param,omitempty"`
	// DeclineCode accompanies card errors.
	DeclineCode string `json:"decline_code,omitempty"`
	// RetryAfter, in seconds, is sent as the Retry-After header when set.
	RetryAfter int `json:"-"`
	// Extra top-level members of the error body (e.g. "charge", "approval").
	Extra map[string]any `json:"-"`
	// Header is sent with the error (e.g. WWW-Authenticate, DPoP-Nonce).
	Header http.Header `json:"-"`
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s (%d %s): %s", e.Code, e.Status, e.Type, e.Message)
}

// Errorf returns an *Error.
func Errorf(status int, typ, code, param, format string, args ...any) *Error {
	return &Error{Status: status, Type: typ, Code: code, Param: param, Message: fmt.Sprintf(format, args...)}
}

// BadRequest is a 400 invalid_request_error about param.
func BadRequest(code apierr.Code, param, format string, args ...any) *Error {
	return Errorf(http.StatusBadRequest, TypeInvalidRequest, string(code), param, format, args...)
}

// NotFound is a 404 for a resource of the given kind.
func NotFound(kind, id string) *Error {
	return Errorf(http.StatusNotFound, TypeInvalidRequest, "resource_missing", "id", "No such %s: '%s'", kind, id)
}

// StoreUnavailableRetryAfter is the Retry-After, in seconds, of an answer
// given while the store is unreachable.
const StoreUnavailableRetryAfter = 2

// StoreUnavailable is the answer to a request that failed because the store
// could not be reached: 503, retryable, and (with an Idempotency-Key) the
// retry is free to run again, because the failed request holds no claim.
func StoreUnavailable() *Error {
	e := Errorf(http.StatusServiceUnavailable, TypeAPI, "store_unavailable", "",
		"The service is briefly unable to reach its database. Retry the request after a short while; with the same Idempotency-Key it will not be applied twice.")
	e.RetryAfter = StoreUnavailableRetryAfter
	return e
}

// fromDomain maps the domains' refusals (the kinds of package apierr) to
// API errors; nil when err is none of them.
func fromDomain(err error) *Error {
	var (
		inv  *apierr.Invalid
		card *apierr.Card
		nf   *apierr.NotFound
		conf *apierr.Conflict
		forb *apierr.Forbidden
		unav *apierr.Unavailable
	)
	switch {
	case errors.As(err, &inv):
		return BadRequest(inv.Code, inv.Param, "%s", inv.Message)
	case errors.As(err, &card):
		return Errorf(http.StatusPaymentRequired, TypeCard, string(card.Code), card.Param, "%s", card.Message)
	case errors.As(err, &nf):
		return NotFound(nf.Kind, nf.ID)
	case errors.As(err, &conf):
		return Errorf(http.StatusConflict, TypeInvalidRequest, string(conf.Code), conf.Param, "%s", conf.Message)
	case errors.As(err, &forb):
		return Errorf(http.StatusForbidden, TypePermission, string(forb.Code), forb.Param, "%s", forb.Message)
	case errors.As(err, &unav):
		e := Errorf(http.StatusServiceUnavailable, TypeAPI, string(unav.Code), "", "%s", unav.Message)
		e.RetryAfter = unav.RetryAfter
		return e
	}
	return nil
}

// writeError writes err as the JSON error body. Unknown errors become a
// generic 500; their cause goes to the log only.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var e *Error
	if !errors.As(err, &e) {
		e = fromDomain(err)
	}
	if e == nil {
		switch {
		case errors.Is(err, store.ErrNotFound):
			e = Errorf(http.StatusNotFound, TypeInvalidRequest, "resource_missing", "", "No such resource.")
		case errors.Is(err, store.ErrConflict):
			e = Errorf(http.StatusConflict, TypeInvalidRequest, "conflict", "", "The request conflicts with the current state of the resource.")
		case errors.Is(err, store.ErrUnavailable):
			s.log.WarnContext(r.Context(), "store unavailable", "err", err, "method", r.Method, "path", r.URL.Path)
			e = StoreUnavailable()
		case errors.Is(err, store.ErrSerialization):
			e = Errorf(http.StatusConflict, TypeAPI, "lock_timeout", "", "The request raced with another one; retry it.")
			e.RetryAfter = 1
		default:
			s.log.ErrorContext(r.Context(), "internal error", "err", err, "method", r.Method, "path", r.URL.Path)
			e = Errorf(http.StatusInternalServerError, TypeAPI, "internal_error", "", "An internal error occurred. Retry later; the request id identifies it to support.")
		}
	}
	if e.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(e.RetryAfter))
	}
	s.challenge(r, e)
	for k, vs := range e.Header {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	body := map[string]any{}
	for k, v := range e.Extra {
		body[k] = v
	}
	errBody := map[string]any{"type": e.Type, "message": e.Message}
	if e.Code != "" {
		errBody["code"] = e.Code
	}
	if e.Param != "" {
		errBody["param"] = e.Param
	}
	if e.DeclineCode != "" {
		errBody["decline_code"] = e.DeclineCode
	}
	if id := requestID(r); id != "" {
		errBody["request_id"] = id
	}
	body["error"] = errBody
	if e.Status >= 500 {
		s.log.WarnContext(r.Context(), "request failed", slog.Int("status", e.Status), slog.String("code", e.Code))
	}
	writeJSON(w, e.Status, body)
}

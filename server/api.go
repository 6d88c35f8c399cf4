package server

import (
	"encoding/json"
	"errors"
	"maps"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/gorilla/mux"

	"github.com/perfectpay/perfectpay/accounts"
	"github.com/perfectpay/perfectpay/audit"
	"github.com/perfectpay/perfectpay/internal/apierr"
	"github.com/perfectpay/perfectpay/internal/ids"
	"github.com/perfectpay/perfectpay/internal/logging"
)

// AgentAuthenticator authenticates an agent's access token presented as
// `Authorization: Bearer …` or `DPoP …` (scheme is lower-case). It returns
// an *Error (401/403) when the token is not acceptable.
type AgentAuthenticator interface {
	AuthenticateAgent(r *http.Request, scheme, token string) (*Principal, error)
}

// API registers routes with their access rule.
type API struct {
	s *Server
	r *mux.Router
}

// Access says who may call a route.
type Access struct {
	// Scope an API key must carry. Secret keys carry every scope;
	// publishable keys only tokens:write.
	Scope string
	// Agent accepts agent access tokens too.
	Agent bool
	// Public routes take no credentials (health, discovery, OAuth
	// endpoints that authenticate clients themselves).
	Public bool
	// NoIdempotency turns off Idempotency-Key handling on a POST (OAuth
	// endpoints, whose semantics RFC 6749 fixes).
	NoIdempotency bool
	// CORS lets browser pages of any origin call the route (with a key in
	// the Authorization header, never cookies) and answers its preflight.
	CORS bool
}

// Handle adds a JSON API route. POST routes get idempotency handling.
func (a *API) Handle(method, path string, access Access, fn handlerFunc) {
	h := fn
	if method == http.MethodPost && !access.Public && !access.NoIdempotency {
		h = a.s.idempotent(h)
	}
	h = panFreeHeaders(h)
	h = storableText(h)
	if !access.Public {
		h = a.s.limitSource(a.s.authenticate(access, a.s.limitPrincipal(method, path, acceptRiskSignals(method, path, h))))
	}
	if access.CORS {
		a.r.Handle(path, cors(method, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(http.StatusNoContent)
		}))).Methods(http.MethodOptions)
		a.r.Handle(path, cors(method, a.s.wrap(h))).Methods(method)
		return
	}
	a.r.Handle(path, a.s.wrap(h)).Methods(method)
}

// storableText refuses path ids and query values that no store can hold
// (invalid UTF-8, NUL) before anything looks them up: no object has such an
// id, and PostgreSQL fails such a lookup (a 500) instead of missing it.
func storableText(next handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		for name, v := range mux.Vars(r) {
			if !ids.Storable(v) {
				return Errorf(http.StatusNotFound, TypeInvalidRequest, "resource_missing", name,
					"No such object: the %s is not valid UTF-8 or holds a NUL character.", name)
			}
		}
		for name, vs := range r.URL.Query() {
			param := name
			if !ids.Storable(name) {
				param = "query"
			}
			for _, v := range append(vs, name) {
				if !ids.Storable(v) {
					return BadRequest(apierr.ParameterInvalid, param,
						"The query parameter %s is not valid UTF-8 or holds a NUL character.", param)
				}
			}
		}
		return next(w, r)
	}
}

// storedHeaders are the request headers whose values are kept (the
// Idempotency-Key is a column of the idempotency record).
var storedHeaders = []string{"Idempotency-Key"}

// panFreeHeaders refuses a card number in a header that is stored, before
// anything stores it (JSON bodies are checked by DecodeJSON).
func panFreeHeaders(next handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		for _, name := range storedHeaders {
			for _, v := range r.Header.Values(name) {
				if hasPAN(v) {
					return panRefused(name)
				}
			}
		}
		return next(w, r)
	}
}

// panFreeForm refuses a card number in a form body (the OAuth endpoints,
// whose parameters — authorization_details above all — are kept in grants,
// tokens and child mandates), answering in RFC 6749's error shape. A value
// holding JSON is searched member by member, so the refusal names the
// field and a number in it (a budget) is not mistaken for a card number.
func panFreeForm(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); r.Method != http.MethodPost || mt != "application/x-www-form-urlencoded" {
			next.ServeHTTP(w, r)
			return
		}
		b, err := readBody(r) // restores r.Body for next
		if err != nil {
			next.ServeHTTP(w, r)
			return
		}
		form, err := url.ParseQuery(string(b))
		if err != nil {
			next.ServeHTTP(w, r)
			return
		}
		// Parameters in the query string reach the handler's r.Form too.
		for k, vs := range r.URL.Query() {
			form[k] = append(form[k], vs...)
		}
		for _, name := range slices.Sorted(maps.Keys(form)) {
			param, found := "", hasPAN(name)
			if found {
				param = logging.RedactPAN(name)
			}
			for _, v := range form[name] {
				if found {
					break
				}
				param, found = panInFormValue(name, v)
			}
			if found {
				writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request",
					"error_description": param + " holds what looks like a card number; card numbers are accepted only by POST /v1/tokens."})
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

func panInFormValue(name, v string) (string, bool) {
	if t := strings.TrimSpace(v); strings.HasPrefix(t, "[") || strings.HasPrefix(t, "{") {
		if param, ok := panString([]byte(t)); ok {
			if strings.HasPrefix(param, "[") {
				return name + param, true
			}
			return name + "." + param, true
		}
		var j any
		if json.Unmarshal([]byte(t), &j) == nil {
			return "", false
		}
	}
	return name, hasPAN(v)
}

// cors adds the CORS headers before authentication, so a browser can read
// error answers too. Credentials travel in Authorization, not cookies, so
// any origin may call.
func cors(method string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Access-Control-Allow-Origin", "*")
		h.Set("Access-Control-Allow-Methods", method+", OPTIONS")
		h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, Idempotency-Key")
		h.Set("Access-Control-Expose-Headers", "Request-Id, Idempotent-Replayed")
		h.Set("Access-Control-Max-Age", "600")
		next.ServeHTTP(w, r)
	})
}

// Raw adds a route served by a plain http.Handler with no authentication
// or idempotency (OAuth endpoints with their own error shape, pages).
func (a *API) Raw(method, path string, h http.Handler) {
	a.r.Handle(path, a.s.limitRaw(path, panFreeForm(h))).Methods(method)
}

// Server returns the server (for handlers that need writeError).
func (a *API) Server() *Server { return a.s }

// WriteError writes err in the API error shape.
func (s *Server) WriteError(w http.ResponseWriter, r *http.Request, err error) {
	s.writeError(w, r, err)
}

func (s *Server) authenticate(access Access, next handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		scheme, cred := bearer(r)
		if cred == "" {
			return Errorf(http.StatusUnauthorized, TypeAuthentication, "missing_credentials", "",
				"You did not provide an API key. Send it as 'Authorization: Bearer sk_…' or as HTTP Basic user name.")
		}
		var p *Principal
		switch {
		case (scheme == "bearer" || scheme == "basic") && accounts.LooksLikeKey(cred):
			ap, err := s.Accounts.Authenticate(r.Context(), cred)
			switch {
			case errors.Is(err, accounts.ErrInvalidKey):
				return Errorf(http.StatusUnauthorized, TypeAuthentication, "invalid_api_key", "", "Invalid API key provided.")
			case errors.Is(err, accounts.ErrTenantRevoked):
				return Errorf(http.StatusForbidden, TypePermission, "tenant_revoked", "", "The tenant of this API key was revoked.")
			case errors.Is(err, accounts.ErrRevokedKey):
				return Errorf(http.StatusUnauthorized, TypeAuthentication, "api_key_revoked", "", "This API key was revoked or has expired.")
			case err != nil:
				return err
			}
			p = &Principal{TenantID: ap.Tenant.ID, CredentialID: ap.Key.ID, ActorType: audit.ActorAPIKey, Key: ap, Scopes: ap.HasScope}
			scope := access.Scope
			if scope == "" {
				scope = "any"
			}
			allowed := ap.HasScope(scope) || (access.Scope == "" && ap.Key.Kind == accounts.KindRestricted)
			if !allowed {
				state(r).principal = p // audited as a refused request
				return Errorf(http.StatusForbidden, TypePermission, "insufficient_scope", "",
					"The provided key does not have the required permission (%s) for this request.", scopeName(access.Scope, ap.Key.Kind))
			}
		case (scheme == "bearer" || scheme == "dpop") && access.Agent && s.AgentAuth != nil:
			var err error
			p, err = s.AgentAuth.AuthenticateAgent(r, scheme, cred)
			if err != nil {
				return err
			}
			if access.Scope != "" && (p.Scopes == nil || !p.Scopes(access.Scope)) {
				state(r).principal = p // audited as a refused request
				e := Errorf(http.StatusForbidden, TypePermission, "insufficient_scope", "",
					"The access token does not carry the required scope (%s).", access.Scope)
				// RFC 6750 §3.1: the scope to ask for (MCP clients step up on it).
				e.Header = http.Header{"Www-Authenticate": {`Bearer error="insufficient_scope", scope="` + access.Scope + `"`}}
				return e
			}
		case scheme == "bearer" || scheme == "basic" || scheme == "dpop":
			return Errorf(http.StatusUnauthorized, TypeAuthentication, "invalid_api_key", "", "Invalid API key provided.")
		default:
			return Errorf(http.StatusUnauthorized, TypeAuthentication, "invalid_authorization_scheme", "",
				"Unsupported Authorization scheme; use Bearer or Basic.")
		}
		return next(w, setPrincipal(r, p))
	}
}

func scopeName(scope, kind string) string {
	if scope == "" {
		return "a secret or restricted key"
	}
	if kind == accounts.KindPublishable {
		return scope + "; publishable keys may only create card tokens"
	}
	return scope
}

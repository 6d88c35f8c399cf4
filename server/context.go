package server

import (
	"context"
	"net"
	"net/http"
	"strings"

	"github.com/perfectpay/perfectpay/accounts"
	"github.com/perfectpay/perfectpay/audit"
	"github.com/perfectpay/perfectpay/authz"
	"github.com/perfectpay/perfectpay/internal/ids"
	"github.com/perfectpay/perfectpay/internal/logging"
)

// reqState is per-request state shared by the outer and inner middleware.
type reqState struct {
	id        string
	ip        string
	route     string
	principal *Principal
	// replay, when set, is the body stored for idempotent replays instead
	// of the one sent (responses that show a secret once).
	replay []byte
	// respond, when set, writes the response a result of the handler
	// makes: a claim's answer is rendered with it inside the transaction
	// that records the result (idempotency.Claim.Render).
	respond func(w http.ResponseWriter, result any, err error) error
}

type stateKey struct{}

func withState(ctx context.Context, st *reqState) context.Context {
	ctx = logging.WithRequestID(ctx, st.id)
	return context.WithValue(ctx, stateKey{}, st)
}

func state(r *http.Request) *reqState {
	st, _ := r.Context().Value(stateKey{}).(*reqState)
	if st == nil {
		return &reqState{}
	}
	return st
}

func requestID(r *http.Request) string { return state(r).id }

func newRequestID() string { return ids.New("req") }

// clientIP is the peer address. X-Forwarded-For is not trusted: a proxy in
// front must be configured to overwrite RemoteAddr (documented).
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// Principal is who made the request.
type Principal struct {
	TenantID     string
	CredentialID string // API key id, or the agent's client id
	ActorType    string // audit.ActorAPIKey | audit.ActorAgent
	Scopes       func(scope string) bool
	// Key is set for API keys.
	Key *accounts.Principal
	// Agent is the verified access token of an agent (filled by
	// AgentAuthenticator); nil for API keys.
	Agent *authz.AccessToken
}

// PrincipalFrom returns the authenticated principal of r (nil when none).
func PrincipalFrom(r *http.Request) *Principal { return state(r).principal }

func setPrincipal(r *http.Request, p *Principal) *http.Request {
	st := state(r)
	st.principal = p
	ctx := audit.WithActor(r.Context(), audit.Actor{
		TenantID: p.TenantID, Type: p.ActorType, ID: p.CredentialID, IP: st.ip, RequestID: st.id,
	})
	return r.WithContext(ctx)
}

// bearer returns the credential of the Authorization header: a Bearer or
// DPoP token, or the user name of HTTP Basic (an API key with an empty
// password, as `curl -u sk_…:` sends it). scheme is lower-case.
func bearer(r *http.Request) (scheme, cred string) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return "", ""
	}
	if u, _, ok := r.BasicAuth(); ok {
		return "basic", u
	}
	sp := strings.IndexByte(h, ' ')
	if sp < 0 {
		return "", ""
	}
	return strings.ToLower(h[:sp]), strings.TrimSpace(h[sp+1:])
}

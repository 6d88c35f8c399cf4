// Package mcpserver serves agents over the Model Context Protocol: tools
// that speak in the terms of the caller's mandate (read it, find a
// merchant, pay, read charges, follow an approval, delegate to a
// sub-agent, give the mandate up) and the mandate as a resource.
//
// Nothing here decides or moves money by itself: every tool calls the
// service the REST API calls (charging for payments, mandates, merchants,
// the issuer's token exchange), so the policy, the ledger, revocation and
// the audit trail are the same whichever door an agent comes through. The
// HTTP layer (server.MCPHandlers) authenticates the access token for the
// MCP resource before a request reaches Handler.
package mcpserver

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/perfectpay/perfectpay/audit"
	"github.com/perfectpay/perfectpay/authz"
	"github.com/perfectpay/perfectpay/charging"
	"github.com/perfectpay/perfectpay/mandates"
	"github.com/perfectpay/perfectpay/merchants"
	"github.com/perfectpay/perfectpay/payments"
	"github.com/perfectpay/perfectpay/store"
)

// Version is the server version reported at initialization.
const Version = "1.0.0"

// Charger is the agent charge pipeline (charging.Service).
type Charger interface {
	NewRequest(r charging.RawRequest) (charging.Request, error)
	Charge(ctx context.Context, tok *authz.AccessToken, req charging.Request) (*charging.Outcome, error)
	Get(ctx context.Context, o payments.Owner, id string) (*payments.Charge, error)
	GetApproval(ctx context.Context, tenantID, id string) (*charging.Approval, error)
}

// Issuer is what the tools need of the authorization server.
type Issuer interface {
	Introspect(ctx context.Context, caller authz.Caller, token, hint string) (map[string]any, error)
	Delegate(ctx context.Context, subj *authz.AccessToken, actorID string, form url.Values) (*authz.Delegated, error)
}

// Deps are the services the tools call.
type Deps struct {
	Charges   Charger
	Issuer    Issuer
	Mandates  *mandates.Service
	Merchants *merchants.Service
	// Audit records each tool call (the charge, revocation or exchange it
	// made is audited by its own service, in its own transaction).
	Audit store.Runner[audit.Writer]
	Log   *slog.Logger
	Now   func() time.Time
}

// Server is the MCP server.
type Server struct {
	d   Deps
	mcp *mcp.Server
}

// New builds the server and registers its tools and resources.
func New(d Deps) *Server {
	if d.Log == nil {
		d.Log = slog.Default()
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	s := &Server{d: d}
	s.mcp = mcp.NewServer(&mcp.Implementation{Name: "perfectpay", Title: "PerfectPay delegated payments", Version: Version},
		&mcp.ServerOptions{Instructions: instructions})
	s.addTools()
	s.addResources()
	return s
}

const instructions = "PerfectPay lets you pay on behalf of a person within the limits of a mandate they granted. " +
	"Call get_mandate first to learn your limits and remaining budget. pay charges the mandate's card; " +
	"a refusal explains which limit stopped it. When a person must approve, pay returns an approval URL: " +
	"show it to the person, then call pay again with the same idempotency_key and the approval id."

// MCP returns the SDK server (for the stdio transport and tests).
func (s *Server) MCP() *mcp.Server { return s.mcp }

// Handler is the streamable HTTP transport, stateless: every POST is one
// request, authenticated on its own, so a revoked token stops working on
// its next call. The caller must have verified the access token and put
// it in the request's context with authz.WithVerified.
func (s *Server) Handler() http.Handler {
	h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s.mcp },
		&mcp.StreamableHTTPOptions{Stateless: true, JSONResponse: true})
	return auth.RequireBearerToken(func(ctx context.Context, _ string, _ *http.Request) (*auth.TokenInfo, error) {
		at := authz.VerifiedFrom(ctx)
		if at == nil {
			return nil, auth.ErrInvalidToken
		}
		return &auth.TokenInfo{
			Scopes: at.Scopes(), Expiration: at.ExpiresAt(), UserID: at.TenantID + "/" + at.Subject,
			Extra: map[string]any{tokenKey: at, actorKey: audit.ActorFrom(ctx)},
		}, nil
	}, nil)(h)
}

const (
	tokenKey = "perfectpay.token"
	actorKey = "perfectpay.actor"
)

// errNoToken is a tool call that arrived without a verified token (never
// over Handler, which refuses such a request before the SDK sees it).
var errNoToken = errors.New("mcpserver: no verified access token")

// caller returns the verified token of a tool call and a context carrying
// its audit actor.
func caller(ctx context.Context, extra *mcp.RequestExtra) (context.Context, *authz.AccessToken, error) {
	if extra == nil || extra.TokenInfo == nil {
		return ctx, nil, errNoToken
	}
	at, _ := extra.TokenInfo.Extra[tokenKey].(*authz.AccessToken)
	if at == nil {
		return ctx, nil, errNoToken
	}
	act, ok := extra.TokenInfo.Extra[actorKey].(audit.Actor)
	if !ok || act.TenantID == "" {
		act = audit.Actor{TenantID: at.TenantID, Type: audit.ActorAgent, ID: at.ClientID}
	}
	return audit.WithActor(ctx, act), at, nil
}

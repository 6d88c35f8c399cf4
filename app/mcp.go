package app

import (
	"github.com/perfectpay/perfectpay/audit"
	"github.com/perfectpay/perfectpay/authz"
	"github.com/perfectpay/perfectpay/mcpserver"
	"github.com/perfectpay/perfectpay/server"
	"github.com/perfectpay/perfectpay/store"
)

// mcpResource is the MCP endpoint's resource identifier (RFC 8707): the
// aud of tokens minted for it.
func mcpResource(cfg Config) string { return cfg.IssuerURL() + server.PathMCP }

// mcpToolScopes is the scope each MCP tool asks of the token.
var mcpToolScopes = map[string]string{
	"get_mandate": "mandates:read", "find_merchant": "mandates:read", "request_approval": "charges:read",
	"get_charge": "charges:read", "list_charges": "charges:read",
	"pay": "charges:write", "delegate": "charges:write", "revoke": "charges:write",
}

// protectedResources publishes RFC 9728 metadata for the REST API and the
// MCP endpoint.
func protectedResources(a *App) server.Mounter {
	return &server.ProtectedResourceHandlers{Issuer: a.Issuer, Resources: []server.ProtectedResource{
		{Resource: a.Issuer.Options().Audience, Name: "PerfectPay API", Scopes: authz.AgentScopes},
		{Path: server.PathMCP, Resource: mcpResource(a.Config), Name: "PerfectPay MCP server",
			Scopes: []string{"mandates:read", "charges:read", "charges:write"}},
	}}
}

// mcpEndpoint is the MCP server at /mcp, on the services the REST API uses.
func mcpEndpoint[X any](a *App, b store.Backend[X], asWriter func(X) audit.Writer) server.Mounter {
	srv := mcpserver.New(mcpserver.Deps{
		Charges: a.Pipeline, Issuer: a.Issuer, Mandates: a.Mandates, Merchants: a.Merchants,
		Audit: store.Bind(b, asWriter), Log: a.Log,
	})
	return &server.MCPHandlers{Issuer: a.Issuer, Resource: mcpResource(a.Config), Handler: srv.Handler(), Scopes: mcpToolScopes}
}

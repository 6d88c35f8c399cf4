package server

import (
	"encoding/json"
	"net/http"

	"github.com/perfectpay/perfectpay/authz"
)

// PathMCP is the MCP endpoint (streamable HTTP).
const PathMCP = "/mcp"

// MCPHandlers serve the MCP endpoint: the access token is authenticated
// here for the MCP resource (its aud must name it: a token for the REST
// API is refused, and the other way round), a tool call whose token lacks
// the tool's scope is a 403 insufficient_scope naming it (the step-up
// signal MCP clients follow), and a body holding a card number is refused
// before any tool sees it. Handler (mcpserver.Server.Handler) does the
// rest.
type MCPHandlers struct {
	Issuer *authz.Issuer
	// Resource is the MCP endpoint's resource identifier (the aud).
	Resource string
	Handler  http.Handler
	// Scopes are the scope each tool asks for.
	Scopes map[string]string
	s      *Server
}

// Mount adds the MCP routes.
func (h *MCPHandlers) Mount(api *API) {
	h.s = api.Server()
	auth := agentAuthenticator{iss: h.Issuer, resource: h.Resource}
	handler := api.s.wrap(func(w http.ResponseWriter, r *http.Request) error {
		scheme, cred := bearer(r)
		if cred == "" {
			return Errorf(http.StatusUnauthorized, TypeAuthentication, "missing_credentials", "",
				"The MCP endpoint takes an agent's access token for this resource: Authorization: Bearer … (or DPoP).")
		}
		if scheme != "bearer" && scheme != "dpop" {
			return Errorf(http.StatusUnauthorized, TypeAuthentication, "invalid_token", "",
				"The MCP endpoint takes an agent's access token (Bearer or DPoP), not an API key.")
		}
		p, err := auth.AuthenticateAgent(r, scheme, cred)
		if err != nil {
			return err
		}
		r = setPrincipal(r, p)
		if r.Method == http.MethodPost {
			b, err := readBody(r)
			if err != nil {
				return err
			}
			if param, ok := panString(b); ok {
				return panRefused(param)
			}
			if scope := h.scopeOf(b); scope != "" && !p.Agent.HasScope(scope) {
				e := Errorf(http.StatusForbidden, TypePermission, "insufficient_scope", "",
					"The access token does not carry the scope this tool needs (%s).", scope)
				e.Header = http.Header{"Www-Authenticate": {`Bearer error="insufficient_scope", scope="` + scope + `"`}}
				return e
			}
		}
		r = r.WithContext(authz.WithVerified(r.Context(), p.Agent))
		// Verified above (with its DPoP proof); the SDK's own check only
		// looks for a bearer credential.
		r.Header.Set("Authorization", "Bearer "+cred)
		h.Handler.ServeHTTP(w, r)
		return nil
	})
	for _, m := range []string{http.MethodPost, http.MethodGet, http.MethodDelete} {
		api.r.Handle(PathMCP, api.s.limitRaw(PathMCP, handler)).Methods(m)
	}
}

// scopeOf is the scope a JSON-RPC tools/call asks for (by tool name);
// "" for every other message, and for a body that is not one message
// (the SDK answers those).
func (h *MCPHandlers) scopeOf(body []byte) string {
	var msg struct {
		Method string `json:"method"`
		Params struct {
			Name string `json:"name"`
		} `json:"params"`
	}
	if json.Unmarshal(body, &msg) != nil || msg.Method != "tools/call" {
		return ""
	}
	return h.Scopes[msg.Params.Name]
}

package server

import (
	"net/http"
	"strings"

	"github.com/perfectpay/perfectpay/authz"
)

// Protected resource metadata (RFC 9728). Each protected resource this
// server hosts — the REST API (whose identifier is the issuer's audience)
// and the MCP endpoint — publishes a document naming our authorization
// server, the scopes it understands and DPoP support, at
// /.well-known/oauth-protected-resource followed by the resource's path.
const PathProtectedResource = "/.well-known/oauth-protected-resource"

// ProtectedResource is one resource's metadata.
type ProtectedResource struct {
	// Path is the resource's path on this server ("" for the API).
	Path string
	// Resource is its identifier (an absolute URL), the aud its tokens name.
	Resource string
	// Name is a human-readable name.
	Name string
	// Scopes are the scopes its endpoints ask for.
	Scopes []string
}

// ProtectedResourceHandlers serve the metadata documents.
type ProtectedResourceHandlers struct {
	Issuer    *authz.Issuer
	Resources []ProtectedResource
}

// Mount adds one metadata route per resource.
func (h *ProtectedResourceHandlers) Mount(api *API) {
	for _, res := range h.Resources {
		doc := map[string]any{
			"resource":                              res.Resource,
			"resource_name":                         res.Name,
			"authorization_servers":                 []string{h.Issuer.Options().Issuer},
			"scopes_supported":                      res.Scopes,
			"bearer_methods_supported":              []string{"header"},
			"dpop_signing_alg_values_supported":     authz.DPoPAlgs(),
			"dpop_bound_access_tokens_required":     false,
			"authorization_details_types_supported": h.Issuer.Metadata()["authorization_details_types_supported"],
		}
		api.Handle(http.MethodGet, PathProtectedResource+res.Path, Access{Public: true, CORS: true}, func(w http.ResponseWriter, _ *http.Request) error {
			w.Header().Set("Cache-Control", "public, max-age=3600")
			writeJSON(w, http.StatusOK, doc)
			return nil
		})
	}
}

// resourceMetadataURL is where the metadata of the resource serving path
// is published: the MCP endpoint has its own, everything else is the API.
func (s *Server) resourceMetadataURL(path string) string {
	if s.BaseURL == "" {
		return ""
	}
	for _, p := range s.ResourcePaths {
		if path == p || strings.HasPrefix(path, p+"/") {
			return s.BaseURL + PathProtectedResource + p
		}
	}
	return s.BaseURL + PathProtectedResource
}

// challenge adds RFC 9728 §5.1's resource_metadata parameter to the
// WWW-Authenticate challenge of a 401 (and of a 403 for a missing scope,
// RFC 6750 §3.1's insufficient_scope), so a client that knows nothing of
// us can discover how to get a token.
func (s *Server) challenge(r *http.Request, e *Error) {
	if e.Status != http.StatusUnauthorized && (e.Status != http.StatusForbidden || e.Code != "insufficient_scope") {
		return
	}
	u := s.resourceMetadataURL(r.URL.Path)
	if u == "" {
		return
	}
	param := `resource_metadata="` + u + `"`
	if e.Header == nil {
		e.Header = http.Header{}
	}
	vs := e.Header.Values("Www-Authenticate")
	if len(vs) == 0 {
		if e.Status == http.StatusForbidden {
			return // an API key lacking a scope: no token would help
		}
		e.Header.Set("Www-Authenticate", "Bearer "+param)
		return
	}
	for n, v := range vs {
		vs[n] = v + ", " + param
	}
	e.Header["Www-Authenticate"] = vs
}

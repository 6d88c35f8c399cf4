package mcpserver

import (
	"context"
	"encoding/json"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// MandateURI is the resource holding the caller's mandate.
const MandateURI = "perfectpay://mandate"

func (s *Server) addResources() {
	s.mcp.AddResource(&mcp.Resource{URI: MandateURI, Name: "mandate", Title: "Your mandate",
		Description: "The mandate your token carries: limits, remaining budget, allowed merchants and cards.",
		MIMEType:    "application/json"}, s.readMandate)
}

func (s *Server) readMandate(ctx context.Context, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
	ctx, at, err := caller(ctx, req.Extra)
	if err != nil {
		return nil, err
	}
	v, err := s.mandateView(ctx, at)
	if err != nil {
		return nil, mcp.ResourceNotFoundError(MandateURI)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{URI: MandateURI, MIMEType: "application/json", Text: string(b)}}}, nil
}

package mcpserver

import (
	"context"
	"fmt"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Proxy is the MCP server for local clients (`perfectpay mcp --stdio`): it
// serves, over another transport, the tools and resources of the remote
// server session remote is connected to (the /mcp endpoint, with the
// agent's token), forwarding every call. Nothing is decided locally: the
// remote server authenticates each call and runs it through the same
// pipeline as the REST API.
func Proxy(ctx context.Context, remote *mcp.ClientSession) (*mcp.Server, error) {
	init := remote.InitializeResult()
	impl := &mcp.Implementation{Name: "perfectpay", Version: Version}
	opts := &mcp.ServerOptions{}
	if init != nil {
		if init.ServerInfo != nil {
			impl = init.ServerInfo
		}
		opts.Instructions = init.Instructions
	}
	srv := mcp.NewServer(impl, opts)
	for tool, err := range remote.Tools(ctx, nil) {
		if err != nil {
			return nil, fmt.Errorf("list the remote tools: %w", err)
		}
		srv.AddTool(tool, func(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return remote.CallTool(ctx, &mcp.CallToolParams{Meta: req.Params.Meta, Name: req.Params.Name, Arguments: req.Params.Arguments})
		})
	}
	for res, err := range remote.Resources(ctx, nil) {
		if err != nil {
			return nil, fmt.Errorf("list the remote resources: %w", err)
		}
		srv.AddResource(res, func(ctx context.Context, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
			return remote.ReadResource(ctx, &mcp.ReadResourceParams{URI: req.Params.URI})
		})
	}
	return srv, nil
}

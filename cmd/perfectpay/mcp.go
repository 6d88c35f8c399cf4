package main

import (
	"context"
	"errors"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/spf13/cobra"

	"github.com/perfectpay/perfectpay/mcpserver"
)

// mcpTokenEnv holds the agent's access token for `mcp --stdio` (an
// environment variable, not a flag: flags show in process listings).
const mcpTokenEnv = "PERFECTPAY_ACCESS_TOKEN"

func mcpCmd() *cobra.Command {
	var stdio bool
	var endpoint string
	cmd := &cobra.Command{
		Use:   "mcp --stdio --url URL",
		Short: "Serve the MCP tools over stdio for a local MCP client, calling a server's /mcp with the agent's token",
		Long: "Serves, on stdin/stdout, the tools and resources of the MCP endpoint at --url (…/mcp), calling it\n" +
			"with the access token in " + mcpTokenEnv + " (minted for that resource: resource=<issuer>/mcp).\n" +
			"Every call is authenticated and decided by the server, as over HTTP.",
		Args: cobra.NoArgs,
		// Needs no server configuration.
		PersistentPreRunE: func(*cobra.Command, []string) error { return nil },
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !stdio {
				return errors.New("only --stdio is supported: over HTTP, clients call the server's /mcp directly")
			}
			tok := strings.TrimSpace(os.Getenv(mcpTokenEnv))
			if tok == "" {
				return errors.New(mcpTokenEnv + " must hold the agent's access token for the MCP resource")
			}
			if !strings.HasPrefix(endpoint, "https://") && !strings.HasPrefix(endpoint, "http://127.0.0.1") && !strings.HasPrefix(endpoint, "http://localhost") {
				return errors.New("--url must be https:// (or http:// on loopback): the token must not travel in clear")
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return serveStdio(ctx, endpoint, tok, &mcp.StdioTransport{})
		},
	}
	cmd.Flags().BoolVar(&stdio, "stdio", false, "serve on stdin/stdout")
	cmd.Flags().StringVar(&endpoint, "url", "http://127.0.0.1:8080/mcp", "the server's MCP endpoint")
	return cmd
}

// serveStdio connects to endpoint with tok and serves its tools on t.
func serveStdio(ctx context.Context, endpoint, tok string, t mcp.Transport) error {
	client := mcp.NewClient(&mcp.Implementation{Name: "perfectpay-stdio", Version: mcpserver.Version}, nil)
	remote, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: endpoint,
		HTTPClient: &http.Client{Transport: bearerTransport{tok: tok}}}, nil)
	if err != nil {
		return err
	}
	defer remote.Close()
	srv, err := mcpserver.Proxy(ctx, remote)
	if err != nil {
		return err
	}
	return srv.Run(ctx, t)
}

// bearerTransport sends the access token with every request.
type bearerTransport struct{ tok string }

func (b bearerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.tok)
	return http.DefaultTransport.RoundTrip(r)
}

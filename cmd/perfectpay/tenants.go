package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/perfectpay/perfectpay/accounts"
	"github.com/perfectpay/perfectpay/audit"
	"github.com/perfectpay/perfectpay/store"
)

// tenantsRevokeCmd is `perfectpay tenants revoke ID`: the operator closes
// a tenant from a shell on a node (the same as POST /v1/tenants/{id}/revoke
// with the operator token). Every node refuses the tenant's keys, agent
// tokens and charges from then on.
func (c *cli) tenantsRevokeCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "revoke TENANT_ID",
		Short: "Revoke a tenant: every key, agent token and charge of it is refused on every node",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := c.openShared(cmd.Context(), "tenants revoke needs store.driver=postgres (the memory store lives in one server process)")
			if err != nil {
				return err
			}
			defer a.Close()
			ctx := audit.WithActor(cmd.Context(), audit.Actor{Type: audit.ActorSystem, ID: "cli"})
			t, err := a.Accounts.RevokeTenant(ctx, args[0])
			if errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("no tenant %q", args[0])
			}
			if err != nil {
				return err
			}
			return printJSON(cmd, t)
		},
	}
}

// tokenCmd is `perfectpay token new`: a random bearer token for the
// platform operator (platform.operator_key) or the metrics scraper
// (server.metrics_token). The configuration keeps only its hash.
func tokenCmd() *cobra.Command {
	token := &cobra.Command{Use: "token", Short: "Bearer tokens the configuration holds by hash",
		// Needs no configuration (the root's hook loads and validates it).
		PersistentPreRunE: func(*cobra.Command, []string) error { return nil }}
	var prefix string
	newCmd := &cobra.Command{
		Use:   "new",
		Short: "Print a new random token (shown once) and the sha256: hash to put in the configuration",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			tok, hash := accounts.NewConfigToken(prefix)
			_, err := fmt.Fprintf(cmd.OutOrStdout(), "token: %s\nhash:  %s\n", tok, hash)
			return err
		},
	}
	newCmd.Flags().StringVar(&prefix, "prefix", "op_", "token prefix (op_ for the operator, mt_ for metrics)")
	token.AddCommand(newCmd)
	return token
}

package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/spf13/cobra"

	"github.com/perfectpay/perfectpay/audit"
	"github.com/perfectpay/perfectpay/compliance"
)

// evidenceCmd is `perfectpay evidence`: verify a charge's evidence bundle
// offline.
func evidenceCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "evidence", Short: "Evidence bundles of charges",
		// Works offline: needs no configuration (the root's hook loads and validates it).
		PersistentPreRunE: func(*cobra.Command, []string) error { return nil }}
	var auditKeys, issuerKeys string
	verify := &cobra.Command{
		Use:   "verify FILE",
		Short: "Verify an evidence bundle (GET /v1/charges/{id}/evidence) offline",
		Long: `Verifies the bundle's signature; every signed mandate of its chain and
that the chain ends at the charge's mandate; that the policy input hashes
to the decision's digest and the policy modules to its version, and that
the policy decides the input as recorded; that the processor result is the
charge's; and the audit entries' inclusion against the signed checkpoint.

Pin the keys with --audit-keys (from /.well-known/audit-jwks.json or
'perfectpay audit keys') and --issuer-keys (from /.well-known/jwks.json):
without them the keys the bundle carries are trusted, which proves that
nothing changed since signing, not who signed.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			raw, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			compact := strings.TrimSuffix(string(raw), "\n")
			var keys compliance.VerifyKeys
			if auditKeys != "" {
				b, err := os.ReadFile(auditKeys)
				if err != nil {
					return err
				}
				if keys.Audit, err = audit.ParseKeySet(b); err != nil {
					return err
				}
			}
			if issuerKeys != "" {
				b, err := os.ReadFile(issuerKeys)
				if err != nil {
					return err
				}
				keys.Issuer = &jose.JSONWebKeySet{}
				if err := json.Unmarshal(b, keys.Issuer); err != nil {
					return fmt.Errorf("issuer keys: %w", err)
				}
			}
			v, _, err := compliance.VerifyBundle(cmd.Context(), compact, keys)
			if err != nil {
				return fmt.Errorf("evidence does not verify: %w", err)
			}
			if err := printJSON(cmd, v); err != nil {
				return err
			}
			if !v.KeysPinned {
				fmt.Fprintln(cmd.ErrOrStderr(), "warning: verified with the keys the bundle carries; pin them with --audit-keys and --issuer-keys")
			}
			return nil
		},
	}
	verify.Flags().StringVar(&auditKeys, "audit-keys", "", "audit public keys (JWKS) to trust")
	verify.Flags().StringVar(&issuerKeys, "issuer-keys", "", "issuer public keys (JWKS) to trust for the signed mandates")
	cmd.AddCommand(verify)
	return cmd
}

package main

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/perfectpay/perfectpay/app"
	"github.com/perfectpay/perfectpay/vault"
)

// kekCmds are the vault's subcommands of `perfectpay keys` (attached with
// attachToKeys, beside rotate-signing): rotate-kek, rewrap, kek-status.
func (c *cli) kekCmds() []*cobra.Command {
	return []*cobra.Command{c.rotateKEKCmd(), c.rewrapCmd(), c.kekStatusCmd()}
}

func printJSON(cmd *cobra.Command, v any) error {
	enc := json.NewEncoder(cmd.OutOrStdout())
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// rotateKEKCmd adds a KEK version. With vault.kek_file the new key is
// appended to the file (created 0600 when missing), atomically; otherwise
// the new entry is printed for the operator to add to vault.keks. Nodes
// use the new version for new tenant keys once they restart with it;
// `keys rewrap` then moves existing tenant keys onto it.
func (c *cli) rotateKEKCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "rotate-kek",
		Short: "Add a new vault key-encryption key version (new tenant keys use it)",
		Long: `Adds a vault KEK version.

With vault.kek_file (PERFECTPAY_VAULT_KEK_FILE) set, a fresh 32-byte key is
appended to that file under the next version (the file is created with mode
0600 when missing). Otherwise the new VERSION:BASE64 entry is printed; add it
to vault.keks (PERFECTPAY_VAULT_KEKS, comma separated).

Roll it out to every node (restart), then run 'perfectpay keys rewrap'. With
several nodes, first deploy the new version with vault.active_kek_version
pinned to the old one, then unpin it, so no node meets a key it lacks.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v := c.cfg.Vault
			if v.KEKFile != "" {
				ver, err := vault.RotateKEKFile(v.KEKFile)
				if err != nil {
					return err
				}
				return printJSON(cmd, map[string]any{"kek_file": v.KEKFile, "new_version": ver,
					"next": "restart every node with this file, then run `perfectpay keys rewrap`"})
			}
			next := 1
			if v.KEKs != "" {
				keys, err := vault.ParseKEKs(v.KEKs)
				if err != nil {
					return err
				}
				for ver := range keys {
					next = max(next, ver+1)
				}
			}
			return printJSON(cmd, map[string]any{"new_version": next, "entry": vault.FormatKEK(next, vault.GenerateKey()),
				"next": "append the entry to vault.keks (comma separated) on every node, restart, then run `perfectpay keys rewrap`"})
		},
	}
}

// rewrapCmd re-wraps every tenant key under the active KEK version.
func (c *cli) rewrapCmd() *cobra.Command {
	var batch int
	cmd := &cobra.Command{
		Use:   "rewrap",
		Short: "Re-wrap every vault tenant key under the active KEK version (no card is decrypted; resumable)",
		Long: `Re-wraps every live tenant key under the active KEK version, in batches
that each commit on their own. Only tenant keys are unwrapped: no data key and
no card number is ever decrypted. Interrupted, it is simply run again: keys
already under the active version are skipped. It reports counts, and the
tenant keys left per KEK version; when only the active version remains,
vault.min_decryption_version can be raised to it and older KEKs removed.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			a, err := c.openShared(cmd.Context(), "rewrap needs store.driver=postgres: the memory store lives inside `serve`")
			if err != nil {
				return err
			}
			defer a.Close()
			rep, err := a.Vault.Rewrap(cmd.Context(), batch, func(r vault.RewrapReport) {
				fmt.Fprintf(cmd.ErrOrStderr(), "rewrap: scanned %d, rewrapped %d, skipped %d, failed %d\n",
					r.Scanned, r.Rewrapped, r.Skipped, r.Failed)
			})
			if rep != nil {
				if perr := printJSON(cmd, rep); perr != nil && err == nil {
					err = perr
				}
			}
			if err != nil {
				return fmt.Errorf("rewrap stopped (run it again to resume): %w", err)
			}
			if rep.Failed > 0 {
				return fmt.Errorf("%d tenant keys could not be unwrapped (their KEK version is missing or below min_decryption_version)", rep.Failed)
			}
			return nil
		},
	}
	cmd.Flags().IntVar(&batch, "batch", 100, "tenant keys per transaction")
	return cmd
}

// kekStatusCmd shows the KEK versions and how many tenant keys use each.
func (c *cli) kekStatusCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "kek-status",
		Short: "Show the vault's KEK versions and the tenant keys wrapped under each",
		RunE: func(cmd *cobra.Command, _ []string) error {
			kr, err := app.LoadKeyring(c.cfg, func(string) {})
			if err != nil {
				return err
			}
			out := map[string]any{"versions": kr.Versions(), "active_version": kr.Active(), "min_decryption_version": kr.MinDecrypt()}
			if c.cfg.Store.Driver == "postgres" {
				a, err := c.open(cmd.Context())
				if err != nil {
					return err
				}
				defer a.Close()
				counts, err := a.Vault.KeyCounts(cmd.Context())
				if err != nil {
					return err
				}
				out["tenant_keys_by_version"] = counts
			}
			return printJSON(cmd, out)
		},
	}
}

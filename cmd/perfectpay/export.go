package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/perfectpay/perfectpay/audit"
	"github.com/perfectpay/perfectpay/compliance"
)

// exportCmd is `perfectpay export`: stream audit events, decisions or
// charges to a file with a signed manifest, and verify such a file.
func (c *cli) exportCmd() *cobra.Command {
	var format, out, tenant, since, until string
	var live bool
	cmd := &cobra.Command{
		Use:   "export audit_events|decisions|charges --out FILE",
		Short: "Stream an export (JSONL or CSV) and its signed manifest (FILE.manifest.jws)",
		Long: `Streams the rows to FILE, one batch in memory at a time whatever their
number, then writes FILE.manifest.jws: the export's kind, filters, rows,
bytes and SHA-256, and the signed audit checkpoint taken when it began,
signed with the audit key. 'perfectpay export verify FILE' checks them.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := compliance.ExportRequest{Kind: args[0], Format: format, TenantID: tenant, Livemode: live}
			for _, t := range []struct {
				flag, v string
				into    *time.Time
			}{{"since", since, &req.Since}, {"until", until, &req.Until}} {
				if t.v == "" {
					continue
				}
				v, err := time.Parse(time.RFC3339, t.v)
				if err != nil {
					return fmt.Errorf("--%s: want an RFC 3339 time: %w", t.flag, err)
				}
				*t.into = v
			}
			if out == "" {
				return fmt.Errorf("--out is required")
			}
			a, err := c.openShared(cmd.Context(), "export reads the shared store: configure store.driver postgres")
			if err != nil {
				return err
			}
			defer a.Close()
			tmp, err := os.CreateTemp(filepath.Dir(out), ".export-*")
			if err != nil {
				return err
			}
			defer os.Remove(tmp.Name())
			manifest, m, err := a.Exporter().Export(cmd.Context(), req, tmp)
			if err == nil {
				err = tmp.Sync()
			}
			if cerr := tmp.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
			if err := os.Rename(tmp.Name(), out); err != nil {
				return err
			}
			if err := writeFileAtomic(out+".manifest.jws", []byte(manifest+"\n")); err != nil {
				return err
			}
			return printJSON(cmd, m)
		},
	}
	cmd.Flags().StringVar(&format, "format", "jsonl", "jsonl or csv")
	cmd.Flags().StringVar(&out, "out", "", "file to write (its manifest goes to FILE.manifest.jws)")
	cmd.Flags().StringVar(&tenant, "tenant", "", "only this tenant's rows (required for charges)")
	cmd.Flags().StringVar(&since, "since", "", "rows created at or after (RFC 3339)")
	cmd.Flags().StringVar(&until, "until", "", "rows created before (RFC 3339)")
	cmd.Flags().BoolVar(&live, "live", false, "live-mode charges (default test mode)")

	var keys string
	verify := &cobra.Command{
		Use:   "verify FILE --audit-keys KEYS",
		Short: "Check an export file against its signed manifest (FILE.manifest.jws)",
		Args:  cobra.ExactArgs(1),
		// Works offline: needs no configuration.
		PersistentPreRunE: func(*cobra.Command, []string) error { return nil },
		RunE: func(cmd *cobra.Command, args []string) error {
			kb, err := os.ReadFile(keys)
			if err != nil {
				return fmt.Errorf("--audit-keys: %w", err)
			}
			ks, err := audit.ParseKeySet(kb)
			if err != nil {
				return err
			}
			mb, err := os.ReadFile(args[0] + ".manifest.jws")
			if err != nil {
				return err
			}
			f, err := os.Open(args[0])
			if err != nil {
				return err
			}
			defer f.Close()
			m, err := compliance.VerifyExport(ks, strings.TrimSuffix(string(mb), "\n"), f)
			if err != nil {
				return fmt.Errorf("export does not verify: %w", err)
			}
			return printJSON(cmd, m)
		},
	}
	verify.Flags().StringVar(&keys, "audit-keys", "", "audit public keys (JWKS) to trust (from /.well-known/audit-jwks.json)")
	cmd.AddCommand(verify)
	return cmd
}

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/perfectpay/perfectpay/audit"
)

// auditCmd is `perfectpay audit`: verify the chain (against a checkpoint
// kept outside the database), sign and export checkpoints, print the
// audit public keys.
func (c *cli) auditCmd() *cobra.Command {
	auditCmd := &cobra.Command{Use: "audit", Short: "Audit trail tools"}
	auditCmd.AddCommand(c.auditVerifyCmd(), c.auditCheckpointCmd(), c.auditKeysCmd())
	return auditCmd
}

func (c *cli) auditVerifyCmd() *cobra.Command {
	var checkpoint string
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Seal pending entries, then verify the whole hash chain; names the first problem",
		Long: `Seals pending entries, then walks the chain from its anchor: every content
and link hash, every stripe's gap-free numbering, every signed retention
record and stored checkpoint.

With --checkpoint FILE (written by 'perfectpay audit checkpoint export' and
kept outside the database) it also proves that the log still extends that
checkpoint, and trusts only the audit keys in the file: history rewritten
and relinked, a prefix deleted without a signed retention record, an entry
deleted before it was sealed, or checkpoints re-signed with another key are
each named. Without it, the keys stored in the database are trusted, and a
writer who can replace them can rewrite the log undetected.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var opts audit.VerifyOptions
			if checkpoint != "" {
				b, err := os.ReadFile(checkpoint)
				if err != nil {
					return err
				}
				ex, ks, err := audit.ParseExport(b)
				if err != nil {
					return err
				}
				opts = audit.VerifyOptions{Checkpoint: ex.Checkpoint, Keys: ks}
			}
			return c.withSealedAudit(cmd.Context(), func(s *audit.Service) error {
				res, err := s.VerifyWith(cmd.Context(), opts)
				if err != nil {
					return err
				}
				if err := printJSON(cmd, res); err != nil {
					return err
				}
				if !res.OK {
					return fmt.Errorf("audit chain does not verify at chain position %d (entry %s): %s", res.BadPos, res.BadID, res.Problem)
				}
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&checkpoint, "checkpoint", "", "checkpoint file kept outside the database (from `audit checkpoint export`)")
	return cmd
}

func (c *cli) auditCheckpointCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "checkpoint",
		Short: "Seal pending entries and sign the chain head now (nodes also do it every audit.checkpoint_interval)",
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.withSealedAudit(cmd.Context(), func(s *audit.Service) error {
				cp, err := s.Checkpoint(cmd.Context(), true)
				if err != nil {
					return err
				}
				return printJSON(cmd, map[string]any{"id": cp.ID, "chain_pos": cp.ChainPos, "kid": cp.KID,
					"created_at": cp.CreatedAt, "checkpoint": cp.JWS})
			})
		},
	}
	var out string
	export := &cobra.Command{
		Use:   "export",
		Short: "Sign a fresh checkpoint and write it, with the audit public keys, to a file to keep outside the database",
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return errors.New("--out is required")
			}
			a, err := c.open(cmd.Context())
			if err != nil {
				return err
			}
			defer a.Close()
			ex, err := a.Audit.ExportCheckpoint(cmd.Context())
			if err != nil {
				return err
			}
			b, err := json.MarshalIndent(ex, "", "  ")
			if err != nil {
				return err
			}
			if err := writeFileAtomic(out, append(b, '\n')); err != nil {
				return err
			}
			return printJSON(cmd, map[string]any{"out": out,
				"next": "keep the file outside the database; check with `perfectpay audit verify --checkpoint " + out + "`"})
		},
	}
	export.Flags().StringVar(&out, "out", "", "file to write (replaced atomically)")
	cmd.AddCommand(export)
	return cmd
}

func (c *cli) auditKeysCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "keys",
		Short: "Print the audit public keys (JWKS) that verify checkpoints and retention records",
		RunE: func(cmd *cobra.Command, _ []string) error {
			a, err := c.open(cmd.Context())
			if err != nil {
				return err
			}
			defer a.Close()
			ks, err := a.Audit.Keys(cmd.Context())
			if err != nil {
				return err
			}
			var v any
			if err := json.Unmarshal(ks.JSON(), &v); err != nil {
				return err
			}
			return printJSON(cmd, v)
		},
	}
}

// withSealedAudit opens the application, seals the pending audit entries so
// what follows sees the whole chain, runs fn on the audit service and closes
// the application.
func (c *cli) withSealedAudit(ctx context.Context, fn func(*audit.Service) error) error {
	a, err := c.open(ctx)
	if err != nil {
		return err
	}
	defer a.Close()
	if _, err := a.Audit.SealAll(ctx); err != nil {
		return err
	}
	return fn(a.Audit)
}

// writeFileAtomic writes b to path through a temporary file in the same
// directory, so a reader never sees half a checkpoint.
func writeFileAtomic(path string, b []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".checkpoint-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

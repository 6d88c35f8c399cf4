package main

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/perfectpay/perfectpay/app"
	"github.com/perfectpay/perfectpay/vault"
)

// Files perfectpay init writes.
const (
	initConfigFile = "config.yaml"
	initKEKFile    = "vault.keks"
)

// initCmd writes a production configuration with fresh secrets. It needs
// no configuration itself (the root's config loading is skipped for it).
func initCmd() *cobra.Command {
	var dir, dbURL string
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Write a production configuration with freshly generated secrets (files mode 0600; never overwrites)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return writeInit(cmd.OutOrStdout(), dir, dbURL, time.Now())
		},
	}
	cmd.Flags().StringVar(&dir, "dir", ".", "directory to write config.yaml and vault.keks into")
	cmd.Flags().StringVar(&dbURL, "database-url", app.Defaults().Store.Postgres.URL, "PostgreSQL URL written as store.postgres.url")
	return cmd
}

func randomKey() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return base64.StdEncoding.EncodeToString(b)
}

// writeInit writes DIR/config.yaml and DIR/vault.keks, refusing when either
// exists, and says what to back up.
func writeInit(w io.Writer, dir, dbURL string, now time.Time) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return err
	}
	cfgPath, kekPath := filepath.Join(abs, initConfigFile), filepath.Join(abs, initKEKFile)
	for _, p := range []string{cfgPath, kekPath} {
		if _, err := os.Lstat(p); err == nil {
			return fmt.Errorf("%s already exists: perfectpay init never overwrites secrets (a database set up with them needs exactly them); move it away or choose another --dir", p)
		} else if !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	cfg := app.Defaults()
	cfg.Store.Driver = "postgres"
	cfg.Store.Postgres.URL = dbURL
	cfg.Secrets.HMACKey = randomKey()
	cfg.Issuer.SigningKEK = randomKey()
	cfg.Webhooks.SecretKey = randomKey()
	cfg.Vault.KEKFile = kekPath
	body := fmt.Sprintf(`# PerfectPay production configuration, written by perfectpay init on %s.
# It holds secrets: keep it mode 0600 and back it up (see below). Every other
# setting has its default (config.yaml in the source tree documents them all);
# PERFECTPAY_<SECTION>_<KEY> environment variables override what is here.
dev_mode: false

store:
  driver: postgres
  postgres:
    url: %q

secrets:
  # API keys and agent client secrets are stored as HMACs under this key.
  hmac_key: %q

issuer:
  # Seals the access token signing keys kept in the database.
  signing_kek: %q

webhooks:
  # Seals the webhook endpoints' signing secrets kept in the database.
  secret_key: %q

vault:
  # Key-encryption keys of the card vault (rotate with perfectpay keys rotate-kek).
  kek_file: %q
`, now.UTC().Format(time.RFC3339), cfg.Store.Postgres.URL, cfg.Secrets.HMACKey, cfg.Issuer.SigningKEK, cfg.Webhooks.SecretKey, kekPath)
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("the configuration init would write is invalid:\n%w", err)
	}
	if _, err := vault.RotateKEKFile(kekPath); err != nil {
		return fmt.Errorf("write %s: %w", kekPath, err)
	}
	f, err := os.OpenFile(cfgPath, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		os.Remove(kekPath) // nothing was set up with it yet
		return err
	}
	if _, err := io.WriteString(f, body); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	fmt.Fprintf(w, `Wrote %s and %s (mode 0600) with freshly generated secrets.

Back up both files now, somewhere safe and apart from the database backups:
  - vault.keks holds the key-encryption keys of the card vault. Losing it
    loses every card stored: nothing can decrypt them again.
  - config.yaml holds secrets.hmac_key (lose it and every API key and agent
    secret stops working), issuer.signing_kek (the token signing keys) and
    webhooks.secret_key (the webhook endpoints' signing secrets).
Every node of one database needs these exact values. A node started with
other ones refuses to start and names the secret that does not match.

Next: create the database (store.postgres.url), then
  perfectpay migrate && perfectpay tenants create --name "…" && perfectpay serve
(from this directory, or with --config %s).
`, cfgPath, kekPath, cfgPath)
	return nil
}

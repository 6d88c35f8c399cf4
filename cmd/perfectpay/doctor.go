package main

import (
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/perfectpay/perfectpay/app"
	"github.com/perfectpay/perfectpay/retention"
)

// auditRetentionPolicy is the shortest audit retention a production
// configuration may have (0 keeps entries forever).
const auditRetentionPolicy = 365 * 24 * time.Hour

// doctorCmd is `perfectpay doctor`: read a production configuration and
// list every problem in it, exiting non-zero when there is any.
func (c *cli) doctorCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "doctor",
		Short: "Check a production configuration; list every problem, exit non-zero on any",
		Long: `Reads the configuration (--config, the environment) and lists every
problem for production: settings that do not validate, dev mode or a
missing secret (which dev mode would generate), keys that look like test
keys, TLS off on an address other than loopback, a certificate that does
not load, the simulated acquirer's faults, retention below policy, webhook
deliveries allowed to private addresses, debug logging, /metrics without
protection, the memory store, rate limits off.`,
		// Reads the configuration itself: the root's hook stops at the
		// first invalid one, the doctor lists them all.
		PersistentPreRunE: func(*cobra.Command, []string) error { return nil },
		RunE: func(cmd *cobra.Command, _ []string) error {
			path := c.configPath
			if path == "" {
				if _, err := os.Stat("config.yaml"); err == nil {
					path = "config.yaml"
				}
			}
			cfg, _, err := loadConfig(path)
			if err != nil {
				return err
			}
			problems := Diagnose(cfg)
			for _, p := range problems {
				fmt.Fprintln(cmd.OutOrStdout(), "problem:", p)
			}
			if len(problems) > 0 {
				return fmt.Errorf("%d problems in the configuration", len(problems))
			}
			fmt.Fprintln(cmd.OutOrStdout(), "no problem found")
			return nil
		},
	}
}

// Diagnose lists every problem of cfg for production use.
func Diagnose(cfg app.Config) []string {
	var out []string
	bad := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }
	if err := cfg.Validate(); err != nil {
		for _, line := range strings.Split(err.Error(), "\n") {
			if line = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), "-")); line != "" {
				bad("invalid: %s", line)
			}
		}
	}
	if cfg.DevMode {
		bad("dev_mode is on: a fixed public HMAC key, keys generated per process and demo data; never with real data")
	}
	for _, s := range []struct{ name, v string }{
		{"secrets.hmac_key", cfg.Secrets.HMACKey}, {"issuer.signing_kek", cfg.Issuer.SigningKEK},
		{"webhooks.secret_key", cfg.Webhooks.SecretKey},
	} {
		switch {
		case s.v == "":
			bad("%s is not set: dev mode would use a development key", s.name)
		case weakKey(s.v):
			bad("%s looks like a test key (too few distinct bytes); generate one with `openssl rand -base64 32`", s.name)
		}
	}
	if cfg.Vault.KEKs == "" && cfg.Vault.KEKFile == "" {
		bad("vault.keks and vault.kek_file are not set: dev mode would generate a KEK, and card tokens would not survive a restart")
	}
	for _, entry := range strings.Split(cfg.Vault.KEKs, ",") {
		if _, key, ok := strings.Cut(strings.TrimSpace(entry), ":"); ok && weakKey(key) {
			bad("vault.keks holds a key that looks like a test key (too few distinct bytes)")
		}
	}
	if cfg.Store.Driver != "postgres" {
		bad("store.driver is %q: production needs postgres (the memory store loses everything on restart)", cfg.Store.Driver)
	}

	// TLS.
	if cfg.Server.TLSCert == "" {
		if !loopback(cfg.Server.Addr) {
			bad("TLS is off and server.addr %q is not a loopback address: set server.tls_cert and server.tls_key (or listen on loopback behind a TLS proxy)", cfg.Server.Addr)
		}
	} else if _, err := tls.LoadX509KeyPair(cfg.Server.TLSCert, cfg.Server.TLSKey); err != nil {
		bad("server.tls_cert and server.tls_key do not load: %v", err)
	}
	for _, u := range []struct{ name, v string }{{"server.public_url", cfg.Server.PublicURL}, {"issuer.url", cfg.Issuer.URL}} {
		if p, err := url.Parse(u.v); u.v != "" && err == nil && p.Scheme != "https" && !loopback(p.Host) {
			bad("%s %q is not https", u.name, u.v)
		}
	}

	// Retention.
	if r := cfg.Audit.Retention; r != 0 && r < auditRetentionPolicy {
		bad("audit.retention %s is below the %s policy", r, auditRetentionPolicy)
	}
	if r := cfg.Retention.Decisions; r != 0 && r < retention.DecisionsFloor {
		bad("retention.decisions %s is below the %s policy: decision records explain charges while they can be disputed", r, retention.DecisionsFloor)
	}
	if r := cfg.Retention.CardTokens; r != 0 && r < retention.CardTokensFloor {
		bad("retention.card_tokens %s is below the %s policy: a card on file for an annual renewal goes unused a year", r, retention.CardTokensFloor)
	}
	if r := cfg.Retention.Charges; r != 0 && r < retention.ChargesFloor {
		bad("retention.charges %s is below the %s policy: disputes are answered with a charge's description and purchase", r, retention.ChargesFloor)
	}
	if r := cfg.Retention.LoginMarks; r != 0 && r < retention.LoginMarksFloor {
		bad("retention.login_marks %s is below the %s policy: people signing in monthly would be told of a new device each time", r, retention.LoginMarksFloor)
	}
	if cfg.Idempotency.Retention < 24*time.Hour {
		bad("idempotency.retention %s is below 24h: clients retrying the next day would charge twice", cfg.Idempotency.Retention)
	}

	// Webhooks to private addresses.
	for _, cidr := range cfg.Webhooks.AllowedCIDRs {
		if p, err := netip.ParsePrefix(cidr); err == nil && (p.Addr().IsPrivate() || p.Addr().IsLoopback() || p.Addr().IsLinkLocalUnicast()) {
			bad("webhooks.allowed_cidrs allows deliveries to the private range %s (server-side request forgery)", cidr)
		}
	}

	// Logging and metrics.
	if cfg.Log.Level == "debug" {
		bad("log.level is debug: request details are logged; use info")
	}
	switch {
	case cfg.Server.MetricsToken == "" && cfg.Server.MetricsAddr == "":
		bad("/metrics is served on the API listener without protection: set server.metrics_token or server.metrics_addr on loopback")
	case cfg.Server.MetricsToken == "" && !loopback(cfg.Server.MetricsAddr):
		bad("/metrics listens on %q, not loopback, without server.metrics_token", cfg.Server.MetricsAddr)
	}

	// The processor and the defences.
	if cfg.Payments.Simulator.FaultPercent > 0 {
		bad("payments.simulator.fault_percent is %d: the simulated acquirer injects faults", cfg.Payments.Simulator.FaultPercent)
	}
	if !cfg.Abuse.Enabled {
		bad("abuse.enabled is off: no rate limits, auth-failure blocks or card-testing protection")
	}
	return out
}

// weakKey reports whether a base64 key has so few distinct bytes that it
// is a test key (a repeated byte, a counter).
func weakKey(v string) bool {
	b, err := base64.StdEncoding.DecodeString(v)
	if err != nil || len(b) < 16 {
		return false // Validate names malformed keys
	}
	distinct := map[byte]bool{}
	for _, c := range b {
		distinct[c] = true
	}
	return len(distinct) < len(b)/4 || bytes.Equal(b[:len(b)/2], b[len(b)/2:])
}

// loopback reports whether addr (host:port, or a host) is a loopback
// address or localhost.
func loopback(addr string) bool {
	host := addr
	if h, _, err := net.SplitHostPort(addr); err == nil {
		host = h
	}
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

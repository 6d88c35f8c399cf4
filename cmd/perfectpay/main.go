// Command perfectpay is the PerfectPay agent authorization server.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/perfectpay/perfectpay/app"
	"github.com/perfectpay/perfectpay/internal/logging"
	"github.com/perfectpay/perfectpay/store/postgres"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	if err := newRoot().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

type cli struct {
	configPath string
	cfg        app.Config
	log        *slog.Logger
}

func newRoot() *cobra.Command {
	c := &cli{}
	root := &cobra.Command{
		Use:           "perfectpay",
		Short:         "PerfectPay agent authorization server",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if cmd.Name() == "version" || cmd.Name() == "init" {
				return nil
			}
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
			if f := cmd.Flags().Lookup("addr"); f != nil && f.Changed {
				cfg.Server.Addr = f.Value.String()
			}
			if f := cmd.Flags().Lookup("dev"); f != nil && f.Changed {
				cfg.DevMode = f.Value.String() == "true"
			}
			if err := cfg.Validate(); err != nil {
				return fmt.Errorf("invalid configuration:\n%w", err)
			}
			c.cfg = cfg
			c.log = logging.New(os.Stderr, cfg.Log.Format, cfg.Log.Level)
			return nil
		},
	}
	root.PersistentFlags().StringVar(&c.configPath, "config", "", "config file (YAML); environment: PERFECTPAY_<SECTION>_<KEY>")
	root.AddCommand(initCmd(), mcpCmd())
	root.AddCommand(c.serveCmd(), c.migrateCmd(), c.tenantsCmd(), c.auditCmd(), versionCmd(), tokenCmd())
	root.AddCommand(evidenceCmd(), c.decisionsCmd(), c.exportCmd(), c.doctorCmd())
	attachToKeys(root, c.rotateSigningCmd())
	for _, sub := range c.kekCmds() {
		attachToKeys(root, sub)
	}
	return root
}

func versionCmd() *cobra.Command {
	return &cobra.Command{Use: "version", Short: "Print the version", Run: func(cmd *cobra.Command, _ []string) {
		fmt.Fprintln(cmd.OutOrStdout(), "perfectpay", version)
	}}
}

func (c *cli) open(ctx context.Context) (*app.App, error) {
	return app.New(ctx, c.cfg, c.log)
}

// openShared opens the application for an operator command that acts on
// the store every node shares. The memory store lives inside one `serve`
// process, so there it refuses with refusal.
func (c *cli) openShared(ctx context.Context, refusal string) (*app.App, error) {
	if c.cfg.Store.Driver != "postgres" {
		return nil, errors.New(refusal)
	}
	return c.open(ctx)
}

func (c *cli) serveCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the API server",
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			// Listen first: a taken port fails before anything (demo keys
			// included) is printed, and before the store is touched.
			ln, err := listen(c.cfg.Server.Addr)
			if err != nil {
				return err
			}
			defer ln.Close()
			a, err := c.open(ctx)
			if err != nil {
				return err
			}
			defer a.Close()
			if c.cfg.DevMode {
				demo, err := a.SeedDemo(ctx)
				if err != nil {
					return err
				}
				printDemo(cmd, demo, ln.Addr().String())
			}
			a.Start()
			return serve(ctx, c.cfg.Server, ln, a.Server, c.log)
		},
	}
	cmd.Flags().String("addr", "127.0.0.1:8080", "listen address host:port")
	cmd.Flags().Bool("dev", false, "dev mode (demo tenant and merchants, generated keys; never with real data)")
	return cmd
}

func printDemo(cmd *cobra.Command, d *app.Demo, addr string) {
	w := cmd.OutOrStdout()
	fmt.Fprintln(w, "──────────────────────────────────────────────────────────────")
	fmt.Fprintln(w, " PerfectPay dev mode: demo tenant", d.Tenant.Tenant.ID, "(keys shown once)")
	for _, k := range d.Tenant.Keys {
		fmt.Fprintf(w, "   %-12s %-5s %s\n", k.Key.Kind, k.Key.Mode, k.Secret)
	}
	for _, m := range d.Merchants {
		fmt.Fprintf(w, " demo merchant %s %s (MCC %s, %v)\n", m.Merchant.ID, m.Merchant.DisplayName, m.Merchant.MCC, m.Merchant.VerifiedDomains())
	}
	fmt.Fprintf(w, " try: curl -u %s: http://%s/v1/tenant\n", d.Tenant.Keys[0].Secret, addr)
	fmt.Fprintln(w, "──────────────────────────────────────────────────────────────")
}

// listen opens the server's socket, naming the address and what to do
// when it is taken.
func listen(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if errors.Is(err, syscall.EADDRINUSE) {
		return nil, fmt.Errorf("cannot listen on %s: the address is already in use (another server holds it; stop it, or choose another address with --addr or server.addr)", addr)
	}
	if err != nil {
		return nil, fmt.Errorf("cannot listen on %s: %w", addr, err)
	}
	return ln, nil
}

// serve runs the HTTP server on ln until ctx ends, then shuts down
// gracefully, letting in-flight requests finish.
func serve(ctx context.Context, cfg app.ServerConfig, ln net.Listener, h http.Handler, log *slog.Logger) error {
	srv := &http.Server{
		Addr:              cfg.Addr,
		Handler:           h,
		ReadTimeout:       cfg.ReadTimeout,
		ReadHeaderTimeout: 10 * time.Second,
		WriteTimeout:      cfg.WriteTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	if cfg.TLSCert != "" {
		certs, err := newCertReloader(cfg.TLSCert, cfg.TLSKey, log)
		if err != nil {
			return fmt.Errorf("server.tls_cert: %w", err)
		}
		srv.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS13, GetCertificate: certs.GetCertificate}
	}
	log.Info("listening", "addr", ln.Addr().String(), "tls", cfg.TLSCert != "")
	errc := make(chan error, 1)
	go func() {
		if cfg.TLSCert != "" {
			errc <- srv.ServeTLS(ln, "", "") // certificates from the reloader
		} else {
			errc <- srv.Serve(ln)
		}
	}()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down: finishing in-flight requests", "timeout", cfg.ShutdownTimeout.String())
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return err
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	log.Info("stopped")
	return nil
}

func (c *cli) migrateCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "migrate",
		Short: "Apply pending PostgreSQL migrations (under an advisory lock)",
		RunE: func(cmd *cobra.Command, _ []string) error {
			if c.cfg.Store.Driver != "postgres" {
				return errors.New("migrate needs store.driver=postgres")
			}
			ctx := cmd.Context()
			pg, err := postgres.Open(ctx, c.cfg.Store.Postgres.URL, postgres.Options{MaxConns: 2})
			if err != nil {
				return err
			}
			defer pg.Close()
			applied, err := pg.Migrate(ctx)
			if err != nil {
				return err
			}
			if len(applied) == 0 {
				fmt.Fprintln(cmd.OutOrStdout(), "database is up to date")
			}
			for _, m := range applied {
				fmt.Fprintln(cmd.OutOrStdout(), "applied", m)
			}
			return nil
		},
	}
}

func (c *cli) tenantsCmd() *cobra.Command {
	tenants := &cobra.Command{Use: "tenants", Short: "Manage tenants"}
	var name string
	create := &cobra.Command{
		Use:   "create",
		Short: "Create a tenant and print its first keys (shown once)",
		RunE: func(cmd *cobra.Command, _ []string) error {
			if name == "" || len(name) > 200 {
				return errors.New("--name is required (at most 200 characters)")
			}
			a, err := c.open(cmd.Context())
			if err != nil {
				return err
			}
			defer a.Close()
			b, err := a.Accounts.CreateTenant(cmd.Context(), name)
			if err != nil {
				return err
			}
			out := map[string]any{"tenant": b.Tenant}
			keys := map[string]string{}
			for _, k := range b.Keys {
				keys[k.Key.Kind+"_"+k.Key.Mode] = k.Secret
			}
			out["keys"] = keys
			return printJSON(cmd, out)
		},
	}
	create.Flags().StringVar(&name, "name", "", "tenant name")
	tenants.AddCommand(create, c.tenantsRevokeCmd())
	return tenants
}

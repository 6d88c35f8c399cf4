package app

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/perfectpay/perfectpay/accounts"
	"github.com/perfectpay/perfectpay/audit"
	"github.com/perfectpay/perfectpay/authz"
	"github.com/perfectpay/perfectpay/charging"
	"github.com/perfectpay/perfectpay/fraud"
	"github.com/perfectpay/perfectpay/idempotency"
	"github.com/perfectpay/perfectpay/internal/egress"
	"github.com/perfectpay/perfectpay/mandates"
	"github.com/perfectpay/perfectpay/merchants"
	"github.com/perfectpay/perfectpay/payments"
	"github.com/perfectpay/perfectpay/retention"
	"github.com/perfectpay/perfectpay/server"
	"github.com/perfectpay/perfectpay/store"
	"github.com/perfectpay/perfectpay/store/memory"
	"github.com/perfectpay/perfectpay/store/postgres"
	"github.com/perfectpay/perfectpay/store/repos"
	"github.com/perfectpay/perfectpay/vault"
	"github.com/perfectpay/perfectpay/web"
	"github.com/perfectpay/perfectpay/webhooks"
)

// The contracts the wiring relies on between packages, checked at compile
// time (each service is also passed to its consumer as a typed value).
var (
	_ mandates.Signer         = (*authz.Issuer)(nil)
	_ accounts.TenantTokens   = (*authz.Issuer)(nil)
	_ server.ChargeCore       = (*payments.Service)(nil)
	_ server.ChargeOps        = (*charging.Service)(nil)
	_ server.AgentCharger     = (*charging.Service)(nil)
	_ server.MerchantProfiles = (*merchants.Service)(nil)
)

// App is a wired node: services, HTTP server and background jobs.
type App struct {
	Config   Config
	Log      *slog.Logger
	Accounts *accounts.Service
	Audit    *audit.Service
	// Retention deletes data past its retention period.
	Retention *retention.Service
	Server    *server.Server
	// Issuer is the OAuth2 authorization server (agents, tokens, keys).
	Issuer *authz.Issuer
	// Webhooks manages endpoints and events; Dispatcher delivers them.
	Webhooks   *webhooks.Service
	Dispatcher *webhooks.Dispatcher
	// Vault tokenizes cards; Payments charges them on Simulator (the
	// built-in acquirer; tests inject faults into it).
	Vault     *vault.Service
	Payments  *payments.Service
	Simulator *payments.Simulated
	// Pipeline decides and makes agent charges.
	Pipeline *charging.Service
	// People manages users, their factors and sessions; Pages serves
	// sign-in, the payer's page, step-up approvals and the console.
	People *accounts.People
	Pages  *web.Pages
	// details is this node's authorization_details registry.
	details *authz.DetailTypeRegistry
	// Idempotency is the idempotency store (tests use it to stage claims).
	Idempotency store.Runner[idempotency.Repo]

	// Defences are the rate limits and abuse defences (nil when off).
	Defences *server.Defences
	// Fraud gathers the fraud signals of agent charges (nil when off).
	Fraud *fraud.Assessor

	// Mandates manages mandates; Merchants merchant profiles.
	Mandates  *mandates.Service
	Merchants *merchants.Service

	// Memory is set when the memory backend is in use (tests tamper with it).
	Memory *memory.Store
	// Postgres is set when the Postgres backend is in use.
	Postgres *postgres.Store

	// metricsLn is the listener of server.metrics_addr, when set.
	metricsLn  net.Listener
	closeStore func()
	jobs       []func(ctx context.Context)
	wg         sync.WaitGroup
	cancel     context.CancelFunc
}

// devHMACKey is the fixed dev-mode key, so that several dev nodes agree.
// It is public: never use dev mode with real data.
var devHMACKey = sha256.Sum256([]byte("perfectpay dev mode hmac key - not secret"))

// New opens the store (migrating Postgres when configured) and wires every
// service. It starts nothing; call Start.
func New(ctx context.Context, cfg Config, log *slog.Logger) (*App, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	a := &App{Config: cfg, Log: log}
	switch cfg.Store.Driver {
	case "postgres":
		pg, err := postgres.Open(ctx, cfg.Store.Postgres.URL, postgres.Options{MaxConns: cfg.Store.Postgres.MaxConns})
		if err != nil {
			return nil, err
		}
		if cfg.Store.Postgres.Migrate {
			applied, err := pg.Migrate(ctx)
			if err != nil {
				pg.Close()
				return nil, fmt.Errorf("migrate: %w", err)
			}
			if len(applied) > 0 {
				log.Info("migrations applied", "migrations", applied)
			}
		}
		a.Postgres, a.closeStore = pg, pg.Close
		if err := wire(a, pg, pg); err != nil {
			pg.Close()
			return nil, err
		}
		if err := a.listenMetrics(); err != nil {
			pg.Close()
			return nil, err
		}
	default:
		m := memory.New()
		a.Memory, a.closeStore = m, m.Close
		if err := wire(a, m, m); err != nil {
			return nil, err
		}
		if err := a.listenMetrics(); err != nil {
			return nil, err
		}
	}
	return a, nil
}

func hmacKey(cfg Config, log *slog.Logger) []byte {
	if cfg.Secrets.HMACKey == "" {
		log.Warn("DEV MODE: using the fixed, public development HMAC key for API key hashes; never use dev mode with real data")
		return devHMACKey[:]
	}
	k, _ := base64.StdEncoding.DecodeString(cfg.Secrets.HMACKey) // validated
	return k
}

// wire builds every service on backend b. It is generic over the backend's
// transaction type so each domain gets a compile-time checked Runner; feed
// is the backend's cache-invalidation feed (LISTEN/NOTIFY on PostgreSQL,
// in-process on memory).
func wire[X repos.Tx](a *App, b store.Backend[X], feed authz.Listener) error {
	if err := checkSecrets(a, b); err != nil {
		return err
	}
	hk := hmacKey(a.Config, a.Log)
	cfg := a.Config
	a.Audit = audit.NewService(store.Bind(b, func(x X) audit.Repo { return x }), cfg.Audit.Retention, a.Log)
	if err := wireAudit(a); err != nil {
		return err
	}
	idem := store.Bind(b, func(x X) idempotency.Repo { return x })
	webhookHandlers, err := wireWebhooks(a, b)
	if err != nil {
		return err
	}
	paymentHandlers, err := wirePayments(a, b)
	if err != nil {
		return err
	}
	a.Idempotency = idem

	a.details = authz.NewDetailTypeRegistry()
	iss, err := newIssuer(cfg, b, a.Log, hk, a.details)
	if err != nil {
		return err
	}
	a.Issuer = iss

	mandateAPI, merchantAPI := wireMandates(a, b, iss)
	pipelineHandlers, err := wirePipeline(context.Background(), a, b)
	if err != nil {
		return err
	}
	pipelineHandlers = append(pipelineHandlers, wireFraud(a, b)...)

	a.Accounts = accounts.NewService(store.Bind(b, func(x X) accounts.Tx { return x }), hk, iss)
	peopleAPI, err := wirePeople(a, b, hk)
	if err != nil {
		return err
	}
	pipelineHandlers = append(pipelineHandlers, peopleAPI...)
	metricsToken, _ := accounts.ParseTokenHash(cfg.Server.MetricsToken) // validated
	operatorKey, _ := accounts.ParseTokenHash(cfg.Platform.OperatorKey) // validated
	a.Server = server.New(server.Deps{
		MetricsToken:       metricsToken,
		MetricsOwnListener: cfg.Server.MetricsAddr != "",
		OperatorKey:        operatorKey,
		Log:                a.Log,
		Accounts:           a.Accounts,
		Audit:              store.Bind(b, func(x X) audit.Writer { return x }),
		Idempotency:        idem,
		Ping:               b.Ping,
		IdempotencyTTL:     cfg.Idempotency.Retention,
		IdempotencyHMACKey: hk,
		AgentAuth:          server.NewAgentAuthenticator(iss),
		BaseURL:            cfg.IssuerURL(),
		ResourcePaths:      []string{server.PathMCP},
		Abuse:              wireAbuse(a, b),
		Handlers: append([]server.Mounter{
			mandateAPI, merchantAPI,
			&server.OAuthHandlers{Issuer: iss},
			&server.AgentHandlers{Issuer: iss},
			protectedResources(a), mcpEndpoint(a, b, func(x X) audit.Writer { return x }),
			&server.RegistrationHandlers{Issuer: iss},
			&server.ClientDomainHandlers{Issuer: iss},
		}, append(append(webhookHandlers, paymentHandlers...), pipelineHandlers...)...),
	})

	a.jobs = append(a.jobs,
		func(ctx context.Context) { a.Audit.RunSealer(ctx, cfg.Audit.SealInterval) },
		func(ctx context.Context) { iss.Run(ctx, feed) },
		func(ctx context.Context) { a.Dispatcher.Run(ctx) },
		func(ctx context.Context) { a.Pipeline.RunResolver(ctx, cfg.Payments.ResolveAfter/2) },
	)
	wireRetention(a, b)
	return nil
}

// listenMetrics binds server.metrics_addr, when set, and serves /metrics
// there as a background job.
func (a *App) listenMetrics() error {
	if a.Config.Server.MetricsAddr == "" {
		return nil
	}
	ln, err := net.Listen("tcp", a.Config.Server.MetricsAddr)
	if err != nil {
		return fmt.Errorf("server.metrics_addr: %w", err)
	}
	a.metricsLn = ln
	a.Log.Info("metrics listening", "addr", ln.Addr().String(), "token", a.Config.Server.MetricsToken != "")
	a.jobs = append(a.jobs, func(ctx context.Context) {
		if err := a.Server.ServeMetrics(ctx, ln); err != nil {
			a.Log.Error("metrics listener stopped", "err", err)
		}
	})
	return nil
}

// MetricsAddr is the address /metrics listens on when server.metrics_addr
// is set ("" otherwise).
func (a *App) MetricsAddr() string {
	if a.metricsLn == nil {
		return ""
	}
	return a.metricsLn.Addr().String()
}

// Start runs the background jobs until Close.
func (a *App) Start() {
	ctx, cancel := context.WithCancel(context.Background())
	a.cancel = cancel
	for _, job := range a.jobs {
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			job(ctx)
		}()
	}
}

// Close stops background jobs and closes the store.
func (a *App) Close() {
	if a.cancel != nil {
		a.cancel()
	}
	a.wg.Wait()
	if a.metricsLn != nil {
		_ = a.metricsLn.Close() // never served when Start was not called
	}
	if a.closeStore != nil {
		a.closeStore()
	}
}

// Demo is what dev mode creates on the memory store.
type Demo struct {
	Tenant *accounts.Bootstrap
	// Merchants are Acme Books (MCC 5942) and Acme Music (MCC 5735).
	Merchants []DemoMerchant
}

// SeedDemo creates a demo tenant (its keys are shown once) and the demo
// merchants unless an earlier start seeded them (dev mode, either store).
func (a *App) SeedDemo(ctx context.Context) (*Demo, error) {
	b, err := a.Accounts.CreateTenant(ctx, "Demo Tenant")
	if err != nil {
		return nil, err
	}
	ms, err := a.seedMerchants(ctx)
	if err != nil {
		return nil, err
	}
	return &Demo{Tenant: b, Merchants: ms}, nil
}

// newIssuer builds the authorization server on backend b.
func newIssuer[X repos.Tx](cfg Config, b store.Backend[X], log *slog.Logger, pepper []byte, details *authz.DetailTypeRegistry) (*authz.Issuer, error) {
	ic := cfg.Issuer
	var kek []byte
	if ic.SigningKEK == "" {
		log.Warn("DEV MODE: generated a signing KEK for this process; signing keys it seals are unusable after a restart")
		kek = make([]byte, 32)
		if _, err := rand.Read(kek); err != nil {
			return nil, err
		}
	} else {
		kek, _ = base64.StdEncoding.DecodeString(ic.SigningKEK) // validated
	}
	// Client ID Metadata Documents are fetched like webhooks: SSRF-guarded,
	// the same allowed prefixes.
	allowed, _ := cfg.Webhooks.AllowedPrefixes() // validated
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return authz.New(ctx, store.Bind(b, func(x X) authz.Tx { return x }), authz.Options{
		Issuer: cfg.IssuerURL(), Audience: ic.Audience, PublicURL: cfg.Server.PublicURL,
		AccessTokenTTL: ic.AccessTokenTTL, RefreshTokenTTL: ic.RefreshTokenTTL, SigningAlg: ic.SigningAlg,
		SigningKEK: kek, RotationInterval: ic.RotationInterval, MaxDelegationDepth: ic.MaxDelegationDepth,
		AssertionMaxLifetime: ic.AssertionMaxLifetime, DPoPWindow: ic.DPoPWindow, DPoPNonce: ic.DPoPNonce,
		Pepper: pepper, Log: log, Details: details, Resources: []string{mcpResource(cfg)},
		CIMDClient: egress.NewHTTPClient(egress.Policy{Allowed: allowed}, nil, authz.CIMDTimeout, nil),
	})
}

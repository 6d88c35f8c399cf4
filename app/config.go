// Package app wires the domains, the store and the HTTP server together
// from a typed Config. cmd/perfectpay and the multi-node tests use it.
package app

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/perfectpay/perfectpay/abuse"
	"github.com/perfectpay/perfectpay/accounts"
	"github.com/perfectpay/perfectpay/audit"
	"github.com/perfectpay/perfectpay/charging"
	"github.com/perfectpay/perfectpay/fraud"
	"github.com/perfectpay/perfectpay/internal/egress"
	"github.com/perfectpay/perfectpay/internal/money"
	"github.com/perfectpay/perfectpay/policies"
	"github.com/perfectpay/perfectpay/retention"
	"github.com/perfectpay/perfectpay/vault"
	"github.com/perfectpay/perfectpay/webhooks"
)

// Config is the whole configuration. cmd/perfectpay fills it with viper
// from config.yaml, PERFECTPAY_<SECTION>_<KEY> environment variables and
// flags; every field has a default (Defaults).
type Config struct {
	DevMode     bool              `mapstructure:"dev_mode"`
	Server      ServerConfig      `mapstructure:"server"`
	Platform    PlatformConfig    `mapstructure:"platform"`
	Store       StoreConfig       `mapstructure:"store"`
	Log         LogConfig         `mapstructure:"log"`
	Secrets     SecretsConfig     `mapstructure:"secrets"`
	Idempotency IdempotencyConfig `mapstructure:"idempotency"`
	Audit       AuditConfig       `mapstructure:"audit"`
	Issuer      IssuerConfig      `mapstructure:"issuer"`
	Webhooks    WebhooksConfig    `mapstructure:"webhooks"`
	Vault       VaultConfig       `mapstructure:"vault"`
	Payments    PaymentsConfig    `mapstructure:"payments"`
	Pipeline    PipelineConfig    `mapstructure:"pipeline"`
	People      PeopleConfig      `mapstructure:"people"`
	Abuse       AbuseConfig       `mapstructure:"abuse"`
	Fraud       FraudConfig       `mapstructure:"fraud"`
	Retention   RetentionConfig   `mapstructure:"retention"`
}

// ServerConfig is the HTTP listener.
type ServerConfig struct {
	Addr            string        `mapstructure:"addr"`
	TLSCert         string        `mapstructure:"tls_cert"`
	TLSKey          string        `mapstructure:"tls_key"`
	ReadTimeout     time.Duration `mapstructure:"read_timeout"`
	WriteTimeout    time.Duration `mapstructure:"write_timeout"`
	IdleTimeout     time.Duration `mapstructure:"idle_timeout"`
	ShutdownTimeout time.Duration `mapstructure:"shutdown_timeout"`
	// PublicURL is the externally visible base URL (issuer, links).
	PublicURL string `mapstructure:"public_url"`
	// MetricsAddr, when set, serves /metrics on this address only (and
	// not on Addr).
	MetricsAddr string `mapstructure:"metrics_addr"`
	// MetricsToken, when set, is "sha256:<hex>" of the bearer token
	// /metrics asks for (perfectpay token new).
	MetricsToken string `mapstructure:"metrics_token"`
}

// PlatformConfig is the platform operator's access.
type PlatformConfig struct {
	// OperatorKey is "sha256:<hex>" of the operator token that may call
	// the operator endpoints (POST /v1/tenants/{id}/revoke); empty turns
	// them off. Make one with perfectpay token new --prefix op_.
	OperatorKey string `mapstructure:"operator_key"`
}

// StoreConfig selects the backend.
type StoreConfig struct {
	Driver   string         `mapstructure:"driver"`
	Postgres PostgresConfig `mapstructure:"postgres"`
}

// PostgresConfig is the PostgreSQL connection.
type PostgresConfig struct {
	URL      string `mapstructure:"url"`
	MaxConns int32  `mapstructure:"max_conns"`
	// Migrate applies pending migrations when serve starts.
	Migrate bool `mapstructure:"migrate"`
}

// LogConfig is the logger.
type LogConfig struct {
	Level  string `mapstructure:"level"`
	Format string `mapstructure:"format"`
}

// SecretsConfig holds server-wide keys (base64, 32 bytes each).
type SecretsConfig struct {
	// HMACKey keys the hashes under which API key secrets are stored.
	HMACKey string `mapstructure:"hmac_key"`
}

// IdempotencyConfig tunes idempotency keys.
type IdempotencyConfig struct {
	Retention time.Duration `mapstructure:"retention"`
}

// IssuerConfig is the OAuth2 authorization server (authz).
type IssuerConfig struct {
	// URL is the issuer identifier (default server.public_url, else
	// http://<server.addr>).
	URL string `mapstructure:"url"`
	// Audience of tokens for this API (default the issuer URL).
	Audience string `mapstructure:"audience"`
	// AccessTokenTTL is the access token lifetime (at most 15m).
	AccessTokenTTL  time.Duration `mapstructure:"access_token_ttl"`
	RefreshTokenTTL time.Duration `mapstructure:"refresh_token_ttl"`
	// SigningAlg is ES256 or EdDSA.
	SigningAlg string `mapstructure:"signing_alg"`
	// SigningKEK seals signing keys in the store (base64 of 32 bytes).
	// Required outside dev mode; dev mode generates one per process.
	SigningKEK string `mapstructure:"signing_kek"`
	// RotationInterval rotates the signing key automatically (0: never).
	RotationInterval time.Duration `mapstructure:"rotation_interval"`
	// MaxDelegationDepth bounds token exchange chains.
	MaxDelegationDepth int `mapstructure:"max_delegation_depth"`
	// AssertionMaxLifetime bounds private_key_jwt client assertions.
	AssertionMaxLifetime time.Duration `mapstructure:"assertion_max_lifetime"`
	// DPoPWindow is how old a DPoP proof may be.
	DPoPWindow time.Duration `mapstructure:"dpop_window"`
	// DPoPNonce requires server nonces in DPoP proofs.
	DPoPNonce bool `mapstructure:"dpop_nonce"`
}

// IssuerURL is the effective issuer identifier.
func (c *Config) IssuerURL() string {
	switch {
	case c.Issuer.URL != "":
		return strings.TrimRight(c.Issuer.URL, "/")
	case c.Server.PublicURL != "":
		return strings.TrimRight(c.Server.PublicURL, "/")
	}
	return "http://" + c.Server.Addr
}

// RetentionConfig is how long each data class is kept before the
// retention job deletes it (0 keeps it forever), and how often every node
// sweeps.
type RetentionConfig struct {
	// Decisions keeps decision records and their inputs (at least
	// retention.DecisionsFloor: they explain charges while those can be
	// disputed).
	Decisions time.Duration `mapstructure:"decisions"`
	// CardTokens erases card tokens unused that long and on no live
	// mandate (at least retention.CardTokensFloor: an annual renewal).
	CardTokens time.Duration `mapstructure:"card_tokens"`
	// Charges scrubs settled charges' free text after that long (at least
	// retention.ChargesFloor: disputes are answered with it).
	Charges time.Duration `mapstructure:"charges"`
	// LoginMarks forgets the devices people signed in from after that
	// long (at least retention.LoginMarksFloor).
	LoginMarks time.Duration `mapstructure:"login_marks"`
	// Interval is how often each node sweeps.
	Interval time.Duration `mapstructure:"interval"`
}

// AuditConfig tunes the audit trail.
type AuditConfig struct {
	Retention    time.Duration `mapstructure:"retention"`
	SealInterval time.Duration `mapstructure:"seal_interval"`
	// CheckpointInterval is how often a node signs the chain head with the
	// audit signing key while the head moves (at most a second under load).
	CheckpointInterval time.Duration `mapstructure:"checkpoint_interval"`
}

// WebhooksConfig tunes webhook delivery (see the webhooks package).
type WebhooksConfig struct {
	// SecretKey seals endpoint signing secrets at rest with AES-256-GCM
	// (base64 of 32 bytes; every node must share it). Dev mode without one
	// uses a fixed, public key.
	SecretKey string `mapstructure:"secret_key"`
	// DispatchInterval is how often an idle dispatcher looks for due deliveries.
	DispatchInterval time.Duration `mapstructure:"dispatch_interval"`
	// BatchSize is the most deliveries one claim takes.
	BatchSize int `mapstructure:"batch_size"`
	// Concurrency is the most requests in flight per node.
	Concurrency int `mapstructure:"concurrency"`
	// Timeout bounds one delivery request.
	Timeout time.Duration `mapstructure:"timeout"`
	// RetrySchedule is the delay before each attempt (first 0s); its length
	// is the number of attempts before a delivery fails.
	RetrySchedule []time.Duration `mapstructure:"retry_schedule"`
	// DisableAfter disables an endpoint whose deliveries all failed this long.
	DisableAfter time.Duration `mapstructure:"disable_after"`
	// RotationOverlap is how long a rotated-out secret keeps signing, by default.
	RotationOverlap time.Duration `mapstructure:"rotation_overlap"`
	// AllowedCIDRs are private/loopback/link-local prefixes deliveries may
	// reach anyway (e.g. an internal receiver). Plain-http loopback follows
	// dev_mode.
	AllowedCIDRs []string `mapstructure:"allowed_cidrs"`
}

// PipelineConfig tunes the agent charge pipeline and its policy.
type PipelineConfig struct {
	// ApprovalTTL is how long a step-up approval may be given and used.
	ApprovalTTL time.Duration `mapstructure:"approval_ttl"`
	// Velocity limits per hour, given to the policy (0 turns one off).
	AgentChargesPerHour    int `mapstructure:"agent_charges_per_hour"`
	AgentDeclinesPerHour   int `mapstructure:"agent_declines_per_hour"`
	MandateChargesPerHour  int `mapstructure:"mandate_charges_per_hour"`
	MandateDeclinesPerHour int `mapstructure:"mandate_declines_per_hour"`
	// GroupMax is the most charge transactions on one mandate chain a
	// node runs as one transaction, each in its own savepoint, committed
	// together (1: each alone).
	GroupMax int `mapstructure:"group_max"`
	// PolicyEvaluator runs the charge policy: "plan" (OPA's plan of it,
	// run by the plan interpreter) or "topdown" (OPA's own evaluator).
	PolicyEvaluator string `mapstructure:"policy_evaluator"`
}

// AbuseConfig tunes the rate limits and the abuse defences (package abuse).
type AbuseConfig struct {
	// Enabled turns every defence on.
	Enabled bool `mapstructure:"enabled"`
	// Nodes is how many nodes share the traffic: each enforces its share
	// (1/nodes, rounded up) of every limit, so together they admit at most
	// the limit plus one request per node per window.
	Nodes int `mapstructure:"nodes"`
	// MaxKeys bounds each in-memory table (sources, credentials).
	MaxKeys int `mapstructure:"max_keys"`
	// TrustedProxies are the load balancers (CIDR prefixes or addresses)
	// whose X-Forwarded-For names the client; from anyone else it is
	// ignored.
	TrustedProxies []string `mapstructure:"trusted_proxies"`
	// Limits are the default rate limits.
	Limits abuse.Limits `mapstructure:"limits"`
	// Overrides replace some limits for a tenant or an API key.
	Overrides []LimitOverride `mapstructure:"overrides"`
	// Auth throttles and blocks sources of failed authentications.
	Auth abuse.GuardConfig `mapstructure:"auth"`
	// CardTesting blocks sources of tokenizations and charges that look
	// like card testing.
	CardTesting abuse.CardTestingConfig `mapstructure:"card_testing"`
}

// FraudConfig tunes the fraud signals of agent charges (package fraud):
// velocity windows, the anomaly detector and a fraud screener, all given
// to the charge policy as input.fraud.
type FraudConfig struct {
	Enabled bool `mapstructure:"enabled"`
	// MaxKeys bounds each in-memory table (agents, mandates, cards, merchants).
	MaxKeys int `mapstructure:"max_keys"`
	// VelocityLimits are the thresholds the policy applies.
	VelocityLimits []VelocityLimit `mapstructure:"velocity_limits"`
	// Screener is none, rules, signifyd, riskified or kount.
	Screener string `mapstructure:"screener"`
	// ScreenerTimeout bounds one screening; FailClosed denies a charge
	// the screener did not answer in time (per tenant: the lists).
	ScreenerTimeout   time.Duration       `mapstructure:"screener_timeout"`
	FailClosed        bool                `mapstructure:"fail_closed"`
	FailClosedTenants []string            `mapstructure:"fail_closed_tenants"`
	FailOpenTenants   []string            `mapstructure:"fail_open_tenants"`
	Rules             fraud.RulesConfig   `mapstructure:"rules"`
	Anomaly           fraud.AnomalyConfig `mapstructure:"anomaly"`
	Signifyd          fraud.VendorConfig  `mapstructure:"signifyd"`
	Riskified         fraud.VendorConfig  `mapstructure:"riskified"`
	Kount             fraud.VendorConfig  `mapstructure:"kount"`
}

// VelocityLimit is one velocity threshold of the charge policy: metric
// (count | amount, in the charge's minor units) of scope (agent | mandate
// | card | merchant) over window (hour | day) at most limit, else action
// (deny | challenge).
type VelocityLimit struct {
	Scope  string `mapstructure:"scope"`
	Window string `mapstructure:"window"`
	Metric string `mapstructure:"metric"`
	Action string `mapstructure:"action"`
	Limit  int64  `mapstructure:"limit"`
}

// LimitOverride replaces the limits it sets (rate > 0) for a tenant or,
// more specific, an API key (set exactly one of Tenant and Key).
type LimitOverride struct {
	Tenant string       `mapstructure:"tenant"`
	Key    string       `mapstructure:"key"`
	Limits abuse.Limits `mapstructure:"limits"`
}

// Defaults is the configuration with every default filled in.
func Defaults() Config {
	return Config{
		DevMode: false,
		Server: ServerConfig{
			Addr: "127.0.0.1:8080", ReadTimeout: 15 * time.Second, WriteTimeout: 30 * time.Second,
			IdleTimeout: 120 * time.Second, ShutdownTimeout: 20 * time.Second,
		},
		Store: StoreConfig{
			Driver:   "memory",
			Postgres: PostgresConfig{URL: "postgres://postgres@127.0.0.1:5432/perfectpay?sslmode=disable", MaxConns: 20, Migrate: true},
		},
		Log:         LogConfig{Level: "info", Format: "json"},
		Idempotency: IdempotencyConfig{Retention: 24 * time.Hour},
		Audit:       AuditConfig{Retention: 365 * 24 * time.Hour, SealInterval: 500 * time.Millisecond, CheckpointInterval: time.Second},
		Retention: RetentionConfig{Decisions: retention.DefaultDecisions, CardTokens: retention.DefaultCardTokens, Charges: retention.DefaultCharges,
			LoginMarks: retention.DefaultLoginMarks, Interval: time.Hour},
		Issuer: IssuerConfig{
			AccessTokenTTL: 5 * time.Minute, RefreshTokenTTL: 30 * 24 * time.Hour, SigningAlg: "ES256",
			RotationInterval: 30 * 24 * time.Hour, MaxDelegationDepth: 3, AssertionMaxLifetime: 5 * time.Minute,
			DPoPWindow: 60 * time.Second,
		},
		Webhooks: WebhooksConfig{
			DispatchInterval: 500 * time.Millisecond, BatchSize: 100, Concurrency: 16, Timeout: 15 * time.Second,
			RetrySchedule: slices.Clone(webhooks.DefaultRetrySchedule), DisableAfter: 72 * time.Hour, RotationOverlap: 24 * time.Hour, AllowedCIDRs: []string{},
		},
		Pipeline: PipelineConfig{
			ApprovalTTL:         15 * time.Minute,
			AgentChargesPerHour: 0, AgentDeclinesPerHour: 20, MandateChargesPerHour: 0, MandateDeclinesPerHour: 20,
			GroupMax: charging.DefaultGroupMax, PolicyEvaluator: string(policies.EvaluatorPlan),
		},
		People: defaultPeople(),
		Abuse: AbuseConfig{
			Enabled: true, Nodes: 1, MaxKeys: 1_000_000, TrustedProxies: []string{}, Overrides: []LimitOverride{},
			Limits: abuse.Limits{
				IP:          abuse.Limit{Rate: 1000, Per: time.Second, Burst: 2000},
				Key:         abuse.Limit{Rate: 100, Per: time.Second, Burst: 200},
				Agent:       abuse.Limit{Rate: 50, Per: time.Second, Burst: 100},
				TokenClient: abuse.Limit{Rate: 10, Per: time.Second, Burst: 50},
				Tokenize:    abuse.Limit{Rate: 20, Per: time.Second, Burst: 40},
				Charge:      abuse.Limit{Rate: 50, Per: time.Second, Burst: 100},
			},
			Auth: abuse.GuardConfig{
				Window: 10 * time.Minute, ThrottleAfter: 10, Throttle: abuse.Limit{Rate: 1, Per: 2 * time.Second, Burst: 1},
				BlockAfter: 30, Cooldown: 15 * time.Minute,
			},
			CardTesting: abuse.CardTestingConfig{
				Window: time.Hour, Cooldown: time.Hour, MaxTokenizations: 100, MaxDistinctCards: 10,
				MaxDeclineRatio: 0.5, DeclineMinCharges: 10, SmallAmount: 100, MaxSmallCharges: 20, MaxIncorrectCVC: 5,
			},
		},
		Fraud: FraudConfig{
			Enabled: true, MaxKeys: 1_000_000, Screener: "rules", ScreenerTimeout: 300 * time.Millisecond,
			FailClosedTenants: []string{}, FailOpenTenants: []string{},
			VelocityLimits: []VelocityLimit{
				{Scope: "agent", Window: "hour", Metric: "count", Action: "challenge", Limit: 120},
				{Scope: "card", Window: "hour", Metric: "count", Action: "challenge", Limit: 60},
				{Scope: "merchant", Window: "hour", Metric: "count", Action: "challenge", Limit: 600},
			},
			Rules: fraud.RulesConfig{
				RecentDeclines: 5, DeclinesWeight: 40, CardDeclinedWeight: 30,
				RiskyCategories: []string{"4829", "6051", "7995"}, CategoryWeight: 30, Review: 60, Reject: 90,
			},
			Anomaly: fraud.AnomalyConfig{MinHistory: 10, Threshold: 8, SpendRateFactor: 10, MerchantMix: 0.05},
		},
		Payments: PaymentsConfig{
			MaxAmount: 99_999_999, ProcessorTimeout: 10 * time.Second, ProcessorRetries: 2, ResolveAfter: 2 * time.Minute,
			Simulator: SimulatorConfig{FaultKind: "timeout"},
		},
	}
}

// Validate reports every problem at once.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if _, _, err := net.SplitHostPort(c.Server.Addr); err != nil {
		bad("server.addr %q is not host:port", c.Server.Addr)
	}
	if c.Server.MetricsAddr != "" {
		if _, _, err := net.SplitHostPort(c.Server.MetricsAddr); err != nil {
			bad("server.metrics_addr %q is not host:port", c.Server.MetricsAddr)
		} else if c.Server.MetricsAddr == c.Server.Addr {
			bad("server.metrics_addr must differ from server.addr")
		}
	}
	if _, err := accounts.ParseTokenHash(c.Server.MetricsToken); err != nil {
		bad("server.metrics_token: %v", err)
	}
	if _, err := accounts.ParseTokenHash(c.Platform.OperatorKey); err != nil {
		bad("platform.operator_key: %v", err)
	}
	if (c.Server.TLSCert == "") != (c.Server.TLSKey == "") {
		bad("server.tls_cert and server.tls_key must be set together")
	}
	for name, d := range map[string]time.Duration{
		"server.read_timeout": c.Server.ReadTimeout, "server.write_timeout": c.Server.WriteTimeout,
		"server.idle_timeout": c.Server.IdleTimeout, "server.shutdown_timeout": c.Server.ShutdownTimeout,
		"idempotency.retention": c.Idempotency.Retention, "audit.seal_interval": c.Audit.SealInterval,
		"audit.checkpoint_interval": c.Audit.CheckpointInterval,
	} {
		if d <= 0 {
			bad("%s must be positive", name)
		}
	}
	if r := c.Audit.Retention; r < 0 || (r > 0 && r < audit.RetentionFloor) {
		bad("audit.retention %s is below the %s floor (audit entries are kept at least a year; 0 keeps them forever)", r, audit.RetentionFloor)
	}
	if r := c.Retention.Decisions; r < 0 || (r > 0 && r < retention.DecisionsFloor) {
		bad("retention.decisions %s is below the %s floor (decisions explain charges while they can be disputed; 0 keeps them forever)", r, retention.DecisionsFloor)
	}
	if r := c.Retention.CardTokens; r < 0 || (r > 0 && r < retention.CardTokensFloor) {
		bad("retention.card_tokens %s is below the %s floor (a card on file for an annual renewal goes unused a year; 0 keeps tokens forever)", r, retention.CardTokensFloor)
	}
	if r := c.Retention.Charges; r < 0 || (r > 0 && r < retention.ChargesFloor) {
		bad("retention.charges %s is below the %s floor (disputes are answered with a charge's description and purchase; 0 keeps them forever)", r, retention.ChargesFloor)
	}
	if r := c.Retention.LoginMarks; r < 0 || (r > 0 && r < retention.LoginMarksFloor) {
		bad("retention.login_marks %s is below the %s floor (people signing in monthly would be told of a new device each time; 0 keeps them forever)", r, retention.LoginMarksFloor)
	}
	if c.Retention.Interval <= 0 {
		bad("retention.interval must be positive")
	}
	if c.Server.PublicURL != "" {
		if u, err := url.Parse(c.Server.PublicURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			bad("server.public_url %q is not an absolute http(s) URL", c.Server.PublicURL)
		}
	}
	switch c.Store.Driver {
	case "memory":
	case "postgres":
		if c.Store.Postgres.URL == "" {
			bad("store.postgres.url is required with store.driver=postgres")
		}
		if c.Store.Postgres.MaxConns < 1 {
			bad("store.postgres.max_conns must be at least 1")
		}
	default:
		bad("store.driver must be memory or postgres (got %q)", c.Store.Driver)
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level must be debug, info, warn or error (got %q)", c.Log.Level)
	}
	if c.Log.Format != "json" && c.Log.Format != "text" {
		bad("log.format must be json or text (got %q)", c.Log.Format)
	}
	c.validateIssuer(bad)
	c.validatePeople(bad)
	if c.Secrets.HMACKey == "" {
		if !c.DevMode {
			bad("secrets.hmac_key is required outside dev mode (base64 of 32 random bytes)")
		}
	} else if k, err := base64.StdEncoding.DecodeString(c.Secrets.HMACKey); err != nil || len(k) < 32 {
		bad("secrets.hmac_key must be base64 of at least 32 bytes")
	}
	errs = append(errs, c.Webhooks.validate(c.DevMode)...)
	c.validateVaultPayments(bad)
	c.validateAbuse(bad)
	c.validateFraud(bad)
	if c.Pipeline.ApprovalTTL < time.Minute || c.Pipeline.ApprovalTTL > 7*24*time.Hour {
		bad("pipeline.approval_ttl must be between 1m and 168h")
	}
	if c.Pipeline.GroupMax < 1 || c.Pipeline.GroupMax > 256 {
		bad("pipeline.group_max must be between 1 (no grouping) and 256")
	}
	if ev := policies.Evaluator(c.Pipeline.PolicyEvaluator); ev != policies.EvaluatorPlan && ev != policies.EvaluatorTopdown {
		bad("pipeline.policy_evaluator must be plan or topdown")
	}
	for name, v := range map[string]int{
		"pipeline.agent_charges_per_hour": c.Pipeline.AgentChargesPerHour, "pipeline.agent_declines_per_hour": c.Pipeline.AgentDeclinesPerHour,
		"pipeline.mandate_charges_per_hour": c.Pipeline.MandateChargesPerHour, "pipeline.mandate_declines_per_hour": c.Pipeline.MandateDeclinesPerHour,
	} {
		if v < 0 {
			bad("%s must not be negative (0 turns the limit off)", name)
		}
	}
	return errors.Join(errs...)
}

func (c *Config) validateAbuse(bad func(format string, args ...any)) {
	a := c.Abuse
	if a.Nodes < 1 || a.Nodes > 1000 {
		bad("abuse.nodes must be between 1 and 1000")
	}
	if a.MaxKeys < 1000 {
		bad("abuse.max_keys must be at least 1000")
	}
	if _, err := a.TrustedPrefixes(); err != nil {
		bad("abuse.trusted_proxies: %v", err)
	}
	checkLimits := func(where string, l abuse.Limits) {
		l.Each(func(name string, v abuse.Limit) {
			if v.Rate < 0 || v.Per < 0 || v.Burst < 0 {
				bad("%s.%s must not be negative", where, name)
			}
			if v.Rate > 0 && v.Per < time.Millisecond {
				bad("%s.%s.per must be at least 1ms when rate is set", where, name)
			}
		})
	}
	checkLimits("abuse.limits", a.Limits)
	for i, o := range a.Overrides {
		if (o.Tenant == "") == (o.Key == "") {
			bad("abuse.overrides[%d] must name exactly one of tenant and key", i)
		}
		checkLimits(fmt.Sprintf("abuse.overrides[%d].limits", i), o.Limits)
	}
	g := a.Auth
	if g.Window < 0 || g.Cooldown < 0 || g.BlockAfter < 0 || g.ThrottleAfter < 0 {
		bad("abuse.auth settings must not be negative")
	}
	if g.BlockAfter > 0 && (g.Window <= 0 || g.Cooldown <= 0) {
		bad("abuse.auth.window and abuse.auth.cooldown must be positive when block_after is set")
	}
	if g.ThrottleAfter > 0 && (g.Throttle.Off() || g.ThrottleAfter > g.BlockAfter) {
		bad("abuse.auth.throttle must be set, and throttle_after at most block_after, when throttle_after is set")
	}
	ct := a.CardTesting
	if ct.Window < 0 || ct.Cooldown < 0 || ct.MaxTokenizations < 0 || ct.MaxDistinctCards < 0 || ct.DeclineMinCharges < 0 ||
		ct.SmallAmount < 0 || ct.MaxSmallCharges < 0 || ct.MaxIncorrectCVC < 0 {
		bad("abuse.card_testing settings must not be negative")
	}
	if ct.MaxDeclineRatio < 0 || ct.MaxDeclineRatio > 1 {
		bad("abuse.card_testing.max_decline_ratio must be between 0 and 1")
	}
}

func (c *Config) validateFraud(bad func(format string, args ...any)) {
	f := c.Fraud
	if f.MaxKeys < 1000 {
		bad("fraud.max_keys must be at least 1000")
	}
	for i, l := range f.VelocityLimits {
		if !slices.Contains([]string{"agent", "mandate", "card", "merchant"}, l.Scope) ||
			(l.Window != "hour" && l.Window != "day") || (l.Metric != "count" && l.Metric != "amount") ||
			(l.Action != "deny" && l.Action != "challenge") || l.Limit < 1 {
			bad("fraud.velocity_limits[%d]: scope agent|mandate|card|merchant, window hour|day, metric count|amount, action deny|challenge, limit >= 1", i)
		}
	}
	switch f.Screener {
	case "none", "rules":
	case "signifyd", "riskified", "kount":
		v := map[string]fraud.VendorConfig{"signifyd": f.Signifyd, "riskified": f.Riskified, "kount": f.Kount}[f.Screener]
		if v.URL == "" || v.Key == "" {
			bad("fraud.%s.url and fraud.%s.key are required with fraud.screener=%s", f.Screener, f.Screener, f.Screener)
		} else if allowed, err := c.Webhooks.AllowedPrefixes(); err == nil {
			if err := (egress.Policy{AllowHTTPLoopback: c.DevMode, Allowed: allowed}).CheckURL(v.URL); err != nil {
				bad("fraud.%s.url: %v", f.Screener, err)
			}
		}
	default:
		bad("fraud.screener must be none, rules, signifyd, riskified or kount (got %q)", f.Screener)
	}
	if f.ScreenerTimeout < time.Millisecond || f.ScreenerTimeout > 10*time.Second {
		bad("fraud.screener_timeout must be between 1ms and 10s")
	}
	if f.Anomaly.Threshold < 0 || f.Anomaly.MinHistory < 0 || f.Anomaly.SpendRateFactor < 0 || f.Anomaly.MerchantMix < 0 {
		bad("fraud.anomaly settings must not be negative")
	}
	if f.Anomaly.MerchantMix >= 1 {
		bad("fraud.anomaly.merchant_mix is a likelihood below 1 (0.05: 5 %%; 0 turns it off)")
	}
}

// TrustedPrefixes parses TrustedProxies (a bare address is a single-address prefix).
func (a *AbuseConfig) TrustedPrefixes() ([]netip.Prefix, error) {
	return (&WebhooksConfig{AllowedCIDRs: a.TrustedProxies}).AllowedPrefixes()
}

func (c *Config) validateIssuer(bad func(string, ...any)) {
	is := c.Issuer
	for name, u := range map[string]string{"issuer.url": is.URL, "issuer.audience": is.Audience} {
		if u == "" {
			continue
		}
		if p, err := url.Parse(u); err != nil || (p.Scheme != "https" && p.Scheme != "http") || p.Host == "" {
			bad("%s %q is not an absolute http(s) URL", name, u)
		}
	}
	if is.AccessTokenTTL <= 0 || is.AccessTokenTTL > 15*time.Minute {
		bad("issuer.access_token_ttl must be positive and at most 15m (got %s)", is.AccessTokenTTL)
	}
	if is.RefreshTokenTTL <= 0 {
		bad("issuer.refresh_token_ttl must be positive")
	}
	if is.SigningAlg != "ES256" && is.SigningAlg != "EdDSA" {
		bad("issuer.signing_alg must be ES256 or EdDSA (got %q)", is.SigningAlg)
	}
	if is.SigningKEK == "" {
		if !c.DevMode {
			bad("issuer.signing_kek is required outside dev mode (base64 of 32 random bytes)")
		}
	} else if k, err := base64.StdEncoding.DecodeString(is.SigningKEK); err != nil || len(k) != 32 {
		bad("issuer.signing_kek must be base64 of exactly 32 bytes")
	}
	if is.RotationInterval < 0 || (is.RotationInterval > 0 && is.RotationInterval < time.Second) {
		bad("issuer.rotation_interval must be 0 (off) or at least 1s")
	}
	if is.MaxDelegationDepth < 1 || is.MaxDelegationDepth > 10 {
		bad("issuer.max_delegation_depth must be between 1 and 10")
	}
	if is.AssertionMaxLifetime <= 0 || is.AssertionMaxLifetime > time.Hour {
		bad("issuer.assertion_max_lifetime must be positive and at most 1h")
	}
	if is.DPoPWindow < time.Second || is.DPoPWindow > 10*time.Minute {
		bad("issuer.dpop_window must be between 1s and 10m")
	}
}

func (w *WebhooksConfig) validate(dev bool) []error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if w.SecretKey == "" {
		if !dev {
			bad("webhooks.secret_key is required outside dev mode (base64 of 32 random bytes)")
		}
	} else if k, err := base64.StdEncoding.DecodeString(w.SecretKey); err != nil || len(k) != 32 {
		bad("webhooks.secret_key must be base64 of exactly 32 bytes")
	}
	for name, d := range map[string]time.Duration{
		"webhooks.dispatch_interval": w.DispatchInterval, "webhooks.timeout": w.Timeout,
		"webhooks.disable_after": w.DisableAfter,
	} {
		if d <= 0 {
			bad("%s must be positive", name)
		}
	}
	if w.RotationOverlap < 0 || w.RotationOverlap > webhooks.MaxRotationOverlap {
		bad("webhooks.rotation_overlap must be between 0 and %s", webhooks.MaxRotationOverlap)
	}
	if w.BatchSize < 1 || w.BatchSize > 1000 {
		bad("webhooks.batch_size must be between 1 and 1000")
	}
	if w.Concurrency < 1 || w.Concurrency > 1024 {
		bad("webhooks.concurrency must be between 1 and 1024")
	}
	if len(w.RetrySchedule) == 0 || len(w.RetrySchedule) > 50 {
		bad("webhooks.retry_schedule must list 1 to 50 delays")
	} else if w.RetrySchedule[0] != 0 {
		bad("webhooks.retry_schedule must start with 0s (the first attempt is immediate)")
	}
	for _, d := range w.RetrySchedule {
		if d < 0 || d > 7*24*time.Hour {
			bad("webhooks.retry_schedule delays must be between 0s and 168h (got %s)", d)
		}
	}
	if _, err := w.AllowedPrefixes(); err != nil {
		bad("webhooks.allowed_cidrs: %v", err)
	}
	return errs
}

// AllowedPrefixes parses AllowedCIDRs (a bare address is a single-address prefix).
func (w *WebhooksConfig) AllowedPrefixes() ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, c := range w.AllowedCIDRs {
		c = strings.TrimSpace(c)
		if c == "" {
			continue
		}
		if !strings.Contains(c, "/") {
			a, err := netip.ParseAddr(c)
			if err != nil {
				return nil, fmt.Errorf("%q is not a CIDR prefix or address", c)
			}
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(c)
		if err != nil {
			return nil, fmt.Errorf("%q is not a CIDR prefix", c)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// VaultConfig holds the card vault's key-encryption keys (KEKs), which
// never enter the database. Entries are VERSION:BASE64 (32 random bytes).
type VaultConfig struct {
	// KEKs are entries separated by commas (PERFECTPAY_VAULT_KEKS).
	KEKs string `mapstructure:"keks"`
	// KEKFile holds entries one per line (mode 0600); `perfectpay keys
	// rotate-kek` adds the next version to it.
	KEKFile string `mapstructure:"kek_file"`
	// ActiveKEKVersion wraps new tenant keys; 0 means the newest version.
	ActiveKEKVersion int `mapstructure:"active_kek_version"`
	// MinDecryptionVersion refuses tenant keys wrapped under older KEKs
	// (raise it after `perfectpay keys rewrap` reports none left).
	MinDecryptionVersion int `mapstructure:"min_decryption_version"`
}

// PaymentsConfig tunes the payment core and its processor.
type PaymentsConfig struct {
	// MaxAmount bounds a charge, in minor units of its currency.
	MaxAmount int64 `mapstructure:"max_amount"`
	// ProcessorTimeout bounds one processor call.
	ProcessorTimeout time.Duration `mapstructure:"processor_timeout"`
	// ProcessorRetries repeats a call whose answer was lost (same reference).
	ProcessorRetries int `mapstructure:"processor_retries"`
	// ResolveAfter: pending charges and refunds older than this are
	// completed by the background resolver.
	ResolveAfter time.Duration   `mapstructure:"resolve_after"`
	Simulator    SimulatorConfig `mapstructure:"simulator"`
}

// SimulatorConfig tunes the built-in simulated acquirer.
type SimulatorConfig struct {
	Latency time.Duration `mapstructure:"latency"`
	// FaultPercent of calls (0-100) fail with FaultKind (timeout | error |
	// decline).
	FaultPercent int    `mapstructure:"fault_percent"`
	FaultKind    string `mapstructure:"fault_kind"`
}

func (c *Config) validateVaultPayments(bad func(format string, args ...any)) {
	v := c.Vault
	if v.KEKs == "" && v.KEKFile == "" && !c.DevMode {
		bad("vault.keks or vault.kek_file is required outside dev mode (generate a file with `perfectpay keys rotate-kek`)")
	}
	if v.KEKs != "" {
		if keys, err := vault.ParseKEKs(v.KEKs); err != nil {
			bad("vault.keks: %v", err)
		} else if v.ActiveKEKVersion > 0 && v.KEKFile == "" && keys[v.ActiveKEKVersion] == nil {
			bad("vault.active_kek_version %d is not among vault.keks", v.ActiveKEKVersion)
		}
	}
	if v.ActiveKEKVersion < 0 || v.MinDecryptionVersion < 0 {
		bad("vault.active_kek_version and vault.min_decryption_version must not be negative")
	}
	if v.ActiveKEKVersion > 0 && v.MinDecryptionVersion > v.ActiveKEKVersion {
		bad("vault.min_decryption_version must not exceed vault.active_kek_version")
	}
	p := c.Payments
	if p.MaxAmount < 1 || p.MaxAmount > money.MaxAmount {
		bad("payments.max_amount must be between 1 and %d minor units", money.MaxAmount)
	}
	if p.ProcessorTimeout <= 0 {
		bad("payments.processor_timeout must be positive")
	}
	if p.ProcessorRetries < 0 || p.ProcessorRetries > 10 {
		bad("payments.processor_retries must be between 0 and 10")
	}
	if p.ResolveAfter <= p.ProcessorTimeout*time.Duration(p.ProcessorRetries+1) {
		bad("payments.resolve_after must exceed processor_timeout × (processor_retries+1), or the resolver races live requests")
	}
	s := p.Simulator
	if s.Latency < 0 || s.FaultPercent < 0 || s.FaultPercent > 100 {
		bad("payments.simulator.latency must not be negative and fault_percent must be 0-100")
	}
	if s.FaultKind != "timeout" && s.FaultKind != "error" && s.FaultKind != "decline" {
		bad("payments.simulator.fault_kind must be timeout, error or decline (got %q)", s.FaultKind)
	}
}

package app

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"log/slog"

	"github.com/perfectpay/perfectpay/internal/egress"
	"github.com/perfectpay/perfectpay/server"
	"github.com/perfectpay/perfectpay/store"
	"github.com/perfectpay/perfectpay/store/repos"
	"github.com/perfectpay/perfectpay/webhooks"
)

// devWebhookKey is the fixed dev-mode key sealing webhook signing secrets,
// so that several dev nodes agree. It is public: never use dev mode with
// real data.
var devWebhookKey = sha256.Sum256([]byte("perfectpay dev mode webhook secret key - not secret"))

func webhookKey(cfg Config, log *slog.Logger) []byte {
	if cfg.Webhooks.SecretKey == "" {
		log.Warn("DEV MODE: webhook signing secrets are sealed with the fixed, PUBLIC development key; " +
			"set webhooks.secret_key (base64 of 32 random bytes) before storing any real endpoint")
		return devWebhookKey[:]
	}
	k, _ := base64.StdEncoding.DecodeString(cfg.Webhooks.SecretKey) // validated
	return k
}

// wireWebhooks builds the webhooks service, its HTTP handlers and the
// dispatcher job. Plain-http delivery to loopback follows dev mode.
func wireWebhooks[X repos.Tx](a *App, b store.Backend[X]) ([]server.Mounter, error) {
	cfg := a.Config.Webhooks
	box, err := webhooks.NewSecretBox(webhookKey(a.Config, a.Log))
	if err != nil {
		return nil, err
	}
	allowed, err := cfg.AllowedPrefixes()
	if err != nil {
		return nil, fmt.Errorf("webhooks.allowed_cidrs: %w", err)
	}
	policy := egress.Policy{AllowHTTPLoopback: a.Config.DevMode, Allowed: allowed}
	db := store.Bind(b, func(x X) webhooks.Tx { return x })
	a.Webhooks = webhooks.NewService(db, webhooks.ServiceOptions{
		Policy: policy, Box: box, RotationOverlap: cfg.RotationOverlap, Log: a.Log,
	})
	a.Dispatcher = webhooks.NewDispatcher(db, webhooks.DispatcherOptions{
		Interval: cfg.DispatchInterval, BatchSize: cfg.BatchSize, Concurrency: cfg.Concurrency,
		Timeout: cfg.Timeout, RetrySchedule: cfg.RetrySchedule, DisableAfter: cfg.DisableAfter,
		Client: egress.NewHTTPClient(policy, nil, cfg.Timeout, nil), Box: box, Log: a.Log,
	})
	return []server.Mounter{server.NewWebhookHandlers(a.Webhooks), server.NewEventHandlers(a.Webhooks)}, nil
}

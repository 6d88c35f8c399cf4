package app

import (
	"context"
	"encoding/base64"
	"fmt"
	"slices"
	"time"

	"github.com/perfectpay/perfectpay/internal/canary"
	"github.com/perfectpay/perfectpay/store"
	"github.com/perfectpay/perfectpay/store/repos"
	"github.com/perfectpay/perfectpay/vault"
)

// configuredSecrets lists the server-wide secrets the configuration sets
// (dev mode's generated or public stand-ins have no canary: they change
// or mean nothing).
func configuredSecrets(cfg Config) ([]canary.Secret, error) {
	var out []canary.Secret
	add := func(name, b64 string, kind canary.Kind, guards string) {
		if b64 == "" {
			return
		}
		k, _ := base64.StdEncoding.DecodeString(b64) // validated
		out = append(out, canary.Secret{Name: name, Key: k, Kind: kind, Guards: guards})
	}
	add("secrets.hmac_key", cfg.Secrets.HMACKey, canary.MAC,
		"API keys are stored as HMACs under it: with another key every API key answers invalid_api_key")
	add("issuer.signing_kek", cfg.Issuer.SigningKEK, canary.AEAD,
		"it seals the access token signing keys: with another one no token can be signed or checked")
	add("webhooks.secret_key", cfg.Webhooks.SecretKey, canary.AEAD,
		"it seals the webhook endpoints' signing secrets: with another one no webhook can be signed")
	keks := map[int][]byte{}
	if cfg.Vault.KEKs != "" {
		k, err := vault.ParseKEKs(cfg.Vault.KEKs)
		if err != nil {
			return nil, fmt.Errorf("vault.keks: %w", err)
		}
		keks = k
	}
	if cfg.Vault.KEKFile != "" {
		k, err := vault.ReadKEKFile(cfg.Vault.KEKFile)
		if err != nil {
			return nil, fmt.Errorf("vault.kek_file: %w", err)
		}
		for v, key := range k {
			keks[v] = key
		}
	}
	versions := make([]int, 0, len(keks))
	for v := range keks {
		versions = append(versions, v)
	}
	slices.Sort(versions)
	for _, v := range versions {
		out = append(out, canary.Secret{Name: fmt.Sprintf("vault KEK version %d", v), Key: keks[v], Kind: canary.AEAD,
			Guards: "it wraps the card vault's tenant keys: with another one no card stored under it decrypts"})
	}
	return out, nil
}

// checkSecrets refuses to start a node whose secrets cannot open the
// canaries this database holds (writing them at first start).
func checkSecrets[X repos.Tx](a *App, b store.Backend[X]) error {
	secrets, err := configuredSecrets(a.Config)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return canary.Check(ctx, store.Bind(b, func(x X) canary.Tx { return x }), secrets, time.Now())
}

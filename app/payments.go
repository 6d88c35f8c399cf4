package app

import (
	"fmt"

	"github.com/perfectpay/perfectpay/payments"
	"github.com/perfectpay/perfectpay/server"
	"github.com/perfectpay/perfectpay/store"
	"github.com/perfectpay/perfectpay/store/repos"
	"github.com/perfectpay/perfectpay/vault"
)

// LoadKeyring builds the vault's KEKs from vault.keks and vault.kek_file
// (both may be set; a version in both must hold the same key). With
// neither, dev mode generates a random KEK for this process and says so
// loudly: cards it stores become unreadable when the process stops.
func (a *App) loadKeyring() (*vault.Keyring, error) {
	return LoadKeyring(a.Config, func(msg string) { a.Log.Warn(msg) })
}

// LoadKeyring is the keyring the configuration describes (see loadKeyring);
// warn receives the dev-mode warning. The CLI uses it for `keys rewrap`.
func LoadKeyring(cfg Config, warn func(string)) (*vault.Keyring, error) {
	v := cfg.Vault
	keys := map[int][]byte{}
	if v.KEKs != "" {
		k, err := vault.ParseKEKs(v.KEKs)
		if err != nil {
			return nil, fmt.Errorf("vault.keks: %w", err)
		}
		keys = k
	}
	if v.KEKFile != "" {
		k, err := vault.ReadKEKFile(v.KEKFile)
		if err != nil {
			return nil, fmt.Errorf("vault.kek_file: %w", err)
		}
		for ver, key := range k {
			if old, ok := keys[ver]; ok && string(old) != string(key) {
				return nil, fmt.Errorf("KEK version %d differs between vault.keks and vault.kek_file", ver)
			}
			keys[ver] = key
		}
	}
	if len(keys) == 0 {
		if !cfg.DevMode {
			return nil, fmt.Errorf("no KEK configured: set vault.keks or vault.kek_file")
		}
		warn("DEV MODE: NO VAULT KEK CONFIGURED. A random key-encryption key was generated for this process only: " +
			"every card tokenized now becomes UNREADABLE when the process stops, and other nodes cannot read it. " +
			"Never use dev mode with real cards; set vault.keks or vault.kek_file (see `perfectpay keys rotate-kek`).")
		keys[1] = vault.GenerateKey()
	}
	return vault.NewKeyring(keys, v.ActiveKEKVersion, v.MinDecryptionVersion)
}

// wirePayments builds the vault, the simulated acquirer and the payment
// core, and the vault's HTTP handlers. The charge endpoints and the
// resolver are wired with the charging service (wirePipeline), which owns
// the transactions of every capture, void and refund.
func wirePayments[X repos.Tx](a *App, b store.Backend[X]) ([]server.Mounter, error) {
	cfg := a.Config.Payments
	kr, err := a.loadKeyring()
	if err != nil {
		return nil, err
	}
	a.Simulator = payments.NewSimulated(payments.SimulatedConfig{
		Latency: cfg.Simulator.Latency, FaultPercent: cfg.Simulator.FaultPercent, FaultKind: cfg.Simulator.FaultKind,
	}, store.Bind(b, func(x X) payments.AcquirerRepo { return x }))
	a.Vault = vault.NewService(store.Bind(b, func(x X) vault.Tx { return x }), kr, payments.CardVerifier(a.Simulator, cfg.ProcessorTimeout), a.Log)
	a.Payments = payments.NewService(store.Bind(b, func(x X) payments.Tx { return x }), a.Vault, a.Simulator, payments.Config{
		MaxAmount: cfg.MaxAmount, Timeout: cfg.ProcessorTimeout, Retries: cfg.ProcessorRetries, ResolveAfter: cfg.ResolveAfter,
	}, a.Log)
	return []server.Mounter{server.NewVaultHandlers(a.Vault)}, nil
}

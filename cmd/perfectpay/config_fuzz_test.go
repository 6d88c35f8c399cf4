package main

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzLoadConfig: the configuration file is outside input too (an
// operator's YAML, possibly hand-edited). Reading and validating any file
// returns a config or an error, never a panic; a config that validates
// still validates after a second load of the same file (no state leaks
// between loads).
func FuzzLoadConfig(f *testing.F) {
	if seed, err := os.ReadFile(filepath.Join("..", "..", "config.yaml")); err == nil {
		f.Add(seed)
	}
	for _, s := range []string{
		"server:\n  addr: 127.0.0.1:8080\n",
		"store:\n  driver: postgres\n  database_url: postgres://x@127.0.0.1/db\n",
		"issuer:\n  access_token_ttl: -5m\n  max_delegation_depth: 99999999999999999999\n",
		"webhooks:\n  allow_private_networks: [\"10.0.0.0/8\", \"::1/300\"]\n",
		"vault:\n  keks: {a: b}\n",
		"server: [1, 2\n",
		"&a [*a]\n",
		"? [a]\n: b\n",
		"abuse:\n  trusted_proxies: [\"999.1.1.1/33\"]\n",
		"",
		"\x00\xff",
	} {
		f.Add([]byte(s))
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, raw []byte) {
		path := filepath.Join(dir, "config.yaml")
		if err := os.WriteFile(path, raw, 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, _, err := loadConfig(path)
		if err != nil {
			return
		}
		if cfg.Validate() != nil {
			return
		}
		cfg2, _, err := loadConfig(path)
		if err != nil {
			t.Fatalf("the second load of a valid config failed: %v", err)
		}
		if err := cfg2.Validate(); err != nil {
			t.Fatalf("a config that validated once no longer validates: %v", err)
		}
	})
}

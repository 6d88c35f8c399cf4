package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/app"
)

func testKey(t *testing.T) string {
	b := make([]byte, 32)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return base64.StdEncoding.EncodeToString(b)
}

// certFiles writes a self-signed certificate and its key.
func certFiles(t *testing.T) (string, string) {
	dir := t.TempDir()
	cert, priv := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writeCert(t, cert, priv, 1)
	return cert, priv
}

// writeCert writes a self-signed certificate of serial to cert and its key
// to priv.
func writeCert(t *testing.T, cert, priv string, serial int64) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "pay.example"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), DNSNames: []string{"pay.example"}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	kb, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	require.NoError(t, os.WriteFile(priv, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600))
}

func productionConfig(t *testing.T) app.Config {
	cfg := app.Defaults()
	cfg.Store.Driver = "postgres"
	cfg.Store.Postgres.URL = "postgres://pay@db.internal/pay"
	cfg.Secrets.HMACKey, cfg.Issuer.SigningKEK, cfg.Webhooks.SecretKey = testKey(t), testKey(t), testKey(t)
	cfg.Vault.KEKs = "1:" + testKey(t)
	cfg.Server.Addr = "0.0.0.0:8443"
	cfg.Server.TLSCert, cfg.Server.TLSKey = certFiles(t)
	cfg.Server.PublicURL = "https://pay.example"
	cfg.Server.MetricsAddr = "127.0.0.1:9090"
	cfg.Log.Level, cfg.Log.Format = "info", "json"
	cfg.Abuse.Enabled = true
	return cfg
}

// TestDoctor: a production configuration passes; each flaw is named, all
// at once.
func TestDoctor(t *testing.T) {
	good := productionConfig(t)
	require.Empty(t, Diagnose(good))

	cfg := productionConfig(t)
	cfg.DevMode = true
	cfg.Secrets.HMACKey = base64.StdEncoding.EncodeToString([]byte(strings.Repeat("\x07", 32)))
	cfg.Issuer.SigningKEK = ""
	cfg.Vault.KEKs = "1:" + base64.StdEncoding.EncodeToString([]byte(strings.Repeat("\x0d", 32)))
	cfg.Server.TLSCert, cfg.Server.TLSKey = "", ""
	cfg.Server.PublicURL = "http://pay.example"
	cfg.Audit.Retention = 30 * 24 * time.Hour
	cfg.Retention.Decisions = 90 * 24 * time.Hour
	cfg.Retention.CardTokens = 30 * 24 * time.Hour
	cfg.Retention.Charges = 60 * 24 * time.Hour
	cfg.Retention.LoginMarks = 24 * time.Hour
	cfg.Webhooks.AllowedCIDRs = []string{"10.0.0.0/8", "203.0.113.0/24"}
	cfg.Log.Level = "debug"
	cfg.Server.MetricsAddr = "0.0.0.0:9090"
	cfg.Abuse.Enabled = false
	cfg.Store.Driver = "memory"
	problems := strings.Join(Diagnose(cfg), "\n")
	for _, want := range []string{
		"dev_mode is on", "secrets.hmac_key looks like a test key", "issuer.signing_kek is not set",
		"vault.keks holds a key that looks like a test key", "TLS is off", "server.public_url \"http://pay.example\" is not https",
		"audit.retention 720h0m0s is below", "retention.decisions 2160h0m0s is below the 12960h0m0s policy", "retention.card_tokens 720h0m0s is below", "retention.charges 1440h0m0s is below", "retention.login_marks 24h0m0s is below", "private range 10.0.0.0/8", "log.level is debug",
		"/metrics listens on \"0.0.0.0:9090\"", "abuse.enabled is off", "store.driver is \"memory\"",
	} {
		assert.Contains(t, problems, want)
	}
	assert.NotContains(t, problems, "203.0.113.0/24")

	cfg = productionConfig(t)
	require.NoError(t, os.WriteFile(cfg.Server.TLSCert, []byte("not a certificate"), 0o600))
	cfg.Server.MetricsAddr = ""
	problems = strings.Join(Diagnose(cfg), "\n")
	assert.Contains(t, problems, "server.tls_cert and server.tls_key do not load")
	assert.Contains(t, problems, "/metrics is served on the API listener without protection")

	// The command exits non-zero listing them.
	t.Setenv("PERFECTPAY_DEV_MODE", "true")
	out, err := run(t, "doctor")
	require.Error(t, err, out)
	assert.Contains(t, out, "problem: dev_mode is on")
}

package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/app/apptest"
)

// TestDemo runs the whole story against an in-process dev node with the
// demo tenant and merchants, so `make test` proves the demo keeps working.
func TestDemo(t *testing.T) {
	n := apptest.New(t, "memory")
	demo, err := n.App.SeedDemo(context.Background())
	require.NoError(t, err)
	var out bytes.Buffer
	err = Run(context.Background(), Config{
		URL:            n.URL,
		SecretKey:      apptest.Key(demo.Tenant, "secret", "test"),
		PublishableKey: apptest.Key(demo.Tenant, "publishable", "test"),
	}, &out)
	story := out.String()
	require.NoError(t, err, "the story so far:\n%s", story)
	if testing.Verbose() {
		t.Logf("the story:\n%s", story)
	}
	for _, want := range []string{
		"exceeds the per-charge cap of 50.00 USD",
		"above the approval threshold",
		"is not among the allowed merchants",
		"permission_error mandate_revoked",
		"verifies against /.well-known/jwks.json",
		"The end: every step behaved as the story says.",
	} {
		assert.Contains(t, story, want)
	}
	assert.NotContains(t, story, "4242424242424242", "the card number never appears after tokenization")
}

// TestDemoFailsLoudly: against a server that is not in dev mode (no demo
// merchants) the demo stops at the step that went wrong, non-zero.
func TestDemoFailsLoudly(t *testing.T) {
	n := apptest.New(t, "memory")
	_, key := n.Tenant(t)
	var stdout, stderr bytes.Buffer
	code := run([]string{"--url", n.URL, "--key", key}, &stdout, &stderr)
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr.String(), "DEMO FAILED at step 3 (Find the shops)")
}

func TestDemoKeys(t *testing.T) {
	out := strings.Join([]string{
		"──────────────────────────────────────────────────────────────",
		" PerfectPay dev mode: demo tenant ten_1 (keys shown once)",
		"   secret       test  sk_test_AbC123",
		"   publishable  test  pk_test_XyZ789",
		"   secret       live  sk_live_Nope",
		" try: curl -u sk_test_AbC123: http://127.0.0.1:8080/v1/tenant",
	}, "\n")
	sk, pk := DemoKeys(out)
	assert.Equal(t, "sk_test_AbC123", sk)
	assert.Equal(t, "pk_test_XyZ789", pk)
}

// TestDemoPerson runs the story with its human-present part, the payer
// played by the demo itself (--person --auto).
func TestDemoPerson(t *testing.T) {
	n := apptest.New(t, "memory")
	demo, err := n.App.SeedDemo(context.Background())
	require.NoError(t, err)
	var out bytes.Buffer
	err = Run(context.Background(), Config{
		URL:       n.URL,
		SecretKey: apptest.Key(demo.Tenant, "secret", "test"),
		Person:    "auto",
	}, &out)
	story := out.String()
	require.NoError(t, err, "the story so far:\n%s", story)
	for _, want := range []string{
		"the consent page says: Shopping Agent may spend up to 200.00 USD in total.",
		"Pat allowed it with a one-time code",
		"iss=",
		"the same code again: invalid_grant",
		"token_revoked",
		"on the mandate Pat granted",
		"The end: every step behaved as the story says.",
	} {
		assert.Contains(t, story, want)
	}
}

package main

import (
	"bytes"
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/app/apptest"
)

// TestExample runs the example against an in-process dev node with the
// demo tenant and shops, so the example keeps working.
func TestExample(t *testing.T) {
	n := apptest.New(t, "memory")
	demo, err := n.App.SeedDemo(context.Background())
	require.NoError(t, err)
	var out bytes.Buffer
	err = Run(context.Background(), Config{URL: n.URL, SecretKey: apptest.Key(demo.Tenant, "secret", "test"),
		PublishableKey: apptest.Key(demo.Tenant, "publishable", "test")}, &out)
	require.NoError(t, err, "so far:\n%s", out.String())
	story := out.String()
	for _, want := range []string{"401, resource_metadata=", "pay → Paid 19.99 USD to Acme Books", "does not allow this purchase", "is revoked", "The end"} {
		assert.Contains(t, story, want)
	}
	assert.NotContains(t, story, "4242424242424242")
}

package main

import (
	"net"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestServeTakenPortFailsBeforePrinting: serve --dev on a port another
// socket holds fails with a clear message, and prints nothing first (the
// demo keys banner used to come out before "bind: address already in use").
func TestServeTakenPortFailsBeforePrinting(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	addr := ln.Addr().String()
	out, err := run(t, "serve", "--dev", "--addr", addr)
	require.Error(t, err)
	assert.Empty(t, out, "nothing is printed before the listen fails")
	assert.Contains(t, err.Error(), "cannot listen on "+addr)
	assert.Contains(t, err.Error(), "already in use")
	assert.NotContains(t, err.Error(), "sk_test_")
}

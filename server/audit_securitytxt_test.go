package server_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/app/apptest"
)

// TestSecurityTxt: RFC 9116's required fields, an expiry under a year.
func TestSecurityTxt(t *testing.T) {
	n := apptest.New(t, "memory")
	r := n.Do(t, apptest.Req{Method: "GET", Path: "/.well-known/security.txt"})
	require.Equal(t, 200, r.Status, string(r.Body))
	assert.True(t, strings.HasPrefix(r.Header.Get("Content-Type"), "text/plain"))
	body := string(r.Body)
	assert.Contains(t, body, "Contact: mailto:security@")
	assert.Contains(t, body, "Canonical: ")
	var expires time.Time
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, "Expires: "); ok {
			var err error
			expires, err = time.Parse(time.RFC3339, v)
			require.NoError(t, err)
		}
	}
	require.False(t, expires.IsZero())
	assert.True(t, expires.After(time.Now()))
	assert.True(t, expires.Before(time.Now().AddDate(1, 0, 0)))
}

package main

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/app/apptest"
)

func serial(t *testing.T, c *tls.Certificate) int64 {
	leaf, err := x509.ParseCertificate(c.Certificate[0])
	require.NoError(t, err)
	return leaf.SerialNumber.Int64()
}

// TestCertReload: a renewed certificate is served without a restart; a
// renewal that does not load keeps the previous certificate.
func TestCertReload(t *testing.T) {
	cert, key := certFiles(t)
	r, err := newCertReloader(cert, key, apptest.Quiet())
	require.NoError(t, err)
	clock := time.Now()
	r.now = func() time.Time { return clock }
	c, err := r.GetCertificate(nil)
	require.NoError(t, err)
	assert.EqualValues(t, 1, serial(t, c))

	touch := func(at time.Time) {
		require.NoError(t, os.Chtimes(cert, at, at))
		require.NoError(t, os.Chtimes(key, at, at))
	}
	writeCert(t, cert, key, 2)
	touch(clock.Add(time.Minute))
	c, _ = r.GetCertificate(nil)
	assert.EqualValues(t, 1, serial(t, c), "looked at most once a second")
	clock = clock.Add(2 * time.Second)
	c, _ = r.GetCertificate(nil)
	assert.EqualValues(t, 2, serial(t, c), "the renewed certificate")

	require.NoError(t, os.WriteFile(cert, []byte("half written"), 0o600))
	touch(clock.Add(2 * time.Minute))
	clock = clock.Add(2 * time.Second)
	c, _ = r.GetCertificate(nil)
	assert.EqualValues(t, 2, serial(t, c), "a pair that does not load keeps the previous one")

	_, err = newCertReloader(cert, key, apptest.Quiet())
	assert.Error(t, err, "the first load must succeed")
}

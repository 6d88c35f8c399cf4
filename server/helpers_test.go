package server_test

import (
	"encoding/base64"

	"github.com/perfectpay/perfectpay/app/apptest"
	"github.com/perfectpay/perfectpay/server"
)

// hashOf is the request hash a test node's idempotency records keep.
func hashOf(method, path, body string) []byte {
	key, _ := base64.StdEncoding.DecodeString(apptest.Config("memory", "").Secrets.HMACKey)
	return server.RequestHash(key, method, path, []byte(body))
}

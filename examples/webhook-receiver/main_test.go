package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/webhooks"
	"github.com/perfectpay/perfectpay/webhooks/verify"
)

func TestReceiver(t *testing.T) {
	secret, err := webhooks.NewSecret()
	require.NoError(t, err)
	key, _ := webhooks.DecodeSecret(secret)
	v, err := verify.New(secret)
	require.NoError(t, err)
	var handled []Event
	rc := &Receiver{V: v, Handle: func(e Event) { handled = append(handled, e) }}
	body := []byte(`{"id":"evt_1","object":"event","type":"charge.succeeded","created":"2026-01-01T00:00:00Z","data":{"object":{}}}`)
	send := func(sign [][]byte, b []byte) int {
		r := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(b))
		webhooks.SignHeaders(r.Header, sign, "evt_1", time.Now(), body)
		w := httptest.NewRecorder()
		rc.ServeHTTP(w, r)
		return w.Code
	}
	assert.Equal(t, 204, send([][]byte{key}, body))
	assert.Equal(t, 204, send([][]byte{key}, body), "a resend is acknowledged")
	require.Len(t, handled, 1, "and handled once")
	assert.Equal(t, "charge.succeeded", handled[0].Type)
	other, _ := webhooks.NewSecret()
	okey, _ := webhooks.DecodeSecret(other)
	assert.Equal(t, 400, send([][]byte{okey}, body))
	assert.Equal(t, 400, send([][]byte{key}, append(body, ' ')))
}

package verify_test

import (
	"net/http"
	"strconv"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/webhooks"
	"github.com/perfectpay/perfectpay/webhooks/verify"
)

// The spec's own example: secret, id, timestamp, payload and signature.
const (
	specSecret    = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	specID        = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	specTimestamp = 1614265330
	specPayload   = `{"test": 2432232314}`
	specSignature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

func headers(id string, ts int64, sig string) http.Header {
	h := http.Header{}
	h.Set("webhook-id", id)
	h.Set("webhook-timestamp", strconv.FormatInt(ts, 10))
	h.Set("webhook-signature", sig)
	return h
}

func at(ts int64) func() time.Time { return func() time.Time { return time.Unix(ts, 0) } }

func TestSpecExampleVector(t *testing.T) {
	key, err := webhooks.DecodeSecret(specSecret)
	require.NoError(t, err)
	assert.Equal(t, specSignature, webhooks.Sign(key, specID, time.Unix(specTimestamp, 0), []byte(specPayload)))
	v, err := verify.New(specSecret)
	require.NoError(t, err)
	v.Now = at(specTimestamp)
	require.NoError(t, v.Verify([]byte(specPayload), headers(specID, specTimestamp, specSignature)))
}

func TestVerify(t *testing.T) {
	secret, err := webhooks.NewSecret()
	require.NoError(t, err)
	other, err := webhooks.NewSecret()
	require.NoError(t, err)
	key, _ := webhooks.DecodeSecret(secret)
	otherKey, _ := webhooks.DecodeSecret(other)
	const now = 1_800_000_000
	body := []byte(`{"id":"evt_1","type":"charge.succeeded"}`)
	good := webhooks.Sign(key, "evt_1", time.Unix(now, 0), body)
	bad := webhooks.Sign(otherKey, "evt_1", time.Unix(now, 0), body)

	v, err := verify.New(secret)
	require.NoError(t, err)
	v.Now = at(now)
	cases := []struct {
		name string
		body []byte
		h    http.Header
		want error
	}{
		{"valid", body, headers("evt_1", now, good), nil},
		{"one of several signatures", body, headers("evt_1", now, bad+" v2,xyz "+good), nil},
		{"wrong secret", body, headers("evt_1", now, bad), verify.ErrNoMatchingSignature},
		{"body changed", []byte(`{"id":"evt_1","type":"charge.failed"}`), headers("evt_1", now, good), verify.ErrNoMatchingSignature},
		{"id changed", body, headers("evt_2", now, good), verify.ErrNoMatchingSignature},
		{"not v1", body, headers("evt_1", now, "v1a,"+good[3:]), verify.ErrNoMatchingSignature},
		{"garbage signature", body, headers("evt_1", now, "v1,!!!"), verify.ErrNoMatchingSignature},
		{"missing headers", body, http.Header{}, verify.ErrMissingHeaders},
		{"bad timestamp", body, func() http.Header { h := headers("evt_1", now, good); h.Set("webhook-timestamp", "soon"); return h }(), verify.ErrInvalidTimestamp},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := v.Verify(tc.body, tc.h)
			if tc.want == nil {
				require.NoError(t, err)
			} else {
				require.ErrorIs(t, err, tc.want)
			}
		})
	}

	t.Run("tolerance is 5 minutes either way", func(t *testing.T) {
		for _, d := range []int64{-300, 300} {
			s := webhooks.Sign(key, "evt_1", time.Unix(now+d, 0), body)
			require.NoError(t, v.Verify(body, headers("evt_1", now+d, s)), d)
		}
		s := webhooks.Sign(key, "evt_1", time.Unix(now-301, 0), body)
		require.ErrorIs(t, v.Verify(body, headers("evt_1", now-301, s)), verify.ErrTooOld)
		s = webhooks.Sign(key, "evt_1", time.Unix(now+301, 0), body)
		require.ErrorIs(t, v.Verify(body, headers("evt_1", now+301, s)), verify.ErrTooNew)
	})
	t.Run("several receiver secrets", func(t *testing.T) {
		both, err := verify.New(other, secret)
		require.NoError(t, err)
		both.Now = at(now)
		require.NoError(t, both.Verify(body, headers("evt_1", now, good)))
	})
	t.Run("bad secrets", func(t *testing.T) {
		_, err := verify.New()
		require.Error(t, err)
		_, err = verify.New("whsec_not base64!")
		require.Error(t, err)
	})
}

// TestInteropWithReference checks our signatures with the Standard
// Webhooks reference Go library, and its signatures with our verifier.
func TestInteropWithReference(t *testing.T) {
	for range 20 {
		secret, err := webhooks.NewSecret()
		require.NoError(t, err)
		key, err := webhooks.DecodeSecret(secret)
		require.NoError(t, err)
		ref, err := standardwebhooks.NewWebhook(secret)
		require.NoError(t, err)
		ts := time.Now()
		body := []byte(`{"id":"evt_x","object":"event","type":"charge.succeeded","data":{"object":{"amount":1234,"note":"ünïcödé \u2028"}}}`)

		// Ours → reference.
		h := http.Header{}
		webhooks.SignHeaders(h, [][]byte{key}, "evt_x", ts, body)
		require.NoError(t, ref.Verify(body, h), "the reference library accepts our signature")
		// With a second (rotated-out) secret first, the reference still finds ours.
		oldSecret, _ := webhooks.NewSecret()
		oldKey, _ := webhooks.DecodeSecret(oldSecret)
		h2 := http.Header{}
		webhooks.SignHeaders(h2, [][]byte{oldKey, key}, "evt_x", ts, body)
		require.NoError(t, ref.Verify(body, h2), "several signatures")
		require.Error(t, ref.Verify(append(body, ' '), h), "and rejects a changed body")

		// Reference → ours.
		sig, err := ref.Sign("msg_ref", ts, body)
		require.NoError(t, err)
		rh := http.Header{}
		rh.Set(standardwebhooks.HeaderWebhookID, "msg_ref")
		rh.Set(standardwebhooks.HeaderWebhookTimestamp, strconv.FormatInt(ts.Unix(), 10))
		rh.Set(standardwebhooks.HeaderWebhookSignature, sig)
		v, err := verify.New(secret)
		require.NoError(t, err)
		require.NoError(t, v.Verify(body, rh), "our verifier accepts the reference signature")
		assert.Equal(t, sig, webhooks.Sign(key, "msg_ref", ts, body), "byte-identical signatures")
		other, _ := verify.New(oldSecret)
		require.ErrorIs(t, other.Verify(body, rh), verify.ErrNoMatchingSignature)
	}
}

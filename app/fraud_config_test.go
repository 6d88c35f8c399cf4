package app_test

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/perfectpay/perfectpay/app"
)

// A fraud vendor's URL is checked as a webhook endpoint's is: https, and
// not a private, loopback or metadata address unless allowed; the merchant
// mix is a likelihood below 1.
func TestFraudConfigRefusesVendorURLsTheEgressGuardRefuses(t *testing.T) {
	for _, tc := range []struct {
		url, want string
	}{
		{"http://kount.example", "fraud.kount.url: the URL must use https"},
		{"https://10.0.0.5", "fraud.kount.url: webhooks: destination refused: 10.0.0.5 is a private address"},
		{"https://169.254.169.254", "cloud metadata address"},
	} {
		cfg := app.Defaults()
		cfg.Fraud.Screener, cfg.Fraud.Kount.URL, cfg.Fraud.Kount.Key = "kount", tc.url, "k"
		err := cfg.Validate()
		if assert.Error(t, err, tc.url) {
			assert.Contains(t, err.Error(), tc.want)
		}
	}
	cfg := app.Defaults()
	cfg.Fraud.Screener, cfg.Fraud.Kount.URL, cfg.Fraud.Kount.Key = "kount", "https://api.kount.example", "k"
	cfg.Fraud.Anomaly.MerchantMix = 1.5
	err := cfg.Validate()
	if assert.Error(t, err) {
		assert.Contains(t, err.Error(), "fraud.anomaly.merchant_mix")
		assert.NotContains(t, err.Error(), "fraud.kount.url")
	}
}

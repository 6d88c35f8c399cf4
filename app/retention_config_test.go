package app_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/app"
	"github.com/perfectpay/perfectpay/audit"
)

// TestAuditRetentionFloor: the configuration refuses an audit retention
// under a year (the doctor is not the only guard); 0 keeps entries forever.
func TestAuditRetentionFloor(t *testing.T) {
	for _, tc := range []struct {
		name string
		keep time.Duration
		ok   bool
	}{
		{"the default", audit.RetentionFloor, true},
		{"forever", 0, true},
		{"longer", 2 * audit.RetentionFloor, true},
		{"a month", 30 * 24 * time.Hour, false},
		{"a day short", audit.RetentionFloor - 24*time.Hour, false},
		{"negative", -time.Hour, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := app.Defaults()
			cfg.DevMode = true // no secrets needed to judge the rest
			cfg.Audit.Retention = tc.keep
			err := cfg.Validate()
			if tc.ok {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), "audit.retention")
			assert.Contains(t, err.Error(), "floor")
		})
	}
}

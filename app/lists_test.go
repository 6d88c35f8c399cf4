package app_test

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/app/apptest"
	"github.com/perfectpay/perfectpay/internal/apierr"
	"github.com/perfectpay/perfectpay/internal/page"
	"github.com/perfectpay/perfectpay/mandates"
	"github.com/perfectpay/perfectpay/payments"
	"github.com/perfectpay/perfectpay/store"
	"github.com/perfectpay/perfectpay/webhooks"
)

// TestListsRefuseBadLimit: every domain's list refuses a limit outside
// 1..100 with the same answer naming limit — none clamps it or answers in
// its own words — on both stores.
func TestListsRefuseBadLimit(t *testing.T) {
	apptest.EachDriver(t, func(t *testing.T, driver string) {
		n := apptest.New(t, driver)
		b, _ := n.Tenant(t)
		ctx := context.Background()
		tenant := b.Tenant.ID
		lists := map[string]func(limit int) error{
			"agents": func(limit int) error {
				_, _, err := n.App.Issuer.ListAgents(ctx, tenant, page.Page{Limit: limit})
				return err
			},
			"charges": func(limit int) error {
				_, _, err := n.App.Payments.List(ctx, payments.Owner{TenantID: tenant}, page.Page{Limit: limit})
				return err
			},
			"merchant charges": func(limit int) error {
				_, _, err := n.App.Payments.ListForMerchant(ctx, "acct_missing", false, page.Page{Limit: limit})
				return err
			},
			"events": func(limit int) error {
				_, _, err := n.App.Webhooks.ListEvents(ctx, webhooks.EventFilter{TenantID: tenant, Limit: limit})
				return err
			},
			"attempts": func(limit int) error {
				_, _, err := n.App.Webhooks.ListAttempts(ctx, webhooks.AttemptFilter{TenantID: tenant, Limit: limit})
				return err
			},
			"mandates": func(limit int) error {
				_, _, err := n.App.Mandates.List(ctx, mandates.Filter{TenantID: tenant, Limit: limit})
				return err
			},
			"mandate events": func(limit int) error {
				_, _, err := n.App.Mandates.Events(ctx, mandates.EventFilter{TenantID: tenant, MandateID: "mdt_missing", Limit: limit})
				return err
			},
			"merchants": func(limit int) error {
				_, _, err := n.App.Merchants.List(ctx, tenant, page.Page{Limit: limit})
				return err
			},
		}
		want := apierr.Invalid{Param: "limit", Code: apierr.ParameterInvalid, Message: "limit must be an integer between 1 and 100."}
		for name, list := range lists {
			t.Run(name, func(t *testing.T) {
				for _, limit := range []int{0, -1, 101} {
					err := list(limit)
					var inv *apierr.Invalid
					require.True(t, errors.As(err, &inv), "limit %d: got %v", limit, err)
					assert.Equal(t, want, *inv, "limit %d", limit)
				}
				for _, limit := range []int{1, 100} {
					// A good limit passes (a missing mandate is another matter).
					if err := list(limit); !errors.Is(err, store.ErrNotFound) {
						require.NoError(t, err, "limit %d", limit)
					}
				}
			})
		}
	})
}

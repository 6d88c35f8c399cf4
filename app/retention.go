package app

import (
	"context"

	"github.com/perfectpay/perfectpay/retention"
	"github.com/perfectpay/perfectpay/store"
	"github.com/perfectpay/perfectpay/store/repos"
)

// wireRetention adds the retention sweep to the node's jobs. Every node
// runs it; the store hands each expired row to one sweep. It also sweeps
// expired idempotency records, in audited batches like every class.
func wireRetention[X repos.Tx](a *App, b store.Backend[X]) {
	cfg := a.Config.Retention
	a.Retention = retention.New(store.Bind(b, func(x X) retention.Repo { return x }),
		retention.Policy{Decisions: cfg.Decisions, Sessions: a.Config.People.SessionAbsolute, CardTokens: cfg.CardTokens, Charges: cfg.Charges, LoginMarks: cfg.LoginMarks,
			Idempotency: true}, a.Log)
	a.jobs = append(a.jobs, func(ctx context.Context) { a.Retention.Run(ctx, cfg.Interval) })
}

package app

import (
	"context"
	"strings"

	"github.com/perfectpay/perfectpay/charging"
	"github.com/perfectpay/perfectpay/policies"
	"github.com/perfectpay/perfectpay/server"
	"github.com/perfectpay/perfectpay/store"
)

// wirePipeline builds the OPA engine and the agent charge pipeline on the
// payment core, registers the payment_mandate authorization details type
// with the issuer, and returns the approval endpoints. The charge endpoints
// and the payment resolver move onto the pipeline's engine, whose hooks keep
// mandate budgets in step with captures, voids and refunds.
func wirePipeline[X backendTx](ctx context.Context, a *App, b store.Backend[X], charges *server.ChargeHandlers) (server.Mounter, error) {
	cfg := a.Config.Pipeline
	eng, err := policies.New(ctx, policies.Velocity{
		AgentChargesPerHour: cfg.AgentChargesPerHour, AgentDeclinesPerHour: cfg.AgentDeclinesPerHour,
		MandateChargesPerHour: cfg.MandateChargesPerHour, MandateDeclinesPerHour: cfg.MandateDeclinesPerHour,
	})
	if err != nil {
		return nil, err
	}
	public := a.Config.Server.PublicURL
	if public == "" {
		public = "http://" + a.Config.Server.Addr
	}
	a.Pipeline = charging.New(store.Bind(b, func(x X) charging.Tx { return x }), a.Payments, eng, charging.Config{
		ApprovalTTL: cfg.ApprovalTTL, MaxDepth: a.Config.Issuer.MaxDelegationDepth, PublicURL: strings.TrimSuffix(public, "/"),
	}, a.Log)
	a.details.Register("payment_mandate", a.Pipeline.DetailType())
	charges.SetCore(a.Pipeline.Engine())
	charges.Agents = a.Pipeline
	charges.Merchants = a.Merchants
	return &server.ApprovalHandlers{P: a.Pipeline}, nil
}

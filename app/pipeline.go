package app

import (
	"context"
	"strings"

	"github.com/perfectpay/perfectpay/accounts"
	"github.com/perfectpay/perfectpay/charging"
	"github.com/perfectpay/perfectpay/policies"
	"github.com/perfectpay/perfectpay/server"
	"github.com/perfectpay/perfectpay/store"
	"github.com/perfectpay/perfectpay/store/repos"
)

// wirePipeline builds the OPA engine and the agent charge pipeline on the
// payment core, registers the payment_mandate authorization details type
// with the issuer, and returns the charge and approval endpoints. Captures,
// voids, refunds and the resolver run on the pipeline, which keeps mandate
// budgets in step in the same transactions; merchant charges are made and
// read on the plain payment core.
func wirePipeline[X repos.Tx](ctx context.Context, a *App, b store.Backend[X]) ([]server.Mounter, error) {
	cfg := a.Config.Pipeline
	eng, err := policies.NewWith(ctx, policies.Velocity{
		AgentChargesPerHour: cfg.AgentChargesPerHour, AgentDeclinesPerHour: cfg.AgentDeclinesPerHour,
		MandateChargesPerHour: cfg.MandateChargesPerHour, MandateDeclinesPerHour: cfg.MandateDeclinesPerHour,
	}, policies.Evaluator(cfg.PolicyEvaluator))
	if err != nil {
		return nil, err
	}
	public := a.Config.Server.PublicURL
	if public == "" {
		public = "http://" + a.Config.Server.Addr
	}
	a.Pipeline = charging.New(store.Bind(b, func(x X) charging.Tx { return x }), a.Payments, eng, charging.Config{
		ApprovalTTL: cfg.ApprovalTTL, MaxDepth: a.Config.Issuer.MaxDelegationDepth, PublicURL: strings.TrimSuffix(public, "/"),
		GroupMax: cfg.GroupMax,
	}, a.Log)
	a.details.Register("payment_mandate", a.Pipeline.DetailType())
	verifications := accounts.NewVerifications(store.Bind(b, func(x X) accounts.VerificationTx { return x }))
	charges := server.NewChargeHandlers(&server.VerifiedCharges{ChargeCore: a.Payments, Verifications: verifications},
		a.Pipeline, a.Pipeline, a.Merchants)
	// The compliance views read what the pipeline decided.
	compliance, err := wireCompliance(ctx, a, b, verifications)
	if err != nil {
		return nil, err
	}
	return append([]server.Mounter{charges, &server.ApprovalHandlers{P: a.Pipeline}}, compliance...), nil
}

package app

import (
	"context"
	"net/url"

	"github.com/perfectpay/perfectpay/accounts"
	"github.com/perfectpay/perfectpay/compliance"
	"github.com/perfectpay/perfectpay/policies"
	"github.com/perfectpay/perfectpay/server"
	"github.com/perfectpay/perfectpay/store"
	"github.com/perfectpay/perfectpay/store/memory"
	"github.com/perfectpay/perfectpay/store/postgres"
	"github.com/perfectpay/perfectpay/store/repos"
)

// wireCompliance keeps the policy this node decides with (so every
// decision can be replayed with the exact policy that made it) and returns
// the handlers that serve auditors: the audit trail and its checkpoints,
// mandate timelines, evidence bundles and decision replay.
func wireCompliance[X repos.Tx](ctx context.Context, a *App, b store.Backend[X], verifications *accounts.Verifications) ([]server.Mounter, error) {
	svc := compliance.NewService(store.Bind(b, func(x X) compliance.Repo { return x }), a.Log)
	sources, err := policies.Sources()
	if err != nil {
		return nil, err
	}
	if _, err := svc.KeepPolicy(ctx, sources); err != nil {
		return nil, err
	}
	evidence := &compliance.Evidence{
		DB:      store.Bind(b, func(x X) compliance.EvidenceRepo { return x }),
		Charges: a.Payments, Mandates: a.Mandates, Signer: a.Issuer, Audit: a.Audit, IssuerJWKS: a.Issuer.JWKS,
	}
	countries := accounts.NewCountries(store.Bind(b, func(x X) accounts.TenantCountriesTx { return x }))
	return []server.Mounter{
		&server.AuditHandlers{Audit: a.Audit, Replay: svc},
		&server.TimelineHandlers{Timelines: &compliance.Timelines{Mandates: a.Mandates, Audit: a.Audit}},
		&server.EvidenceHandlers{Evidence: evidence, AuditKeys: a.Audit},
		securityTxt(a.Config.IssuerURL()),
		&server.KYBHandlers{Verifications: verifications},
		&server.TenantCountryHandlers{Countries: countries},
		&server.JurisdictionHandlers{Countries: countries},
		&server.ErasureHandlers{Erasure: &compliance.Erasure{DB: store.Bind(b, func(x X) accounts.EraseTx { return x }),
			Mandates: a.Mandates, Tokens: a.Vault}},
	}, nil
}

// securityTxt says where to report a vulnerability: security@ the host
// the server is published at (see SECURITY.md).
func securityTxt(base string) *server.SecurityTxt {
	host := "localhost"
	if u, err := url.Parse(base); err == nil && u.Hostname() != "" {
		host = u.Hostname()
	}
	return &server.SecurityTxt{Contact: "mailto:security@" + host, Canonical: base + server.PathSecurityTxt}
}

// Exporter returns the exporter of audit events, decisions and charges.
func (a *App) Exporter() *compliance.Exporter {
	return &compliance.Exporter{Service: a.Compliance(), Audit: a.Audit, Charges: a.Payments}
}

// Compliance returns the compliance service on the node's store.
func (a *App) Compliance() *compliance.Service {
	if a.Postgres != nil {
		return compliance.NewService(store.Bind(store.Backend[*postgres.Tx](a.Postgres), func(x *postgres.Tx) compliance.Repo { return x }), a.Log)
	}
	return compliance.NewService(store.Bind(store.Backend[*memory.Tx](a.Memory), func(x *memory.Tx) compliance.Repo { return x }), a.Log)
}

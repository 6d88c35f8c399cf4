package app

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/perfectpay/perfectpay/accounts"
	"github.com/perfectpay/perfectpay/audit"
	"github.com/perfectpay/perfectpay/internal/egress"
	"github.com/perfectpay/perfectpay/mandates"
	"github.com/perfectpay/perfectpay/merchants"
	"github.com/perfectpay/perfectpay/server"
	"github.com/perfectpay/perfectpay/store"
	"github.com/perfectpay/perfectpay/store/repos"
)

// mandateExpiryInterval is how often mandates past valid_until are marked
// expired (the policy and the reservation refuse them from the first
// instant anyway; the sweep makes the status and the webhook say so).
const mandateExpiryInterval = time.Minute

// domainRecheckInterval is how often proven merchant domains are looked at
// for a due re-verification (each is re-checked daily, see merchants).
const domainRecheckInterval = 10 * time.Minute

// wireMandates builds the mandates and merchants services and their HTTP
// handlers. The signer (the issuer) signs mandates for GET /v1/mandates/{id}/jws.
func wireMandates[X repos.Tx](a *App, b store.Backend[X], signer mandates.Signer) (mandateAPI, merchantAPI server.Mounter) {
	a.Mandates = mandates.NewService(store.Bind(b, func(x X) mandates.Tx { return x }),
		mandates.Config{MaxDepth: a.Config.Issuer.MaxDelegationDepth})
	// Domain proofs are fetched like webhooks: SSRF-guarded, the same
	// allowed prefixes and timeout.
	allowed, _ := a.Config.Webhooks.AllowedPrefixes() // validated
	a.Merchants = merchants.NewService(store.Bind(b, func(x X) merchants.Tx { return x }),
		merchants.NewChecker(net.DefaultResolver, egress.Policy{Allowed: allowed}, a.Config.Webhooks.Timeout, nil))
	a.jobs = append(a.jobs, func(ctx context.Context) { a.Merchants.RunReverifier(ctx, domainRecheckInterval, a.Log) })
	a.jobs = append(a.jobs, func(ctx context.Context) { a.Mandates.RunExpiry(ctx, mandateExpiryInterval, a.Log) })
	return &server.MandateHandlers{Mandates: a.Mandates, Signer: signer}, &server.MerchantHandlers{Merchants: a.Merchants}
}

// DemoMerchant is a dev-mode merchant account with its profile (Tenant is
// nil when the merchant was seeded by an earlier start).
type DemoMerchant struct {
	Tenant   *accounts.Bootstrap
	Merchant *merchants.Merchant
}

// seedMerchants creates the dev-mode demo merchants: Acme Books (MCC 5942)
// and Acme Music (MCC 5735), each a tenant with a verified domain. It is
// idempotent (a database kept across dev starts): a demo merchant already
// holding its domain is used as it is.
func (a *App) seedMerchants(ctx context.Context) ([]DemoMerchant, error) {
	var out []DemoMerchant
	for _, p := range []merchants.Profile{
		{DisplayName: "Acme Books", MCC: "5942", Country: "US", Domains: []string{"books.acme.example"}},
		{DisplayName: "Acme Music", MCC: "5735", Country: "US", Domains: []string{"music.acme.example"}},
	} {
		held, err := a.Merchants.FindByDomain(ctx, p.Domains[0])
		if err != nil {
			return nil, err
		}
		if len(held) > 0 {
			out = append(out, DemoMerchant{Merchant: &held[0]})
			continue
		}
		t, err := a.Accounts.CreateTenant(ctx, p.DisplayName)
		if err != nil {
			return nil, err
		}
		actx := audit.WithActor(ctx, audit.Actor{TenantID: t.Tenant.ID, Type: audit.ActorSystem})
		m, _, err := a.Merchants.Put(actx, t.Tenant.ID, p)
		if err != nil {
			return nil, fmt.Errorf("demo merchant %s: %w", p.DisplayName, err)
		}
		m, err = a.Merchants.VerifyDomain(actx, m.ID, p.Domains[0])
		if errors.Is(err, merchants.ErrDomainTaken) {
			// Another node seeding the same database at the same time won.
			held, err := a.Merchants.FindByDomain(ctx, p.Domains[0])
			if err != nil || len(held) == 0 {
				return nil, fmt.Errorf("demo merchant %s: domain taken, holder not found: %v", p.DisplayName, err)
			}
			out = append(out, DemoMerchant{Merchant: &held[0]})
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("demo merchant %s: %w", p.DisplayName, err)
		}
		out = append(out, DemoMerchant{Tenant: t, Merchant: m})
	}
	return out, nil
}

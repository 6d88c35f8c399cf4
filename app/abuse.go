package app

import (
	"context"

	"github.com/perfectpay/perfectpay/abuse"
	"github.com/perfectpay/perfectpay/fraud"
	"github.com/perfectpay/perfectpay/internal/egress"
	"github.com/perfectpay/perfectpay/policies"
	"github.com/perfectpay/perfectpay/server"
	"github.com/perfectpay/perfectpay/store"
	"github.com/perfectpay/perfectpay/store/repos"
)

// wireAbuse builds the rate limits and abuse defences from abuse.*: every
// limit is this node's share of the configured one (abuse.nodes).
func wireAbuse[X repos.Tx](a *App, b store.Backend[X]) *server.Defences {
	c := a.Config.Abuse
	if !c.Enabled {
		return nil
	}
	proxies, _ := c.TrustedPrefixes() // validated
	d := &server.Defences{
		Limiter:        abuse.NewLimiter(c.MaxKeys, nil),
		Limits:         c.Limits.Share(c.Nodes),
		Guard:          abuse.NewGuard(c.Auth, c.MaxKeys, nil),
		CardTesting:    abuse.NewCardTesting(c.CardTesting, c.MaxKeys, nil),
		TrustedProxies: proxies,
		Record:         store.Bind(b, func(x X) server.AbuseTx { return x }),
	}
	for _, o := range c.Overrides {
		if o.Tenant != "" {
			d.SetTenantLimits(o.Tenant, o.Limits.Share(c.Nodes))
		} else {
			d.SetKeyLimits(o.Key, o.Limits.Share(c.Nodes))
		}
	}
	a.Defences = d
	return d
}

// wireFraud builds the fraud signals of agent charges from fraud.* and
// hands them to the pipeline; it returns the routes that show and clear
// an agent's anomaly flag.
func wireFraud[X repos.Tx](a *App, b store.Backend[X]) []server.Mounter {
	c := a.Config.Fraud
	if !c.Enabled || a.Pipeline == nil {
		return []server.Mounter{&server.AnomalyHandlers{}}
	}
	limits := make([]policies.VelocityLimit, len(c.VelocityLimits))
	for i, l := range c.VelocityLimits {
		limits[i] = policies.VelocityLimit{Scope: l.Scope, Window: l.Window, Metric: l.Metric, Action: l.Action, Limit: l.Limit}
	}
	// Vendors are reached like webhook endpoints: through the egress
	// guard, with the same allowed prefixes.
	allowed, _ := a.Config.Webhooks.AllowedPrefixes() // validated
	out := egress.Policy{AllowHTTPLoopback: a.Config.DevMode, Allowed: allowed}
	var screener fraud.Screener
	switch c.Screener {
	case "rules":
		screener = fraud.NewRules(c.Rules)
	case "signifyd":
		screener = fraud.NewSignifyd(c.Signifyd, out)
	case "riskified":
		screener = fraud.NewRiskified(c.Riskified, out)
	case "kount":
		screener = fraud.NewKount(c.Kount, out)
	}
	var cards fraud.CardLookup
	if a.Vault != nil {
		v := a.Vault
		cards = func(ctx context.Context, tenantID, token string) (fraud.Card, error) {
			t, err := v.Get(ctx, tenantID, token)
			if err != nil {
				return fraud.Card{}, err
			}
			return fraud.Card{Fingerprint: t.Fingerprint, Brand: t.Brand, Last4: t.Last4}, nil
		}
	}
	as := fraud.NewAssessor(fraud.Config{
		Limits: limits, Timeout: c.ScreenerTimeout, FailClosed: c.FailClosed,
		FailClosedTenants: c.FailClosedTenants, FailOpenTenants: c.FailOpenTenants, Anomaly: c.Anomaly, MaxKeys: c.MaxKeys,
	}, screener, cards, store.Bind(b, func(x X) fraud.Tx { return x }), a.Log)
	a.Pipeline.SetFraudSignals(as)
	a.Fraud = as
	return []server.Mounter{&server.AnomalyHandlers{Fraud: as}}
}

package app

import (
	"github.com/perfectpay/perfectpay/abuse"
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

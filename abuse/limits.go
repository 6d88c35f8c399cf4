package abuse

// Limits are the rate limits of the API, each over its own budget:
// every request spends from its source IP's budget and from its
// credential's (an API key's or an agent's); requests to the token
// endpoint from their client's; card tokenizations and charges from
// budgets of their own, per credential.
type Limits struct {
	IP          Limit `mapstructure:"ip" json:"ip"`
	Key         Limit `mapstructure:"key" json:"key"`
	Agent       Limit `mapstructure:"agent" json:"agent"`
	TokenClient Limit `mapstructure:"token_client" json:"token_client"`
	Tokenize    Limit `mapstructure:"tokenize" json:"tokenize"`
	Charge      Limit `mapstructure:"charge" json:"charge"`
}

// With returns l with every limit o sets (Rate > 0) in its place; a
// tenant's or a key's override names only what it changes.
func (l Limits) With(o Limits) Limits {
	pick := func(base, over Limit) Limit {
		if over.Rate > 0 && over.Per > 0 {
			return over
		}
		return base
	}
	return Limits{
		IP: pick(l.IP, o.IP), Key: pick(l.Key, o.Key), Agent: pick(l.Agent, o.Agent),
		TokenClient: pick(l.TokenClient, o.TokenClient), Tokenize: pick(l.Tokenize, o.Tokenize),
		Charge: pick(l.Charge, o.Charge),
	}
}

// Share is this node's part of every limit when nodes share the load.
func (l Limits) Share(nodes int) Limits {
	return Limits{
		IP: l.IP.Share(nodes), Key: l.Key.Share(nodes), Agent: l.Agent.Share(nodes),
		TokenClient: l.TokenClient.Share(nodes), Tokenize: l.Tokenize.Share(nodes), Charge: l.Charge.Share(nodes),
	}
}

// Each calls fn with every limit's name and value.
func (l Limits) Each(fn func(name string, v Limit)) {
	fn("ip", l.IP)
	fn("key", l.Key)
	fn("agent", l.Agent)
	fn("token_client", l.TokenClient)
	fn("tokenize", l.Tokenize)
	fn("charge", l.Charge)
}

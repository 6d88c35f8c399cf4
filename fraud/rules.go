package fraud

import (
	"context"
	"fmt"
	"slices"
)

// RulesConfig tunes the built-in rules screener: each rule that fires adds
// its weight to the score; Review and Reject are the score thresholds.
type RulesConfig struct {
	// LargeAmount (minor units) adds LargeAmountWeight.
	LargeAmount       int64 `mapstructure:"large_amount"`
	LargeAmountWeight int   `mapstructure:"large_amount_weight"`
	// RecentDeclines of the agent in the last hour add DeclinesWeight.
	RecentDeclines int `mapstructure:"recent_declines"`
	DeclinesWeight int `mapstructure:"declines_weight"`
	// A card declined in the last hour adds CardDeclinedWeight.
	CardDeclinedWeight int `mapstructure:"card_declined_weight"`
	// RiskyCategories (MCCs: gambling, money transfer, …) add CategoryWeight.
	RiskyCategories []string `mapstructure:"risky_categories"`
	CategoryWeight  int      `mapstructure:"category_weight"`
	Review          int      `mapstructure:"review"`
	Reject          int      `mapstructure:"reject"`
}

// Rules is the built-in screener: a few weighted rules over the charge
// and its velocity, no network.
type Rules struct{ cfg RulesConfig }

// NewRules returns the rules screener.
func NewRules(cfg RulesConfig) *Rules { return &Rules{cfg: cfg} }

// Name implements Screener.
func (*Rules) Name() string { return "rules" }

func (*Rules) inline() {}

// Screen implements Screener.
func (r *Rules) Screen(_ context.Context, c *Charge) (Result, error) {
	cfg := r.cfg
	var res Result
	hit := func(weight int, format string, args ...any) {
		res.Score += weight
		res.Reasons = append(res.Reasons, fmt.Sprintf(format, args...))
	}
	if cfg.LargeAmount > 0 && c.Amount >= cfg.LargeAmount {
		hit(cfg.LargeAmountWeight, "amount %d is at least %d", c.Amount, cfg.LargeAmount)
	}
	if d := c.Velocity.Agent.Hour.Declines; cfg.RecentDeclines > 0 && d >= cfg.RecentDeclines {
		hit(cfg.DeclinesWeight, "the agent had %d declines in the last hour", d)
	}
	if d := c.Velocity.Card.Hour.Declines; cfg.CardDeclinedWeight > 0 && d > 0 {
		hit(cfg.CardDeclinedWeight, "the card was declined %d times in the last hour", d)
	}
	if slices.Contains(cfg.RiskyCategories, c.Merchant.MCC) {
		hit(cfg.CategoryWeight, "merchant category %s is a risky one", c.Merchant.MCC)
	}
	res.Score = min(100, res.Score)
	res.Decision = scoreDecision(res.Score, cfg.Review, cfg.Reject)
	return res, nil
}

package abuse_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/abuse"
)

func ctConfig() abuse.CardTestingConfig {
	return abuse.CardTestingConfig{
		Window: time.Hour, Cooldown: time.Hour, MaxTokenizations: 50, MaxDistinctCards: 5,
		MaxDeclineRatio: 0.5, DeclineMinCharges: 6, SmallAmount: 100, MaxSmallCharges: 8, MaxIncorrectCVC: 3,
	}
}

func TestCardTestingSignalsTrip(t *testing.T) {
	src := abuse.Source{Kind: "ip", Value: "203.0.113.5"}
	cases := []struct {
		name   string
		obs    func(i int) abuse.Observation
		n      int
		reason string
	}{
		{"distinct cards", func(i int) abuse.Observation {
			return abuse.Observation{Fingerprint: fmt.Sprintf("fp%d", i)}
		}, 6, "6 distinct cards in 1h0m0s, limit 5"},
		{"tokenization burst", func(int) abuse.Observation { return abuse.Observation{Fingerprint: "same"} }, 51, "51 tokenizations in 1h0m0s, limit 50"},
		{"incorrect cvc", func(int) abuse.Observation {
			return abuse.Observation{Charge: true, Amount: 5000, Declined: true, IncorrectCVC: true}
		}, 4, "4 incorrect_cvc declines in 1h0m0s, limit 3"},
		{"small amounts", func(int) abuse.Observation { return abuse.Observation{Charge: true, Amount: 50} }, 9, "9 charges of at most 100 in 1h0m0s, limit 8"},
		{"decline ratio", func(i int) abuse.Observation {
			return abuse.Observation{Charge: true, Amount: 5000, Declined: i%4 != 0}
		}, 6, "4 of 6 charges declined in 1h0m0s, limit 50%"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ct := abuse.NewCardTesting(ctConfig(), 10_000, newClock().Now)
			for i := range tc.n - 1 {
				o := tc.obs(i)
				o.Sources = []abuse.Source{src}
				require.Empty(t, ct.Observe(o), "observation %d", i+1)
			}
			o := tc.obs(tc.n - 1)
			o.Sources = []abuse.Source{src}
			blocks := ct.Observe(o)
			require.Len(t, blocks, 1)
			assert.Equal(t, tc.reason, blocks[0].Reason)
			_, blocked := ct.Blocked(src)
			assert.True(t, blocked)
			_, blocked = ct.Blocked(abuse.Source{Kind: "ip", Value: "198.51.100.1"})
			assert.False(t, blocked)
		})
	}
}

// Counts leave the window: the same traffic spread over hours trips nothing.
func TestCardTestingWindowSlides(t *testing.T) {
	clk := newClock()
	ct := abuse.NewCardTesting(ctConfig(), 10_000, clk.Now)
	src := abuse.Source{Kind: "key", Value: "key_1"}
	for i := range 40 {
		require.Empty(t, ct.Observe(abuse.Observation{Sources: []abuse.Source{src}, Charge: true, Amount: 50, Fingerprint: fmt.Sprintf("fp%d", i%3)}), "charge %d", i)
		clk.Advance(10 * time.Minute)
	}
	assert.LessOrEqual(t, ct.SignalsOf(src).SmallCharges, 7)
}

func TestCardTestingCooldownEnds(t *testing.T) {
	clk := newClock()
	ct := abuse.NewCardTesting(ctConfig(), 10_000, clk.Now)
	src := abuse.Source{Kind: "agent", Value: "agt_1"}
	for i := range 6 {
		ct.Observe(abuse.Observation{Sources: []abuse.Source{src}, Fingerprint: fmt.Sprintf("fp%d", i)})
	}
	left, blocked := ct.Blocked(src)
	require.True(t, blocked)
	assert.Equal(t, time.Hour, left)
	clk.Advance(time.Hour)
	_, blocked = ct.Blocked(src)
	assert.False(t, blocked)
}

func TestCardTestingBoundedMemory(t *testing.T) {
	clk := newClock()
	ct := abuse.NewCardTesting(ctConfig(), 1000, clk.Now)
	for i := range 10_000 {
		ct.Observe(abuse.Observation{Sources: []abuse.Source{{Kind: "ip", Value: fmt.Sprint(i)}}, Charge: true, Amount: 5000})
	}
	assert.LessOrEqual(t, ct.Len(), 1000)
}

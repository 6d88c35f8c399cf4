package merchants_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/internal/apierr"
	"github.com/perfectpay/perfectpay/internal/page"
	"github.com/perfectpay/perfectpay/merchants"
	"github.com/perfectpay/perfectpay/store"
	"github.com/perfectpay/perfectpay/store/memory"
	"github.com/perfectpay/perfectpay/store/storetest"
)

func newService(t *testing.T) (*merchants.Service, store.Backend[*memory.Tx]) {
	m := memory.New()
	t.Cleanup(m.Close)
	return merchants.NewService(store.Bind(m, func(x *memory.Tx) merchants.Tx { return x }), nil), m
}

func TestProfileRules(t *testing.T) {
	for _, tc := range []struct {
		p     merchants.Profile
		param string
	}{
		{merchants.Profile{MCC: "5942", Country: "US"}, "display_name"},
		{merchants.Profile{DisplayName: "Shop", MCC: "59420", Country: "US"}, "mcc"},
		{merchants.Profile{DisplayName: "Shop", MCC: "5942", Country: "XX"}, "country"},
		{merchants.Profile{DisplayName: "Shop", MCC: "5942", Country: "US", Domains: []string{"shop.example/path"}}, "domains"},
	} {
		tc.p.Normalize()
		var fe *apierr.Invalid
		require.True(t, errors.As(tc.p.Validate(), &fe), "%+v", tc.p)
		assert.Equal(t, tc.param, fe.Param)
	}
	p := merchants.Profile{DisplayName: " Shop ", MCC: "5942", Country: "us", Domains: []string{"B.example", "a.example", "b.example"}}
	p.Normalize()
	require.NoError(t, p.Validate())
	assert.Equal(t, merchants.Profile{DisplayName: "Shop", MCC: "5942", Country: "US", Domains: []string{"a.example", "b.example"}}, p)
}

// TestListAndChallengeRules: a tenant lists only its own profile with a
// cursor; a challenge is for the owner's claimed domains only and is given
// again while pending.
func TestListAndChallengeRules(t *testing.T) {
	ctx := context.Background()
	s, b := newService(t)
	clock := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	s.SetClock(func() time.Time { return clock })
	mine, other := storetest.MakeTenant(t, b), storetest.MakeTenant(t, b)

	list, more, err := s.List(ctx, mine.ID, page.Page{Limit: 10})
	require.NoError(t, err)
	assert.Empty(t, list)
	assert.False(t, more)
	_, _, err = s.List(ctx, mine.ID, page.Page{Limit: 10, StartingAfter: "acct_x"})
	require.ErrorIs(t, err, store.ErrNotFound)

	m, created, err := s.Put(ctx, mine.ID, merchants.Profile{DisplayName: "Shop", MCC: "5942", Country: "US", Domains: []string{"shop.example"}})
	require.NoError(t, err)
	require.True(t, created)
	list, _, err = s.List(ctx, mine.ID, page.Page{Limit: 10})
	require.NoError(t, err)
	require.Len(t, list, 1)
	assert.Equal(t, m.ID, list[0].ID)
	list, _, err = s.List(ctx, mine.ID, page.Page{Limit: 10, StartingAfter: m.ID})
	require.NoError(t, err)
	assert.Empty(t, list, "nothing after the last profile")
	list, _, err = s.List(ctx, other.ID, page.Page{Limit: 10})
	require.NoError(t, err)
	assert.Empty(t, list, "another tenant's profile is not listed")
	_, _, err = s.List(ctx, other.ID, page.Page{Limit: 10, StartingAfter: m.ID})
	require.ErrorIs(t, err, store.ErrNotFound, "nor usable as its cursor")

	_, err = s.StartVerification(ctx, other.ID, m.ID, "shop.example")
	require.ErrorIs(t, err, store.ErrNotFound, "only the owner")
	_, err = s.StartVerification(ctx, mine.ID, m.ID, "other.example")
	require.ErrorIs(t, err, merchants.ErrDomainNotClaimed)
	ch, err := s.StartVerification(ctx, mine.ID, m.ID, "SHOP.example")
	require.NoError(t, err)
	assert.Equal(t, "shop.example", ch.Domain)
	assert.Len(t, ch.Token, 32)
	assert.Equal(t, clock.Add(merchants.ChallengeTTL), ch.ExpiresAt)
	again, err := s.StartVerification(ctx, mine.ID, m.ID, "shop.example")
	require.NoError(t, err)
	assert.Equal(t, ch.Token, again.Token, "pending: the same token")
	clock = clock.Add(merchants.ChallengeTTL)
	fresh, err := s.StartVerification(ctx, mine.ID, m.ID, "shop.example")
	require.NoError(t, err)
	assert.NotEqual(t, ch.Token, fresh.Token, "expired: a new token")

	// Operator verification is not re-checked.
	_, err = s.VerifyDomain(ctx, m.ID, "shop.example")
	require.NoError(t, err)
	got, err := s.Get(ctx, m.ID)
	require.NoError(t, err)
	assert.Equal(t, merchants.MethodOperator, got.Domains[0].Method)
	assert.Nil(t, got.Domains[0].NextCheckAt)
	checked, _, err := s.ReverifyDue(ctx)
	require.NoError(t, err)
	assert.Zero(t, checked)
}

package merchants_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/internal/apierr"
	"github.com/perfectpay/perfectpay/merchants"
	"github.com/perfectpay/perfectpay/store"
	"github.com/perfectpay/perfectpay/store/memory"
	"github.com/perfectpay/perfectpay/store/storetest"
)

// dnsProof is a resolver whose TXT answers a test sets per name; every
// other name does not exist (or, with down set, the lookup times out).
type dnsProof struct {
	mu   sync.Mutex
	txt  map[string][]string
	down bool
}

func (r *dnsProof) set(name string, values ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.txt == nil {
		r.txt = map[string][]string{}
	}
	r.txt[name] = values
}

func (r *dnsProof) setDown(down bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.down = down
}

func (r *dnsProof) LookupTXT(_ context.Context, name string) ([]string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.down {
		return nil, &net.DNSError{Err: "timeout", Name: name, IsTimeout: true}
	}
	if v, ok := r.txt[name]; ok {
		return v, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
}

func (r *dnsProof) LookupNetIP(context.Context, string, string) ([]netip.Addr, error) {
	return nil, errors.New("no addresses in unit tests")
}

// noHTTPS answers every HTTPS proof fetch with a connection error, so only
// DNS proofs count and nothing leaves the process.
type noHTTPS struct{}

func (noHTTPS) RoundTrip(*http.Request) (*http.Response, error) {
	return nil, errors.New("connection refused")
}

type verifyFixture struct {
	s     *merchants.Service
	dns   *dnsProof
	clock time.Time
	b     store.Backend[*memory.Tx]
}

func newVerifyFixture(t *testing.T) *verifyFixture {
	m := memory.New()
	t.Cleanup(m.Close)
	f := &verifyFixture{dns: &dnsProof{}, clock: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC), b: m}
	f.s = merchants.NewService(store.Bind(m, func(x *memory.Tx) merchants.Tx { return x }),
		&merchants.Checker{Resolver: f.dns, Client: &http.Client{Transport: noHTTPS{}}})
	f.s.SetClock(func() time.Time { return f.clock })
	return f
}

func (f *verifyFixture) merchant(t *testing.T, domains ...string) (tenantID string, m *merchants.Merchant) {
	tn := storetest.MakeTenant(t, f.b)
	m, created, err := f.s.Put(context.Background(), tn.ID, merchants.Profile{DisplayName: "Shop", MCC: "5942", Country: "US", Domains: domains})
	require.NoError(t, err)
	require.True(t, created)
	return tn.ID, m
}

func (f *verifyFixture) publish(ch *merchants.Challenge) { f.dns.set(ch.DNSName, ch.DNSValue) }

func codeOfVerify(t *testing.T, err error) apierr.Code {
	t.Helper()
	var ve *apierr.Invalid
	require.ErrorAs(t, err, &ve)
	assert.Equal(t, "domain", ve.Param)
	return ve.Code
}

func domainOf(t *testing.T, m *merchants.Merchant, name string) merchants.Domain {
	t.Helper()
	for _, d := range m.Domains {
		if d.Name == name {
			return d
		}
	}
	t.Fatalf("merchant %s has no domain %s", m.ID, name)
	return merchants.Domain{}
}

func TestVerifyNeedsAValidChallenge(t *testing.T) {
	ctx := context.Background()
	f := newVerifyFixture(t)
	tenant, m := f.merchant(t, "shop.example")

	_, err := f.s.Verify(ctx, tenant, m.ID, "shop.example")
	assert.Equal(t, merchants.CodeChallengeMissing, codeOfVerify(t, err), "no challenge asked for yet")

	ch, err := f.s.StartVerification(ctx, tenant, m.ID, "SHOP.example.")
	require.NoError(t, err)
	assert.Equal(t, "shop.example", ch.Domain, "the domain is normalised")
	assert.Equal(t, "_perfectpay-challenge.shop.example", ch.DNSName)
	assert.Equal(t, merchants.TXTPrefix+ch.Token, ch.DNSValue)
	assert.Equal(t, "https://shop.example"+merchants.WellKnownPath, ch.HTTPSURL)
	assert.Equal(t, f.clock.Add(merchants.ChallengeTTL), ch.ExpiresAt)
	assert.Len(t, ch.Token, 32, "160 random bits, base32")

	again, err := f.s.StartVerification(ctx, tenant, m.ID, "shop.example")
	require.NoError(t, err)
	assert.Equal(t, ch.Token, again.Token, "a pending challenge is given again")

	f.clock = ch.ExpiresAt
	f.publish(ch)
	_, err = f.s.Verify(ctx, tenant, m.ID, "shop.example")
	assert.Equal(t, merchants.CodeChallengeExpired, codeOfVerify(t, err), "a challenge is dead at its expiry")

	fresh, err := f.s.StartVerification(ctx, tenant, m.ID, "shop.example")
	require.NoError(t, err)
	assert.NotEqual(t, ch.Token, fresh.Token, "an expired challenge is replaced")
}

func TestVerifyOwnDomainsOnly(t *testing.T) {
	ctx := context.Background()
	f := newVerifyFixture(t)
	tenant, m := f.merchant(t, "shop.example")
	other, _ := f.merchant(t, "other.example")

	_, err := f.s.StartVerification(ctx, tenant, m.ID, "other.example")
	require.ErrorIs(t, err, merchants.ErrDomainNotClaimed)
	_, err = f.s.StartVerification(ctx, other, m.ID, "shop.example")
	require.ErrorIs(t, err, store.ErrNotFound, "another tenant's merchant does not exist for it")
	_, err = f.s.Verify(ctx, other, m.ID, "shop.example")
	require.ErrorIs(t, err, store.ErrNotFound)
	_, err = f.s.StartVerification(ctx, tenant, "acct_missing", "shop.example")
	require.ErrorIs(t, err, store.ErrNotFound)
}

func TestVerifyByDNS(t *testing.T) {
	ctx := context.Background()
	f := newVerifyFixture(t)
	tenant, m := f.merchant(t, "shop.example", "blog.example")
	ch, err := f.s.StartVerification(ctx, tenant, m.ID, "shop.example")
	require.NoError(t, err)

	f.dns.set(ch.DNSName, merchants.TXTPrefix+"someone-elses-token")
	_, err = f.s.Verify(ctx, tenant, m.ID, "shop.example")
	assert.Equal(t, merchants.CodeNotProven, codeOfVerify(t, err))
	assert.Contains(t, err.Error(), "no TXT record at _perfectpay-challenge.shop.example reads", "says what was looked for")
	got, err := f.s.Get(ctx, m.ID)
	require.NoError(t, err)
	assert.False(t, domainOf(t, got, "shop.example").Verified(), "a failed check verifies nothing")

	f.publish(ch)
	got, err = f.s.Verify(ctx, tenant, m.ID, "shop.example")
	require.NoError(t, err)
	d := domainOf(t, got, "shop.example")
	require.True(t, d.Verified())
	assert.Equal(t, merchants.MethodDNS, d.Method)
	require.NotNil(t, d.NextCheckAt)
	assert.Equal(t, f.clock.Add(merchants.ReverifyInterval), *d.NextCheckAt, "a proven domain is re-checked")
	assert.Equal(t, []string{"shop.example"}, got.VerifiedDomains(), "only the proven domain counts")
	assert.False(t, domainOf(t, got, "blog.example").Verified())

	found, err := f.s.FindByDomain(ctx, "Shop.Example")
	require.NoError(t, err)
	require.Len(t, found, 1)
	assert.Equal(t, m.ID, found[0].ID)
	none, err := f.s.FindByDomain(ctx, "blog.example")
	require.NoError(t, err)
	assert.Empty(t, none, "an unproven domain finds no merchant")

	// An update that keeps the domain keeps its proof and schedule.
	_, created, err := f.s.Put(ctx, tenant, merchants.Profile{DisplayName: "Shop 2", MCC: "5942", Country: "US", Domains: []string{"shop.example"}})
	require.NoError(t, err)
	require.False(t, created)
	got, err = f.s.Get(ctx, m.ID)
	require.NoError(t, err)
	kept := domainOf(t, got, "shop.example")
	assert.True(t, kept.Verified())
	assert.Equal(t, d.NextCheckAt, kept.NextCheckAt)
	assert.Len(t, got.Domains, 1, "a domain left out of the profile is dropped")
}

func TestVerifiedDomainIsExclusive(t *testing.T) {
	ctx := context.Background()
	f := newVerifyFixture(t)
	first, m1 := f.merchant(t, "shop.example")
	second, m2 := f.merchant(t, "shop.example")

	ch, err := f.s.StartVerification(ctx, first, m1.ID, "shop.example")
	require.NoError(t, err)
	f.publish(ch)
	_, err = f.s.Verify(ctx, first, m1.ID, "shop.example")
	require.NoError(t, err)

	ch2, err := f.s.StartVerification(ctx, second, m2.ID, "shop.example")
	require.NoError(t, err)
	f.publish(ch2)
	_, err = f.s.Verify(ctx, second, m2.ID, "shop.example")
	require.ErrorIs(t, err, merchants.ErrDomainTaken)
	_, err = f.s.VerifyDomain(ctx, m2.ID, "shop.example")
	require.ErrorIs(t, err, merchants.ErrDomainTaken, "not by an operator either")
}

func TestReverifyUnverifiesAfterRepeatedFailures(t *testing.T) {
	ctx := context.Background()
	f := newVerifyFixture(t)
	tenant, m := f.merchant(t, "shop.example")
	ch, err := f.s.StartVerification(ctx, tenant, m.ID, "shop.example")
	require.NoError(t, err)
	f.publish(ch)
	_, err = f.s.Verify(ctx, tenant, m.ID, "shop.example")
	require.NoError(t, err)

	checked, lost, err := f.s.ReverifyDue(ctx)
	require.NoError(t, err)
	assert.Equal(t, 0, checked, "nothing is due before its time")
	assert.Equal(t, 0, lost)

	// Still published: the check passes and is scheduled a day on.
	f.clock = f.clock.Add(merchants.ReverifyInterval)
	checked, lost, err = f.s.ReverifyDue(ctx)
	require.NoError(t, err)
	assert.Equal(t, 1, checked)
	assert.Equal(t, 0, lost)

	// DNS unreachable: inconclusive, never counted against the domain.
	f.dns.setDown(true)
	for range merchants.ReverifyFailures + 1 {
		f.clock = f.clock.Add(merchants.ReverifyInterval)
		_, lost, err = f.s.ReverifyDue(ctx)
		require.NoError(t, err)
		assert.Equal(t, 0, lost)
	}
	got, err := f.s.Get(ctx, m.ID)
	require.NoError(t, err)
	require.True(t, domainOf(t, got, "shop.example").Verified())
	assert.Equal(t, 0, domainOf(t, got, "shop.example").FailedChecks)
	f.dns.setDown(false)

	// The proof is gone: each failure retries an hour later; the third in
	// a row unverifies.
	f.dns.set(ch.DNSName)
	for i := 1; i <= merchants.ReverifyFailures; i++ {
		f.clock = f.clock.Add(merchants.ReverifyInterval)
		checked, lost, err = f.s.ReverifyDue(ctx)
		require.NoError(t, err)
		assert.Equal(t, 1, checked)
		got, err = f.s.Get(ctx, m.ID)
		require.NoError(t, err)
		d := domainOf(t, got, "shop.example")
		if i < merchants.ReverifyFailures {
			assert.Equal(t, 0, lost, "failure %d", i)
			assert.True(t, d.Verified(), "failure %d", i)
			assert.Equal(t, i, d.FailedChecks)
			require.NotNil(t, d.NextCheckAt)
			assert.Equal(t, f.clock.Add(merchants.RetryInterval), *d.NextCheckAt)
			continue
		}
		assert.Equal(t, 1, lost)
		assert.False(t, d.Verified(), "unverified after %d failures", i)
		assert.Nil(t, d.NextCheckAt, "an unverified domain is not re-checked")
		assert.Empty(t, d.Token, "a new proof needs a new challenge")
	}
	_, err = f.s.Verify(ctx, tenant, m.ID, "shop.example")
	assert.Equal(t, merchants.CodeChallengeMissing, codeOfVerify(t, err))
}

func TestReverifyIgnoresOperatorDomainsAndRecovers(t *testing.T) {
	ctx := context.Background()
	f := newVerifyFixture(t)
	tenant, m := f.merchant(t, "ops.example", "shop.example")
	_, err := f.s.VerifyDomain(ctx, m.ID, "ops.example")
	require.NoError(t, err)
	ch, err := f.s.StartVerification(ctx, tenant, m.ID, "shop.example")
	require.NoError(t, err)
	f.publish(ch)
	_, err = f.s.Verify(ctx, tenant, m.ID, "shop.example")
	require.NoError(t, err)

	f.dns.set(ch.DNSName)
	f.clock = f.clock.Add(merchants.ReverifyInterval)
	checked, _, err := f.s.ReverifyDue(ctx)
	require.NoError(t, err)
	assert.Equal(t, 1, checked, "an operator-verified domain has no proof to re-check")

	f.publish(ch)
	f.clock = f.clock.Add(merchants.RetryInterval)
	_, _, err = f.s.ReverifyDue(ctx)
	require.NoError(t, err)
	got, err := f.s.Get(ctx, m.ID)
	require.NoError(t, err)
	d := domainOf(t, got, "shop.example")
	assert.Equal(t, 0, d.FailedChecks, "a passing check resets the count")
	assert.Equal(t, f.clock.Add(merchants.ReverifyInterval), *d.NextCheckAt)
	assert.ElementsMatch(t, []string{"ops.example", "shop.example"}, got.VerifiedDomains())
}

func TestMerchantCloneIsDeep(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	m := &merchants.Merchant{ID: "acct_1", Domains: []merchants.Domain{{Name: "a.example", VerifiedAt: &now, NextCheckAt: &now, CheckedAt: &now, TokenExpiresAt: &now}}}
	c := m.Clone()
	c.Domains[0].Name = "b.example"
	*c.Domains[0].VerifiedAt = now.Add(time.Hour)
	*c.Domains[0].NextCheckAt = now.Add(time.Hour)
	*c.Domains[0].CheckedAt = now.Add(time.Hour)
	*c.Domains[0].TokenExpiresAt = now.Add(time.Hour)
	assert.Equal(t, "a.example", m.Domains[0].Name)
	assert.Equal(t, now, *m.Domains[0].VerifiedAt)
	assert.Equal(t, now, *m.Domains[0].NextCheckAt)
	assert.Equal(t, now, *m.Domains[0].CheckedAt)
	assert.Equal(t, now, *m.Domains[0].TokenExpiresAt)
	assert.Equal(t, []string{}, (&merchants.Merchant{}).VerifiedDomains(), "never nil: an empty list on the wire")
}

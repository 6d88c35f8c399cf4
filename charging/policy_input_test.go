package charging

import (
	"reflect"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/mandates"
	"github.com/perfectpay/perfectpay/policies"
)

func ptr[T any](v T) *T { return &v }

func fullLimits(now time.Time) mandates.Limits {
	return mandates.Limits{
		Currency: "USD", MaxAmountPerCharge: ptr[int64](50_00), Budget: 100_00,
		Period: mandates.PeriodDay, PeriodBudget: ptr[int64](30_00), MaxCharges: ptr[int64](7),
		PaymentMethods: []string{"tok_visa"}, AllowedMerchants: []string{"acct_books"},
		AllowedCategories: []string{"5942"}, BlockedCategories: []string{"7995"},
		AllowedCountries: []string{"US"}, ValidFrom: ptr(now.Add(-time.Hour)), ValidUntil: ptr(now.Add(time.Hour)),
		ApprovalThreshold: ptr[int64](10_00),
	}
}

// Every limit of a mandate reaches the policy: a limit added to mandates
// but not mapped would silently be unrestricted.
func TestPolicyLimitsMapsEveryLimit(t *testing.T) {
	now := time.Date(2026, 6, 10, 12, 0, 0, 0, time.UTC)
	l := fullLimits(now)
	require.Equal(t, reflect.TypeOf(l).NumField(), reflect.TypeOf(policies.Limits{}).NumField(), "the policy has a field for every limit")
	got := policyLimits(&l)
	v := reflect.ValueOf(got)
	for i := 0; i < v.NumField(); i++ {
		assert.False(t, v.Field(i).IsZero(), "policy limit %s is mapped", v.Type().Field(i).Name)
		src := reflect.ValueOf(l).FieldByName(v.Type().Field(i).Name)
		require.True(t, src.IsValid(), "mandates.Limits has %s", v.Type().Field(i).Name)
		assert.Equal(t, src.Interface(), v.Field(i).Interface(), v.Type().Field(i).Name)
	}
}

func TestPolicyChainCountsThePeriodAsOfNow(t *testing.T) {
	now := time.Date(2026, 6, 10, 12, 0, 0, 0, time.UTC)
	m := mandates.Mandate{ID: "mdt_child", Status: mandates.StatusActive, Agent: "agt_b", Payer: "cus_1",
		ParentID: "mdt_parent", Depth: 1, Limits: fullLimits(now), Spent: 40_00, ChargeCount: 3,
		PeriodSpent: 25_00, PeriodStart: ptr(mandates.PeriodStart(mandates.PeriodDay, now))}
	got := policyChain([]mandates.Mandate{m}, now)
	require.Len(t, got, 1)
	assert.Equal(t, policies.Mandate{ID: "mdt_child", Status: "active", Agent: "agt_b", Payer: "cus_1",
		ParentID: "mdt_parent", Depth: 1, Limits: policyLimits(&m.Limits), Spent: 40_00, ChargeCount: 3,
		PeriodSpent: 25_00}, got[0])

	m.PeriodStart = ptr(mandates.PeriodStart(mandates.PeriodDay, now.Add(-24*time.Hour)))
	assert.Zero(t, policyChain([]mandates.Mandate{m}, now)[0].PeriodSpent, "a period that is over counts as 0")
}

func TestPolicyDetailsKeepsReferencesAndTerms(t *testing.T) {
	now := time.Date(2026, 6, 10, 12, 0, 0, 0, time.UTC)
	l := fullLimits(now)
	got := policyDetails([]mandates.AuthorizationDetail{
		{Type: "payment_mandate", MandateID: "mdt_1"},
		{Type: "payment_mandate", MandateID: "mdt_2", Limits: &l, Description: "books"},
	})
	require.Len(t, got, 2)
	assert.Equal(t, policies.AuthorizationDetail{Type: "payment_mandate", MandateID: "mdt_1"}, got[0])
	require.NotNil(t, got[1].Limits)
	assert.Equal(t, policyLimits(&l), *got[1].Limits)
	assert.Equal(t, "mdt_2", got[1].MandateID)
}

// Package storetest is the conformance suite every backend passes: the same
// tests run against store/memory and store/postgres.
package storetest

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/store"
	"github.com/perfectpay/perfectpay/store/repos"
)

// Tx is everything a backend transaction must implement: every domain's
// repository (see store/repos). Each domain adds its tests in a file of
// this package.
type Tx = repos.Tx

// Backend is a backend under test.
type Backend[X Tx] interface {
	store.Backend[X]
}

// Run runs the whole suite. newBackend returns a fresh, empty backend.
func Run[X Tx](t *testing.T, newBackend func(t *testing.T) store.Backend[X]) {
	tests := []struct {
		name string
		fn   func(t *testing.T, b store.Backend[X])
	}{
		{"Tenants", testTenants[X]},
		{"APIKeys", testAPIKeys[X]},
		{"Users", testUsers[X]},
		{"Rollback", testRollback[X]},
		{"Savepoint", testSavepoint[X]},
		{"IdempotencyRace", testIdempotencyRace[X]},
		{"IdempotencyLifecycle", testIdempotencyLifecycle[X]},
		{"IdempotencyAbandon", testIdempotencyAbandon[X]},
		{"AcquirerLedger", testAcquirerLedger[X]},
		{"AcquirerShared", testAcquirerShared[X]},
		{"AuditChain", testAuditChain[X]},
		{"WebhookEndpoints", testWebhookEndpoints[X]},
		{"WebhookFanOut", testWebhookFanOut[X]},
		{"WebhookClaims", testWebhookClaims[X]},
		{"WebhookEventsAndAttempts", testWebhookEventsAndAttempts[X]},
		{"AuthzAgents", testAuthzAgents[X]},
		{"AuthzJTI", testAuthzJTI[X]},
		{"AuthzTokens", testAuthzTokens[X]},
		{"AuthzRevocations", testAuthzRevocations[X]},
		{"AuthzSigningKeys", testAuthzSigningKeys[X]},
		{"AuthzDelegations", testAuthzDelegations[X]},
		{"AuthzRollback", testAuthzRollback[X]},
		{"AuthRequests", testAuthRequests[X]},
		{"ClientDomains", testClientDomains[X]},
		{"VaultKeys", testVaultKeys[X]},
		{"VaultCycle", testVaultCycle[X]},
		{"Charges", testCharges[X]},
		{"UpdateChargeWritesItsState", testUpdateChargeWritesItsState[X]},
		{"ChargeTimeouts", testChargeTimeouts[X]},
		{"Mandates", testMandates[X]},
		{"MandateReserve", testMandateReserve[X]},
		{"MandateReserveRace", testMandateReserveRace[X]},
		{"MandateRevokeTree", testMandateRevokeTree[X]},
		{"MandateEvents", testMandateEvents[X]},
		{"Merchants", testMerchants[X]},
		{"MerchantDomainProofs", testMerchantDomainProofs[X]},
		{"SecretCanaries", testSecretCanaries[X]},
		{"PipelineApprovals", testPipelineApprovals[X]},
		{"PipelineDecisions", testPipelineDecisions[X]},
		{"PipelineHolds", testPipelineHolds[X]},
		{"LedgerRefunds", testLedgerRefunds[X]},
		{"LedgerClaims", testLedgerClaims[X]},
		{"RevokedBetweenVerificationAndReservation", testRevokedBetweenVerificationAndReservation[X]},
		{"AuditQuery", testAuditQuery[X]},
		{"ComplianceRecords", testComplianceRecords[X]},
		{"TenantVerifications", testTenantVerifications[X]},
		{"TenantCountries", testTenantCountries[X]},
		{"AgentAnomalies", testAgentAnomalies[X]},
		{"RetentionDecisions", testRetentionDecisions[X]},
		{"RetentionConcurrentSweeps", testRetentionConcurrentSweeps[X]},
		{"RetentionSessions", testRetentionSessions[X]},
		{"RetentionCardTokens", testRetentionCardTokens[X]},
		{"RetentionCharges", testRetentionCharges[X]},
		{"RetentionIdempotency", testRetentionIdempotency[X]},
		{"RetentionNeedsItsEntry", testRetentionNeedsItsEntry[X]},
		{"ForgetEventIPs", testForgetEventIPs[X]},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, newBackend(t))
		})
	}
}

// in runs fn in a transaction of b and fails the test on error.
func in[X Tx](t *testing.T, b store.Backend[X], fn func(tx X) error) {
	t.Helper()
	require.NoError(t, b.InTx(context.Background(), fn))
}

var errBoom = errors.New("boom")

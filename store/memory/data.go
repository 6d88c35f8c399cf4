package memory

import (
	"github.com/perfectpay/perfectpay/accounts"
	"github.com/perfectpay/perfectpay/audit"
	"github.com/perfectpay/perfectpay/authz"
	"github.com/perfectpay/perfectpay/events"
	"github.com/perfectpay/perfectpay/fraud"
	"github.com/perfectpay/perfectpay/idempotency"
)

// data is every table of the memory store. Each domain adds its tables here
// and its methods in a file of its own.
type data struct {
	tenants   table[string, accounts.Tenant]
	apiKeys   table[string, accounts.APIKey]
	keyByHash table[string, string]
	// keysByTenant holds every API key by tenant, creation, then id: a
	// tenant's list reads its keys, not every key (see putAPIKey).
	keysByTenant *ordered[tenantTimed]

	auditEntries table[int64, auditRec] // audit_rec.go
	auditSeq     int64
	auditHead    audit.Anchor
	auditAnchor  audit.Anchor
	auditLog     auditData // stripe, keys, checkpoints, retention records

	idem table[idemKey, idempotency.Record]

	events     table[string, events.Event]
	eventOrder []string
	webhooks   webhookTables

	authz        *authzData
	authRequests authRequests // requests waiting for a payer (consent, CIBA)
	// authReqByPayer holds every such request by tenant, payer, newest
	// first: a payer's list reads the payer's requests (see putAuthRequest).
	authReqByPayer *ordered[payerRequest]

	clientDomains table[string, authz.ClientDomain] // hosts of URL client ids, by host
	// domainsByTenant lists each tenant's client domains, ascending: a
	// tenant's list reads its domains, not every domain.
	domainsByTenant table[string, []string]

	vault    *vaultData    // tenant keys and card tokens
	payments *paymentsData // charges and refunds

	mandates *mandateData // mandates, their history, merchant profiles

	canaries table[string, sealedCanary] // one per server-wide secret (internal/canary)

	anomalies table[anomalyKey, fraud.Flag] // standing anomaly flags, one per agent

	pipeline pipelineData // decisions, approvals, charge holds

	acquirer acquirerData // the simulated acquirer's ledger

	people *peopleData // users, invitations, recovery codes, sessions

	tenantCountries table[string, accounts.TenantCountries] // each tenant's own allowed countries
}

func newData() *data {
	return &data{
		tenants:      table[string, accounts.Tenant]{},
		apiKeys:      table[string, accounts.APIKey]{},
		keyByHash:    table[string, string]{},
		keysByTenant: newOrdered(compareTenantTimed, nil),
		auditEntries: table[int64, auditRec]{},
		idem:         table[idemKey, idempotency.Record]{},
		events:       table[string, events.Event]{},
		webhooks:     newWebhookTables(),
		authz:        newAuthzData(),
		authRequests: authRequests{},
		vault:        newVaultData(),
		payments:     newPaymentsData(),
		mandates:     newMandateData(),
		canaries:     table[string, sealedCanary]{},
		pipeline:     newPipelineData(),
		acquirer:     newAcquirerData(),
		people:       newPeopleData(),

		tenantCountries: table[string, accounts.TenantCountries]{},
		authReqByPayer:  newOrdered(comparePayerRequests, nil),
		domainsByTenant: table[string, []string]{},
	}
}

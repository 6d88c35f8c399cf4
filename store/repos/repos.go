// Package repos lists every domain's repository: what one transaction of a
// storage backend implements. The application wires its services from a
// backend whose transaction is a Tx, the conformance suite runs against
// one, and each backend asserts at compile time that its transaction is
// one, so a domain added here and missing from a backend fails to build.
package repos

import (
	"github.com/perfectpay/perfectpay/accounts"
	"github.com/perfectpay/perfectpay/audit"
	"github.com/perfectpay/perfectpay/authz"
	"github.com/perfectpay/perfectpay/charging"
	"github.com/perfectpay/perfectpay/compliance"
	"github.com/perfectpay/perfectpay/events"
	"github.com/perfectpay/perfectpay/fraud"
	"github.com/perfectpay/perfectpay/idempotency"
	"github.com/perfectpay/perfectpay/internal/canary"
	"github.com/perfectpay/perfectpay/mandates"
	"github.com/perfectpay/perfectpay/merchants"
	"github.com/perfectpay/perfectpay/payments"
	"github.com/perfectpay/perfectpay/retention"
	"github.com/perfectpay/perfectpay/vault"
	"github.com/perfectpay/perfectpay/webhooks"
)

// Tx is every repository of every domain. A domain adds its repository
// here (and its tests to store/storetest).
type Tx interface {
	accounts.Repo
	accounts.UserRepo
	accounts.PasskeyRepo
	accounts.TenantCountriesRepo
	audit.Repo
	idempotency.Repo
	events.Outbox
	webhooks.Repo
	authz.Repo
	authz.ClientDomainRepo
	vault.Repo
	payments.Repo
	payments.AcquirerRepo
	mandates.Repo
	merchants.Repo
	charging.Repo
	compliance.Repo
	canary.Repo
	fraud.Repo
	retention.Repo
}

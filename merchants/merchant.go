// Package merchants holds merchant profiles. A tenant that sells has one:
// its display name, merchant category code, country and website domains.
// An agent charge names its merchant by account id (acct_…), and the charge
// policy reads these facts from the profile, never from the agent's request.
//
// It is a package of its own rather than part of accounts because it is a
// public, commerce-facing directory (looked up by id or domain by every
// tenant and by the policy) with its own id space, while accounts is about
// who may authenticate; the charge pipeline then depends on merchants.Repo
// alone, not on API keys.
package merchants

import (
	"context"
	"slices"
	"time"
)

// Merchant is a tenant's merchant profile.
type Merchant struct {
	ID          string `json:"id"` // acct_…
	TenantID    string `json:"-"`
	DisplayName string `json:"display_name"`
	// MCC is the ISO 18245 merchant category code.
	MCC string `json:"mcc"`
	// Country is the ISO 3166-1 alpha-2 code of the merchant's country.
	Country string `json:"country"`
	// Domains are the merchant's website domains. Only verified ones count
	// for a mandate's allowed_merchants: anyone can claim a domain.
	Domains   []Domain  `json:"domains"`
	CreatedAt time.Time `json:"created"`
	UpdatedAt time.Time `json:"updated"`
}

// Domain is a website domain a merchant claims, and the state of its
// verification (see Checker).
type Domain struct {
	Name       string     `json:"domain"`
	VerifiedAt *time.Time `json:"verified_at"`
	// Token is the challenge the merchant publishes to prove control of
	// the domain; TokenExpiresAt bounds when a first proof may use it.
	Token          string     `json:"-"`
	TokenExpiresAt *time.Time `json:"-"`
	// Method is how the domain was proven (MethodDNS, MethodHTTPS) or
	// MethodOperator when it was marked verified without a proof (dev
	// seeding, operators); only proven domains are re-checked.
	Method string `json:"-"`
	// CheckedAt is the last check; NextCheckAt the next re-verification
	// (nil: never re-checked); FailedChecks counts failed re-checks in a row.
	CheckedAt    *time.Time `json:"-"`
	NextCheckAt  *time.Time `json:"-"`
	FailedChecks int        `json:"-"`
}

// Verification methods.
const (
	MethodDNS      = "dns"
	MethodHTTPS    = "https"
	MethodOperator = "operator"
)

// Verified reports whether d was verified.
func (d Domain) Verified() bool { return d.VerifiedAt != nil }

// VerifiedDomains returns the names of the merchant's verified domains.
func (m *Merchant) VerifiedDomains() []string {
	out := []string{}
	for _, d := range m.Domains {
		if d.Verified() {
			out = append(out, d.Name)
		}
	}
	return out
}

// Clone returns a deep copy.
func (m *Merchant) Clone() *Merchant {
	c := *m
	c.Domains = slices.Clone(m.Domains)
	for i, d := range c.Domains {
		c.Domains[i].VerifiedAt = clonePtr(d.VerifiedAt)
		c.Domains[i].TokenExpiresAt = clonePtr(d.TokenExpiresAt)
		c.Domains[i].CheckedAt = clonePtr(d.CheckedAt)
		c.Domains[i].NextCheckAt = clonePtr(d.NextCheckAt)
	}
	return &c
}

func clonePtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	v := *t
	return &v
}

// DomainRef names one domain of one merchant.
type DomainRef struct {
	MerchantID string
	TenantID   string
	Domain     string
}

// Repo is the storage merchant profiles need.
type Repo interface {
	// CreateMerchant inserts a profile; store.ErrConflict when the tenant
	// already has one, or when another merchant verified one of its domains.
	CreateMerchant(ctx context.Context, m *Merchant) error
	// UpdateMerchant replaces the profile's fields and domains.
	UpdateMerchant(ctx context.Context, m *Merchant) error
	GetMerchant(ctx context.Context, id string) (*Merchant, error)
	// LockMerchant locks the profile for the rest of the transaction
	// (store.ErrNotFound): a change reads it after the lock, so changes of
	// one profile never undo each other.
	LockMerchant(ctx context.Context, id string) error
	GetMerchantByTenant(ctx context.Context, tenantID string) (*Merchant, error)
	// FindMerchantsByDomain returns the merchants that verified domain.
	FindMerchantsByDomain(ctx context.Context, domain string) ([]Merchant, error)
	// DueDomainChecks returns up to limit verified domains whose next
	// re-verification is at or before now, the most overdue first.
	DueDomainChecks(ctx context.Context, now time.Time, limit int) ([]DomainRef, error)
	// ClaimDomainCheck moves a due check of a verified domain (next check
	// at or before now) to until, and reports whether it did: of several
	// nodes sweeping at once, one checks each domain.
	ClaimDomainCheck(ctx context.Context, merchantID, domain string, now, until time.Time) (bool, error)
}

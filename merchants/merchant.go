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

// Domain is a website domain a merchant claims.
type Domain struct {
	Name       string     `json:"domain"`
	VerifiedAt *time.Time `json:"verified_at"`
}

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
		if d.VerifiedAt != nil {
			v := *d.VerifiedAt
			c.Domains[i].VerifiedAt = &v
		}
	}
	return &c
}

// Repo is the storage merchant profiles need.
type Repo interface {
	// CreateMerchant inserts a profile; store.ErrConflict when the tenant
	// already has one, or when another merchant verified one of its domains.
	CreateMerchant(ctx context.Context, m *Merchant) error
	// UpdateMerchant replaces the profile's fields and domains.
	UpdateMerchant(ctx context.Context, m *Merchant) error
	GetMerchant(ctx context.Context, id string) (*Merchant, error)
	GetMerchantByTenant(ctx context.Context, tenantID string) (*Merchant, error)
	// FindMerchantsByDomain returns the merchants that verified domain.
	FindMerchantsByDomain(ctx context.Context, domain string) ([]Merchant, error)
}

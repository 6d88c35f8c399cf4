package accounts

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/perfectpay/perfectpay/audit"
	"github.com/perfectpay/perfectpay/internal/apierr"
	"github.com/perfectpay/perfectpay/internal/country"
	"github.com/perfectpay/perfectpay/store"
)

// TenantCountries is a tenant's own restriction of where its agents may
// pay: the charge policy denies a charge at a merchant whose country is
// not in AllowedCountries. An empty list restricts nothing.
//
// OperatorCountries is the platform operator's bound (the jurisdictions
// the tenant may operate in): the tenant's own list may name only those,
// and while the tenant's list is empty (or, after the operator narrowed
// the bound, holds none of them) the bound itself restricts the charges.
// Empty: no bound.
type TenantCountries struct {
	TenantID          string    `json:"tenant"`
	AllowedCountries  []string  `json:"allowed_countries"`
	OperatorCountries []string  `json:"operator_countries"`
	Updated           time.Time `json:"updated"`
}

// CodeCountryNotPermitted refuses a tenant's allowed country outside the
// operator's bound.
const CodeCountryNotPermitted apierr.Code = "country_not_permitted"

// EffectiveCountries is the list the charge policy enforces: the tenant's
// own list within the operator's bound; the bound when the tenant's list
// is empty or holds none of it; the tenant's list when there is no bound.
// Empty means unrestricted.
func EffectiveCountries(tenant, operator []string) []string {
	if len(operator) == 0 {
		return tenant
	}
	var in []string
	for _, c := range tenant {
		if slices.Contains(operator, c) {
			in = append(in, c)
		}
	}
	if len(in) == 0 {
		return slices.Clone(operator)
	}
	return in
}

// TenantCountriesRepo stores tenants' allowed countries.
type TenantCountriesRepo interface {
	// GetTenantCountries returns a tenant's list (store.ErrNotFound when
	// none was ever set: unrestricted).
	GetTenantCountries(ctx context.Context, tenantID string) (*TenantCountries, error)
	PutTenantCountries(ctx context.Context, c *TenantCountries) error
	// GetTenantWithCountries is GetTenant and GetTenantCountries in one
	// read (the charge pipeline needs both on every charge): the list is
	// nil when none was set.
	GetTenantWithCountries(ctx context.Context, tenantID string) (*Tenant, []string, error)
}

// TenantCountriesTx is what setting the list touches.
type TenantCountriesTx interface {
	TenantCountriesRepo
	GetTenant(ctx context.Context, id string) (*Tenant, error)
	audit.Writer
}

// Countries keeps tenants' allowed countries.
type Countries struct {
	db  store.Runner[TenantCountriesTx]
	now func() time.Time
}

// NewCountries returns the allowed-countries service.
func NewCountries(db store.Runner[TenantCountriesTx]) *Countries {
	return &Countries{db: db, now: time.Now}
}

// maxAllowedCountries bounds the list (there are fewer than 250 codes).
const maxAllowedCountries = 250

// NormalizeCountries validates ISO 3166-1 alpha-2 codes (any case) and
// returns them upper-cased, sorted and without repeats.
func NormalizeCountries(param string, codes []string) ([]string, error) {
	if len(codes) > maxAllowedCountries {
		return nil, apierr.BadParam(param, "%s takes at most %d countries.", param, maxAllowedCountries)
	}
	out := make([]string, 0, len(codes))
	for _, c := range codes {
		u := strings.ToUpper(strings.TrimSpace(c))
		if !country.Valid(u) {
			return nil, apierr.BadParam(param, "%s must hold ISO 3166-1 alpha-2 codes such as GB; %q is not one.", param, truncate(c, 8))
		}
		out = append(out, u)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// Set replaces the tenant's allowed countries (empty: unrestricted, or
// the operator's bound when there is one), audited as
// tenant.countries_set with the list it replaced. A country outside the
// operator's bound is refused (country_not_permitted).
func (s *Countries) Set(ctx context.Context, tenantID string, codes []string) (*TenantCountries, error) {
	list, err := NormalizeCountries("allowed_countries", codes)
	if err != nil {
		return nil, err
	}
	return s.update(ctx, tenantID, "tenant.countries_set", func(c *TenantCountries) (map[string]any, error) {
		if bound := c.OperatorCountries; len(bound) > 0 {
			for _, code := range list {
				if !slices.Contains(bound, code) {
					return nil, apierr.Invalidf("allowed_countries", CodeCountryNotPermitted,
						"%s is outside the countries the platform operator permits this tenant (%s).", code, strings.Join(bound, ", "))
				}
			}
		}
		from := c.AllowedCountries
		c.AllowedCountries = list
		return map[string]any{"from": from, "allowed_countries": list}, nil
	})
}

// SetOperatorBound replaces the platform operator's bound of the tenant's
// countries (empty: no bound), audited as tenant.jurisdictions_set with
// the bound it replaced. The tenant's own list is kept; the policy
// enforces it within the new bound (EffectiveCountries).
func (s *Countries) SetOperatorBound(ctx context.Context, tenantID string, codes []string) (*TenantCountries, error) {
	bound, err := NormalizeCountries("countries", codes)
	if err != nil {
		return nil, err
	}
	return s.update(ctx, tenantID, "tenant.jurisdictions_set", func(c *TenantCountries) (map[string]any, error) {
		from := c.OperatorCountries
		c.OperatorCountries = bound
		return map[string]any{"from": from, "countries": bound}, nil
	})
}

// update reads the tenant's countries (empty lists when none were set),
// lets change edit them and name what the audit entry records, and
// stores them with that entry, in one transaction.
func (s *Countries) update(ctx context.Context, tenantID, action string, change func(*TenantCountries) (map[string]any, error)) (*TenantCountries, error) {
	var c TenantCountries
	err := s.db.InTx(ctx, func(tx TenantCountriesTx) error {
		if _, err := tx.GetTenant(ctx, tenantID); err != nil {
			return err
		}
		c = TenantCountries{TenantID: tenantID, AllowedCountries: []string{}, OperatorCountries: []string{},
			Updated: s.now().UTC().Truncate(time.Microsecond)}
		cur, err := tx.GetTenantCountries(ctx, tenantID)
		switch {
		case err == nil:
			c.AllowedCountries, c.OperatorCountries = cur.AllowedCountries, cur.OperatorCountries
		case !errors.Is(err, store.ErrNotFound):
			return err
		}
		data, err := change(&c)
		if err != nil {
			return err
		}
		if err := tx.PutTenantCountries(ctx, &c); err != nil {
			return err
		}
		return audit.RecordFor(ctx, tx, tenantID, action, tenantID, data)
	})
	if err != nil {
		return nil, err
	}
	return &c, nil
}

// Get returns the tenant's allowed countries (an empty list when none
// was set).
func (s *Countries) Get(ctx context.Context, tenantID string) (*TenantCountries, error) {
	var c *TenantCountries
	err := s.db.InTx(ctx, func(tx TenantCountriesTx) error {
		var err error
		c, err = tx.GetTenantCountries(ctx, tenantID)
		if errors.Is(err, store.ErrNotFound) {
			c, err = &TenantCountries{TenantID: tenantID, AllowedCountries: []string{}, OperatorCountries: []string{}}, nil
		}
		return err
	})
	return c, err
}

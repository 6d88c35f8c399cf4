package merchants

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/perfectpay/perfectpay/audit"
	"github.com/perfectpay/perfectpay/events"
	"github.com/perfectpay/perfectpay/internal/apierr"
	"github.com/perfectpay/perfectpay/internal/country"
	"github.com/perfectpay/perfectpay/internal/ids"
	"github.com/perfectpay/perfectpay/internal/page"
	"github.com/perfectpay/perfectpay/mandates"
	"github.com/perfectpay/perfectpay/store"
)

// Tx is what a merchants transaction can touch.
type Tx interface {
	Repo
	audit.Writer
	events.Outbox
}

// MaxDomains bounds a profile's domains.
const MaxDomains = 20

// Service manages merchant profiles.
type Service struct {
	db store.Runner[Tx]
	// clock replaces time.Now in tests (SetClock).
	clock atomic.Pointer[func() time.Time]
	// check proves domains (NewService; tests replace it with SetChecker).
	check atomic.Pointer[Checker]
}

// NewService returns the merchants service.
func NewService(db store.Runner[Tx], check *Checker) *Service {
	s := &Service{db: db}
	s.check.Store(check)
	return s
}

// SetChecker replaces how domains are proven (tests with a fake resolver
// and a local HTTPS server).
func (s *Service) SetChecker(c *Checker) { s.check.Store(c) }

// SetClock replaces the service's clock (tests).
func (s *Service) SetClock(now func() time.Time) { s.clock.Store(&now) }

func (s *Service) now() time.Time {
	if c := s.clock.Load(); c != nil {
		return (*c)()
	}
	return time.Now()
}

func (s *Service) checker() *Checker { return s.check.Load() }

// Profile is what a tenant sets about itself.
type Profile struct {
	DisplayName string
	MCC         string
	Country     string
	Domains     []string
}

// Normalize trims and cases the profile's fields.
func (p *Profile) Normalize() {
	p.DisplayName = strings.TrimSpace(p.DisplayName)
	p.MCC = strings.TrimSpace(p.MCC)
	p.Country = strings.ToUpper(strings.TrimSpace(p.Country))
	for i, d := range p.Domains {
		p.Domains[i] = mandates.NormalizeDomain(d)
	}
	slices.Sort(p.Domains)
	p.Domains = slices.Compact(p.Domains)
}

// Validate returns the first problem as an *apierr.Invalid.
func (p *Profile) Validate() error {
	bad := func(param string, code apierr.Code, format string, args ...any) error {
		return apierr.Invalidf(param, code, format, args...)
	}
	switch {
	case p.DisplayName == "":
		return bad("display_name", apierr.ParameterMissing, "display_name is required: the name payers see.")
	case !utf8.ValidString(p.DisplayName) || utf8.RuneCountInString(p.DisplayName) > 100:
		return bad("display_name", apierr.ParameterInvalid, "display_name must be at most 100 characters.")
	case p.MCC == "":
		return bad("mcc", apierr.ParameterMissing, "mcc is required: your ISO 18245 merchant category code.")
	case !mandates.ValidMCC(p.MCC):
		return bad("mcc", apierr.ParameterInvalid, "mcc must be an ISO 18245 merchant category code (4 digits).")
	case p.Country == "":
		return bad("country", apierr.ParameterMissing, "country is required (ISO 3166-1 alpha-2).")
	case !country.Valid(p.Country):
		return bad("country", apierr.ParameterInvalid, "country %q is not an ISO 3166-1 alpha-2 code.", p.Country)
	case len(p.Domains) > MaxDomains:
		return bad("domains", apierr.ParameterInvalid, "at most %d domains.", MaxDomains)
	}
	for _, d := range p.Domains {
		if !mandates.ValidDomain(d) {
			return bad("domains", apierr.ParameterInvalid, "%q is not a domain name (e.g. shop.example.com, without scheme or path).", d)
		}
	}
	return nil
}

// ErrDomainTaken means another merchant verified one of the domains.
var ErrDomainTaken = errors.New("merchants: domain verified by another merchant")

// Put creates or replaces the tenant's own profile. Domains the profile
// already had keep their verification; new ones start unverified.
func (s *Service) Put(ctx context.Context, tenantID string, p Profile) (m *Merchant, created bool, err error) {
	p.Normalize()
	if err := p.Validate(); err != nil {
		return nil, false, err
	}
	now := s.now().UTC().Truncate(time.Microsecond)
	err = s.db.InTx(ctx, func(tx Tx) error {
		old, err := tx.GetMerchantByTenant(ctx, tenantID)
		if err == nil {
			// Read again under the lock: a domain check may be writing it.
			if err = tx.LockMerchant(ctx, old.ID); err == nil {
				old, err = tx.GetMerchant(ctx, old.ID)
			}
		}
		switch {
		case errors.Is(err, store.ErrNotFound):
			created = true
			m = &Merchant{ID: ids.New("acct"), TenantID: tenantID, CreatedAt: now}
		case err != nil:
			return err
		default:
			m = old
		}
		// A domain kept keeps its whole state: verification, proof and
		// re-check schedule (an update must not stop its re-checks).
		kept := map[string]Domain{}
		for _, d := range m.Domains {
			kept[d.Name] = d
		}
		m.DisplayName, m.MCC, m.Country, m.UpdatedAt = p.DisplayName, p.MCC, p.Country, now
		m.Domains = make([]Domain, 0, len(p.Domains))
		for _, d := range p.Domains {
			if old, ok := kept[d]; ok {
				m.Domains = append(m.Domains, old)
				continue
			}
			m.Domains = append(m.Domains, Domain{Name: d})
		}
		if created {
			err = tx.CreateMerchant(ctx, m)
		} else {
			err = tx.UpdateMerchant(ctx, m)
		}
		if err != nil {
			return err
		}
		action := "merchant.updated"
		if created {
			action = "merchant.created"
		}
		if err := audit.Record(ctx, tx, action, m.ID, map[string]any{"display_name": m.DisplayName, "mcc": m.MCC, "country": m.Country, "domains": p.Domains}); err != nil {
			return err
		}
		return events.Emit(ctx, tx, tenantID, action, m)
	})
	if err != nil {
		return nil, false, err
	}
	return m, created, nil
}

// VerifyDomain marks domain of merchant id as verified without a proof
// (MethodOperator: operators and dev-mode seeding; such a domain is not
// re-checked). Merchants prove domains with StartVerification and Verify.
// ErrDomainTaken when another merchant holds it verified.
func (s *Service) VerifyDomain(ctx context.Context, id, domain string) (*Merchant, error) {
	domain = mandates.NormalizeDomain(domain)
	var m *Merchant
	err := s.db.InTx(ctx, func(tx Tx) error {
		if err := tx.LockMerchant(ctx, id); err != nil {
			return err
		}
		var err error
		if m, err = tx.GetMerchant(ctx, id); err != nil {
			return err
		}
		i := slices.IndexFunc(m.Domains, func(d Domain) bool { return d.Name == domain })
		if i < 0 {
			return fmt.Errorf("%w: merchant %s does not claim %s", store.ErrNotFound, id, domain)
		}
		if m.Domains[i].Verified() {
			return nil
		}
		now := s.now().UTC().Truncate(time.Microsecond)
		m.Domains[i].VerifiedAt, m.Domains[i].Method, m.UpdatedAt = &now, MethodOperator, now
		if err := tx.UpdateMerchant(ctx, m); errors.Is(err, store.ErrConflict) {
			return ErrDomainTaken
		} else if err != nil {
			return err
		}
		return audit.RecordFor(ctx, tx, m.TenantID, "merchant.domain_verified", m.ID, map[string]any{"domain": domain})
	})
	return m, err
}

// Get returns a merchant by account id.
func (s *Service) Get(ctx context.Context, id string) (*Merchant, error) {
	var m *Merchant
	err := s.db.InTx(ctx, func(tx Tx) error {
		var err error
		m, err = tx.GetMerchant(ctx, id)
		return err
	})
	return m, err
}

// Mine returns the tenant's own profile.
func (s *Service) Mine(ctx context.Context, tenantID string) (*Merchant, error) {
	var m *Merchant
	err := s.db.InTx(ctx, func(tx Tx) error {
		var err error
		m, err = tx.GetMerchantByTenant(ctx, tenantID)
		return err
	})
	return m, err
}

// FindByDomain returns the merchants that verified domain.
func (s *Service) FindByDomain(ctx context.Context, domain string) ([]Merchant, error) {
	var out []Merchant
	err := s.db.InTx(ctx, func(tx Tx) error {
		var err error
		out, err = tx.FindMerchantsByDomain(ctx, mandates.NormalizeDomain(domain))
		return err
	})
	return out, err
}

// List returns a page of the tenant's own merchant profiles ordered by
// id (store.ErrNotFound when p.StartingAfter is not one of them). A tenant
// holds one profile today; the page shape is that of every list, so a
// client pages the same way if that changes.
func (s *Service) List(ctx context.Context, tenantID string, p page.Page) ([]Merchant, bool, error) {
	if err := page.Check(p.Limit); err != nil {
		return nil, false, err
	}
	startingAfter := p.StartingAfter
	m, err := s.Mine(ctx, tenantID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		if startingAfter != "" {
			return nil, false, store.ErrNotFound
		}
		return []Merchant{}, false, nil
	case err != nil:
		return nil, false, err
	case startingAfter == m.ID:
		return []Merchant{}, false, nil
	case startingAfter != "":
		return nil, false, store.ErrNotFound
	}
	return []Merchant{*m}, false, nil
}

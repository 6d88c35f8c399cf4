package mandates

import (
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/perfectpay/perfectpay/internal/apierr"
	"github.com/perfectpay/perfectpay/internal/country"
	"github.com/perfectpay/perfectpay/internal/money"
)

// Error codes of the *apierr.Invalid a validation returns. The HTTP layer
// answers it with a 400 invalid_request_error naming Param; the OAuth layer
// with invalid_authorization_details.
const (
	CodeMissing = apierr.ParameterMissing
	CodeInvalid = apierr.ParameterInvalid
	// CodeWidens: a child mandate's field is wider than its parent's.
	CodeWidens apierr.Code = "mandate_widens_parent"
)

func missing(param, format string, args ...any) *apierr.Invalid {
	return apierr.MissingParam(param, format, args...)
}

func invalid(param, format string, args ...any) *apierr.Invalid {
	return apierr.BadParam(param, format, args...)
}

// Bounds on list sizes and texts.
const (
	MaxListLen        = 100
	MaxDescriptionLen = 1000
	MaxRefLen         = 255
	MaxChargesLimit   = 1_000_000_000
)

var (
	tokenRe    = regexp.MustCompile(`^tok_[A-Za-z0-9]{1,64}$`)
	accountRe  = regexp.MustCompile(`^acct_[A-Za-z0-9]{1,64}$`)
	mccRe      = regexp.MustCompile(`^[0-9]{4}$`)
	domainPart = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
)

// ValidDomain reports whether d is a lower-case DNS host name with at least
// two labels (e.g. "books.example.com"); no scheme, port, path or wildcard.
func ValidDomain(d string) bool {
	if len(d) == 0 || len(d) > 253 {
		return false
	}
	labels := strings.Split(d, ".")
	if len(labels) < 2 {
		return false
	}
	for _, l := range labels {
		if !domainPart.MatchString(l) {
			return false
		}
	}
	// The top-level label is never all digits (that would be an IP address).
	return strings.IndexFunc(labels[len(labels)-1], func(r rune) bool { return r < '0' || r > '9' }) >= 0
}

// NormalizeDomain lower-cases d and drops one trailing dot.
func NormalizeDomain(d string) string {
	return strings.TrimSuffix(strings.ToLower(strings.TrimSpace(d)), ".")
}

// ValidMCC reports whether s is an ISO 18245 merchant category code (four digits).
func ValidMCC(s string) bool { return mccRe.MatchString(s) }

// IsMerchantID reports whether s has the shape of a merchant account id.
func IsMerchantID(s string) bool { return accountRe.MatchString(s) }

// Normalize puts the limits in canonical form: upper-case currency and
// countries, lower-case domains, sorted de-duplicated sets, times in UTC
// at microsecond precision. Validate expects normalized limits.
func (l *Limits) Normalize() {
	l.Currency = strings.ToUpper(strings.TrimSpace(l.Currency))
	l.Period = strings.ToLower(strings.TrimSpace(l.Period))
	l.PaymentMethods = normSet(l.PaymentMethods, strings.TrimSpace)
	l.AllowedMerchants = normSet(l.AllowedMerchants, func(s string) string {
		s = strings.TrimSpace(s)
		if strings.HasPrefix(s, "acct_") {
			return s
		}
		return NormalizeDomain(s)
	})
	l.AllowedCategories = normSet(l.AllowedCategories, strings.TrimSpace)
	l.BlockedCategories = normSet(l.BlockedCategories, strings.TrimSpace)
	l.AllowedCountries = normSet(l.AllowedCountries, func(s string) string { return strings.ToUpper(strings.TrimSpace(s)) })
	l.ValidFrom = normTime(l.ValidFrom)
	l.ValidUntil = normTime(l.ValidUntil)
}

// normSet maps, sorts and de-duplicates s. An empty but present list stays
// present (non-nil) so that Validate can refuse it.
func normSet(s []string, f func(string) string) []string {
	if s == nil {
		return nil
	}
	out := make([]string, 0, len(s))
	for _, v := range s {
		out = append(out, f(v))
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func normTime(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	v := t.UTC().Truncate(time.Microsecond)
	return &v
}

// Validate checks normalized limits and returns the first problem as a
// *apierr.Invalid (nil when valid). prefix is prepended to parameter names
// (e.g. "authorization_details[0].").
func (l *Limits) Validate(prefix string) error {
	p := func(name string) string { return prefix + name }
	amount := func(name string, v int64, min int64) error {
		if v < min || v > money.MaxAmount {
			return invalid(p(name), "%s must be between %d and %d (minor units of the currency).", name, min, money.MaxAmount)
		}
		return nil
	}
	switch {
	case l.Currency == "":
		return missing(p("currency"), "currency is required (an ISO 4217 code such as USD).")
	case !money.Valid(l.Currency):
		return invalid(p("currency"), "currency %q is not a supported ISO 4217 currency code.", l.Currency)
	}
	if l.Budget == 0 {
		return missing(p("budget"), "budget is required: the most the mandate may ever spend, in minor units.")
	}
	if err := amount("budget", l.Budget, 1); err != nil {
		return err
	}
	if l.MaxAmountPerCharge != nil {
		if err := amount("max_amount_per_charge", *l.MaxAmountPerCharge, 1); err != nil {
			return err
		}
		if *l.MaxAmountPerCharge > l.Budget {
			return invalid(p("max_amount_per_charge"), "max_amount_per_charge (%s) exceeds the budget (%s).",
				money.Format(*l.MaxAmountPerCharge, l.Currency), money.Format(l.Budget, l.Currency))
		}
	}
	switch l.Period {
	case "":
		if l.PeriodBudget != nil {
			return missing(p("period"), "period_budget needs a period (day, week or month).")
		}
	case PeriodDay, PeriodWeek, PeriodMonth:
		if l.PeriodBudget == nil {
			return missing(p("period_budget"), "period %s needs a period_budget.", l.Period)
		}
		if err := amount("period_budget", *l.PeriodBudget, 1); err != nil {
			return err
		}
		if *l.PeriodBudget > l.Budget {
			return invalid(p("period_budget"), "period_budget (%s) exceeds the budget (%s).",
				money.Format(*l.PeriodBudget, l.Currency), money.Format(l.Budget, l.Currency))
		}
	default:
		return invalid(p("period"), "period must be day, week or month (got %q).", l.Period)
	}
	if l.MaxCharges != nil && (*l.MaxCharges < 1 || *l.MaxCharges > MaxChargesLimit) {
		return invalid(p("max_charges"), "max_charges must be between 1 and %d.", MaxChargesLimit)
	}
	if len(l.PaymentMethods) == 0 {
		return missing(p("payment_methods"), "payment_methods must name at least one card token (tok_…) the mandate may charge.")
	}
	if err := checkSet(p("payment_methods"), l.PaymentMethods, tokenRe.MatchString, "a card token (tok_…)"); err != nil {
		return err
	}
	if err := checkSet(p("allowed_merchants"), l.AllowedMerchants, func(s string) bool {
		return IsMerchantID(s) || ValidDomain(s)
	}, "a merchant account id (acct_…) or a domain name"); err != nil {
		return err
	}
	if err := checkSet(p("allowed_categories"), l.AllowedCategories, ValidMCC, "an ISO 18245 merchant category code (4 digits)"); err != nil {
		return err
	}
	if err := checkSet(p("blocked_categories"), l.BlockedCategories, ValidMCC, "an ISO 18245 merchant category code (4 digits)"); err != nil {
		return err
	}
	for _, c := range l.BlockedCategories {
		if slices.Contains(l.AllowedCategories, c) {
			return invalid(p("blocked_categories"), "category %s is both allowed and blocked.", c)
		}
	}
	if err := checkSet(p("allowed_countries"), l.AllowedCountries, country.Valid, "an ISO 3166-1 alpha-2 country code"); err != nil {
		return err
	}
	if l.ValidFrom != nil && l.ValidUntil != nil && !l.ValidFrom.Before(*l.ValidUntil) {
		return invalid(p("valid_until"), "valid_until must be after valid_from.")
	}
	if l.ApprovalThreshold != nil {
		if err := amount("approval_threshold", *l.ApprovalThreshold, 0); err != nil {
			return err
		}
	}
	return nil
}

func checkSet(param string, set []string, ok func(string) bool, what string) error {
	if set == nil {
		return nil
	}
	if len(set) == 0 {
		return invalid(param, "%s must not be an empty list; omit it to leave it unrestricted.", param)
	}
	if len(set) > MaxListLen {
		return invalid(param, "%s has more than %d entries.", param, MaxListLen)
	}
	for _, v := range set {
		if !ok(v) {
			return invalid(param, "%q in %s is not %s.", v, param, what)
		}
	}
	return nil
}

// validRef checks a free-form reference (payer, agent): 1..MaxRefLen
// printable characters without spaces.
func validRef(s string) bool {
	if s == "" || len(s) > MaxRefLen || !utf8.ValidString(s) {
		return false
	}
	return strings.IndexFunc(s, func(r rune) bool { return unicode.IsSpace(r) || !unicode.IsPrint(r) }) < 0
}

// ValidateTerms checks what a creator chooses: the limits and the
// description, payer and agent.
func (m *Mandate) ValidateTerms() error {
	if err := m.Limits.Validate(""); err != nil {
		return err
	}
	if !utf8.ValidString(m.Description) || utf8.RuneCountInString(m.Description) > MaxDescriptionLen {
		return invalid("description", "description must be valid UTF-8 of at most %d characters.", MaxDescriptionLen)
	}
	if m.Payer == "" {
		return missing("payer", "payer is required: your reference of the customer who pays, or %q when you pay yourself.", PayerSelf)
	}
	if !validRef(m.Payer) {
		return invalid("payer", "payer must be 1 to %d printable characters without spaces.", MaxRefLen)
	}
	if m.Agent == "" {
		return missing("agent", "agent is required: the client id of the agent that may spend.")
	}
	if !validRef(m.Agent) {
		return invalid("agent", "agent must be a client id of 1 to %d printable characters without spaces.", MaxRefLen)
	}
	return nil
}

package mandates

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// AuthorizationDetailsType is the RFC 9396 authorization details type of a
// mandate.
const AuthorizationDetailsType = "payment_mandate"

// AuthorizationDetail is one RFC 9396 authorization_details entry of type
// payment_mandate. It takes one of two forms in a request:
//
//   - a reference, {"type":"payment_mandate","mandate_id":"mdt_…"}, asking
//     for a token on an existing mandate (client_credentials);
//   - terms, {"type":"payment_mandate","currency":"USD","budget":5000,
//     "payment_methods":["tok_…"], …}, proposing a new mandate (authorization
//     code flow) or a narrower child mandate (token exchange).
//
// In an access token's claims it carries both: the mandate's id and its limits.
type AuthorizationDetail struct {
	Type      string `json:"type"`
	MandateID string `json:"mandate_id,omitempty"`
	// Limits are present in the terms form and in token claims.
	*Limits
	Description string `json:"description,omitempty"`
}

// IsReference reports whether d only names an existing mandate.
func (d *AuthorizationDetail) IsReference() bool { return d.MandateID != "" && d.Limits == nil }

// Detail is the authorization detail an access token on m carries.
func (m *Mandate) Detail() AuthorizationDetail {
	l := m.Limits.Clone()
	return AuthorizationDetail{Type: AuthorizationDetailsType, MandateID: m.ID, Limits: &l, Description: m.Description}
}

// limitFields are the JSON names of Limits' fields: their presence tells a
// terms detail from a reference.
var limitFields = []string{
	"currency", "max_amount_per_charge", "budget", "period", "period_budget", "max_charges",
	"payment_methods", "allowed_merchants", "allowed_categories", "blocked_categories",
	"allowed_countries", "valid_from", "valid_until", "approval_threshold",
}

// ParseAuthorizationDetails parses and validates the authorization_details
// parameter (a JSON array). Every entry must be of type payment_mandate
// (RFC 9396 §5: an unknown type is refused), without unknown fields, and
// either a reference (mandate_id alone) or valid terms (normalized). Errors
// are *apierr.Invalid with params such as "authorization_details[0].budget".
func ParseAuthorizationDetails(raw []byte) ([]AuthorizationDetail, error) {
	var entries []json.RawMessage
	if err := json.Unmarshal(raw, &entries); err != nil {
		return nil, invalid("authorization_details", "authorization_details must be a JSON array of objects.")
	}
	if len(entries) == 0 {
		return nil, invalid("authorization_details", "authorization_details must not be empty.")
	}
	out := make([]AuthorizationDetail, 0, len(entries))
	for i, e := range entries {
		prefix := fmt.Sprintf("authorization_details[%d].", i)
		d, err := parseDetail(e, prefix)
		if err != nil {
			return nil, err
		}
		out = append(out, *d)
	}
	return out, nil
}

func parseDetail(raw json.RawMessage, prefix string) (*AuthorizationDetail, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil || fields == nil {
		return nil, invalid(strings.TrimSuffix(prefix, "."), "each authorization detail must be a JSON object.")
	}
	var typ string
	if err := json.Unmarshal(fields["type"], &typ); err != nil || typ == "" {
		return nil, missing(prefix+"type", "type is required.")
	}
	if typ != AuthorizationDetailsType {
		return nil, invalid(prefix+"type", "unsupported authorization details type %q (supported: %s).", typ, AuthorizationDetailsType)
	}
	hasTerms := false
	for _, f := range limitFields {
		if _, ok := fields[f]; ok {
			hasTerms = true
		}
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var d AuthorizationDetail
	if hasTerms {
		d.Limits = &Limits{}
	}
	if err := dec.Decode(&d); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			field := strings.TrimPrefix(te.Field, "Limits.")
			return nil, invalid(prefix+field, "%s has the wrong type (expected %s).", field, te.Type)
		}
		if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
			name = strings.Trim(name, `"`)
			return nil, invalid(prefix+name, "unknown field %s in a payment_mandate authorization detail.", name)
		}
		return nil, invalid(strings.TrimSuffix(prefix, "."), "invalid authorization detail: %v.", err)
	}
	switch {
	case d.MandateID != "" && hasTerms:
		return nil, invalid(prefix+"mandate_id", "give either mandate_id (an existing mandate) or the mandate's terms, not both.")
	case d.MandateID != "":
		if !validRef(d.MandateID) || !strings.HasPrefix(d.MandateID, "mdt_") {
			return nil, invalid(prefix+"mandate_id", "mandate_id must be a mandate id (mdt_…).")
		}
		if d.Description != "" {
			return nil, invalid(prefix+"description", "a reference to an existing mandate carries no description.")
		}
	case !hasTerms:
		return nil, missing(prefix+"mandate_id", "a payment_mandate detail needs a mandate_id or the mandate's terms (currency, budget, payment_methods, …).")
	default:
		d.Limits.Normalize()
		if err := d.Limits.Validate(prefix); err != nil {
			return nil, err
		}
		if len([]rune(d.Description)) > MaxDescriptionLen {
			return nil, invalid(prefix+"description", "description is longer than %d characters.", MaxDescriptionLen)
		}
	}
	return &d, nil
}

package authz

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"slices"
	"sort"
	"sync"

	"github.com/perfectpay/perfectpay/internal/apierr"
)

// DetailContext is what a detail type's hooks learn about the request.
type DetailContext struct {
	// Agent is the authenticated client asking for the token.
	Agent *Agent
	// TenantID is the agent's tenant.
	TenantID string
	// Subject is the verified subject token of a token exchange (nil at
	// client_credentials).
	Subject *AccessToken
	// GrantType is the grant being processed.
	GrantType string
}

// DetailType is one RFC 9396 authorization_details type.
type DetailType struct {
	// Single allows at most one element of this type per request: a
	// request with more is refused before any Validate or Narrow runs, so
	// none of them makes state for a request that then fails.
	Single bool
	// Validate checks one requested element of this type when a token is
	// first granted (client_credentials, and the authorization code flow
	// when it arrives). It returns the element to grant, which may differ
	// from the request (e.g. bound to a mandate id); an error refuses the
	// request with invalid_authorization_details. It must reject fields it
	// does not know (StrictDecode helps).
	Validate func(ctx context.Context, dc DetailContext, requested json.RawMessage) (json.RawMessage, error)
	// Narrow checks, at token exchange, that child asks for no more than
	// parent (an element of the same type granted to the subject token)
	// and returns the element to grant; it may create state of its own,
	// such as a child mandate. Returning ErrNotNarrower (or any error)
	// refuses the exchange with invalid_authorization_details. When nil,
	// only a child equal to its parent is accepted.
	Narrow func(ctx context.Context, dc DetailContext, parent, child json.RawMessage) (json.RawMessage, error)
	// State, when set, reports the live state behind a granted element
	// of a token of tenantID. Introspection shows a token inactive when
	// the grant behind any of its elements is not active, and adds the
	// Extra members; client_credentials gives a token for a grant that was
	// delegated by token exchange the act chain of that delegation.
	State func(ctx context.Context, tenantID string, granted json.RawMessage) (*GrantState, error)
}

// GrantState is the live state behind a granted authorization_details
// element (for payment_mandate: the mandate and its ancestors).
type GrantState struct {
	// Key names the grant among the tenant's (for payment_mandate, the
	// mandate id); a delegated grant's lineage is recorded under it.
	Key string
	// Active is false when the grant, or anything it derives from, was
	// revoked or has ended.
	Active bool
	// Delegators are the agents the grant was delegated through, nearest
	// first: the agent that delegated to the grant's agent first, the agent
	// of the root grant last. Empty for a grant made directly.
	Delegators []string
	// Extra are RFC 7662 extension members for introspection (e.g. the
	// remaining budget).
	Extra map[string]any
}

// DetailTypes is the registry of authorization_details types the issuer
// accepts. The mandates domain registers "payment_mandate" at wiring time:
//
//	authz.DetailTypes.Register("payment_mandate", authz.DetailType{
//		Validate: mandates.ValidateDetail, // bind to a mandate the agent may use
//		Narrow:   mandates.NarrowDetail,   // subset rules; creates the child mandate
//	})
//
// The issuer checks the envelope itself (a JSON array of objects, each with
// a string "type", the RFC 9396 common fields well-typed), refuses unknown
// types with invalid_authorization_details, calls Validate for every
// element at client_credentials and Narrow for every element at token
// exchange (an exchange that omits authorization_details narrows each
// parent element to itself, so a type may still bind it to the new actor).
// Granted elements appear in the token response and in the access token's
// authorization_details claim; authorization_details_types_supported in
// the metadata lists the registered types.
var DetailTypes = NewDetailTypeRegistry()

// DetailTypeRegistry maps type names to their hooks. It is safe for
// concurrent use.
type DetailTypeRegistry struct {
	mu    sync.RWMutex
	types map[string]DetailType
}

// NewDetailTypeRegistry returns an empty registry.
func NewDetailTypeRegistry() *DetailTypeRegistry {
	return &DetailTypeRegistry{types: map[string]DetailType{}}
}

// Register adds or replaces a type. Validate is required.
func (r *DetailTypeRegistry) Register(typ string, dt DetailType) {
	if typ == "" || dt.Validate == nil {
		panic("authz: a detail type needs a name and a Validate function")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.types[typ] = dt
}

// Types lists the registered type names, sorted.
func (r *DetailTypeRegistry) Types() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]string, 0, len(r.types))
	for t := range r.types {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

func (r *DetailTypeRegistry) get(typ string) (DetailType, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	dt, ok := r.types[typ]
	return dt, ok
}

// ErrNotNarrower is what a Narrow hook returns when the child asks for
// more than its parent.
var ErrNotNarrower = errors.New("authorization_details element is not within the subject token's grant")

// CodeInvalidDetails is the code of a refusal of authorization_details:
// the token endpoint answers it as invalid_authorization_details (RFC 9396)
// with the message as error_description.
const CodeInvalidDetails apierr.Code = "invalid_authorization_details"

// RefuseDetails returns a refusal of authorization_details, an
// *apierr.Invalid with code CodeInvalidDetails.
func RefuseDetails(format string, args ...any) error {
	return apierr.Invalidf("authorization_details", CodeInvalidDetails, format, args...)
}

// detailRefusal returns the message of err when it is a refusal of
// authorization_details.
func detailRefusal(err error) (string, bool) {
	var inv *apierr.Invalid
	if errors.As(err, &inv) && inv.Code == CodeInvalidDetails {
		return inv.Message, true
	}
	return "", false
}

// StrictDecode decodes one element into v, refusing unknown fields, for
// Validate hooks.
func StrictDecode(raw json.RawMessage, v any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return RefuseDetails("%s", err.Error())
	}
	if dec.More() {
		return RefuseDetails("trailing data after the element")
	}
	return nil
}

// detailElement is an element split into its type and its raw form.
type detailElement struct {
	Type string
	Raw  json.RawMessage
}

// commonFields are RFC 9396 §2.2's fields every type may use, with the JSON
// shape they must have.
var commonFields = map[string]string{
	"locations": "strings", "actions": "strings", "datatypes": "strings",
	"privileges": "strings", "identifier": "string",
}

// maxDetails bounds the number of elements in one request.
const maxDetails = 16

// parseDetails checks the envelope of an authorization_details parameter.
func (r *DetailTypeRegistry) parseDetails(raw string) ([]detailElement, error) {
	if raw == "" {
		return nil, nil
	}
	var elems []json.RawMessage
	if err := json.Unmarshal([]byte(raw), &elems); err != nil {
		return nil, RefuseDetails("authorization_details must be a JSON array of objects")
	}
	if len(elems) == 0 {
		return nil, RefuseDetails("authorization_details must not be empty")
	}
	if len(elems) > maxDetails {
		return nil, RefuseDetails("authorization_details has more than %d elements", maxDetails)
	}
	out := make([]detailElement, 0, len(elems))
	for i, e := range elems {
		var fields map[string]json.RawMessage
		if err := json.Unmarshal(e, &fields); err != nil || fields == nil {
			return nil, RefuseDetails("authorization_details[%d] is not a JSON object", i)
		}
		var typ string
		if err := json.Unmarshal(fields["type"], &typ); err != nil || typ == "" {
			return nil, RefuseDetails("authorization_details[%d] needs a string \"type\"", i)
		}
		if _, ok := r.get(typ); !ok {
			return nil, RefuseDetails("authorization_details[%d]: unknown type %q (supported: %v)", i, typ, r.Types())
		}
		for name, shape := range commonFields {
			v, ok := fields[name]
			if !ok {
				continue
			}
			var err error
			if shape == "string" {
				var s string
				err = json.Unmarshal(v, &s)
			} else {
				var ss []string
				err = json.Unmarshal(v, &ss)
			}
			if err != nil {
				return nil, RefuseDetails("authorization_details[%d].%s has the wrong type", i, name)
			}
		}
		out = append(out, detailElement{Type: typ, Raw: compactJSON(e)})
	}
	return out, nil
}

func compactJSON(raw json.RawMessage) json.RawMessage {
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return slices.Clone(raw)
	}
	return b.Bytes()
}

// validate runs Validate for every requested element and returns the
// granted array (nil when nothing was asked).
func (r *DetailTypeRegistry) validate(ctx context.Context, dc DetailContext, raw string) (json.RawMessage, error) {
	elems, err := r.parseDetails(raw)
	if err != nil || len(elems) == 0 {
		return nil, err
	}
	if err := r.checkSingle(elems); err != nil {
		return nil, err
	}
	granted := make([]json.RawMessage, 0, len(elems))
	for i, e := range elems {
		dt, _ := r.get(e.Type)
		g, err := dt.Validate(ctx, dc, e.Raw)
		if err != nil {
			return nil, wrapDetailErr(i, err)
		}
		granted = append(granted, compactJSON(g))
	}
	return json.Marshal(granted)
}

// narrow checks a token exchange's requested elements against the subject
// token's and returns the granted array. With no request, every parent
// element is narrowed to itself.
func (r *DetailTypeRegistry) narrow(ctx context.Context, dc DetailContext, parentRaw json.RawMessage, raw string) (json.RawMessage, error) {
	var parents []detailElement
	if len(parentRaw) > 0 && string(parentRaw) != "null" {
		var err error
		if parents, err = r.parseDetails(string(parentRaw)); err != nil {
			return nil, err
		}
	}
	children, err := r.parseDetails(raw)
	if err != nil {
		return nil, err
	}
	if raw == "" {
		children = parents
	}
	if len(children) == 0 {
		return nil, nil
	}
	if err := r.checkSingle(children); err != nil {
		return nil, err
	}
	granted := make([]json.RawMessage, 0, len(children))
	for i, c := range children {
		dt, _ := r.get(c.Type)
		var g json.RawMessage
		lastErr := ErrNotNarrower
		for _, p := range parents {
			if p.Type != c.Type {
				continue
			}
			if dt.Narrow == nil {
				if bytes.Equal(p.Raw, c.Raw) {
					g, lastErr = c.Raw, nil
					break
				}
				continue
			}
			if g, lastErr = dt.Narrow(ctx, dc, p.Raw, c.Raw); lastErr == nil {
				break
			}
		}
		if lastErr != nil {
			return nil, wrapDetailErr(i, lastErr)
		}
		granted = append(granted, compactJSON(g))
	}
	return json.Marshal(granted)
}

// checkSingle refuses a request holding more than one element of a type
// registered as Single.
func (r *DetailTypeRegistry) checkSingle(elems []detailElement) error {
	seen := map[string]bool{}
	for _, e := range elems {
		if dt, _ := r.get(e.Type); dt.Single && seen[e.Type] {
			return RefuseDetails("authorization_details: at most one %s element per request", e.Type)
		}
		seen[e.Type] = true
	}
	return nil
}

func wrapDetailErr(i int, err error) error {
	if desc, ok := detailRefusal(err); ok {
		return RefuseDetails("authorization_details[%d]: %s", i, desc)
	}
	if errors.Is(err, ErrNotNarrower) {
		return RefuseDetails("authorization_details[%d]: %s", i, ErrNotNarrower.Error())
	}
	return err // an internal failure, not the client's fault
}

// states asks the State hook of every granted element that has one, in
// order.
func (r *DetailTypeRegistry) states(ctx context.Context, tenantID string, granted json.RawMessage) ([]*GrantState, error) {
	if len(granted) == 0 || string(granted) == "null" {
		return nil, nil
	}
	elems, err := r.parseDetails(string(granted))
	if err != nil {
		return nil, err
	}
	var out []*GrantState
	for _, e := range elems {
		dt, _ := r.get(e.Type)
		if dt.State == nil {
			continue
		}
		st, err := dt.State(ctx, tenantID, e.Raw)
		if err != nil {
			return nil, err
		}
		out = append(out, st)
	}
	return out, nil
}

// delegation is the act chain of a client_credentials token whose granted
// elements were delegated by token exchange: the subject is the agent of
// the root grant, the client the newest actor, the delegators between
// them nested as earlier actors (as the exchange that made the grant
// wrote them). It returns "" and nil when nothing granted was delegated.
func delegation(client string, states []*GrantState) (string, *Actor, error) {
	var chain []string
	for _, st := range states {
		if len(st.Delegators) == 0 {
			continue
		}
		if chain != nil && !slices.Equal(chain, st.Delegators) {
			return "", nil, RefuseDetails("authorization_details elements were delegated along different chains; ask for one token each")
		}
		chain = st.Delegators
	}
	if len(chain) == 0 {
		return "", nil, nil
	}
	var prev *Actor
	for _, sub := range slices.Backward(chain[:len(chain)-1]) {
		prev = &Actor{Sub: sub, Act: prev}
	}
	return chain[len(chain)-1], &Actor{Sub: client, Act: prev}, nil
}

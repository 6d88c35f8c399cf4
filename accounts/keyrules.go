package accounts

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/perfectpay/perfectpay/internal/apierr"
)

// Key rules. They hold whoever calls the service (an HTTP handler, the
// CLI, another domain): the caller is always a key, and
//
//   - a key acts only on keys of its own mode: a test key never creates,
//     rolls or revokes a live key, nor a live key a test key;
//   - a key never obtains (creates or rolls) nor revokes a key more
//     powerful than itself: a secret key may do anything, a restricted key
//     only reaches keys whose every permission it holds itself (so never a
//     secret key, a publishable key only with tokens:write), a publishable
//     key holds no keys:write and so reaches none;
//   - the caller needs keys:write;
//   - a restricted key carries at least one known scope; other kinds none.
var (
	ErrInvalidKind      = errors.New("accounts: key type must be secret, publishable or restricted")
	ErrInvalidMode      = errors.New("accounts: key mode must be test or live")
	ErrInvalidName      = errors.New("accounts: key name is longer than 100 characters or not valid UTF-8")
	ErrScopesRequired   = errors.New("accounts: a restricted key needs at least one scope")
	ErrScopesNotAllowed = errors.New("accounts: only restricted keys carry scopes")
	ErrModeMismatch     = errors.New("accounts: a key acts only on keys of its own mode")
	ErrMorePowerful     = errors.New("accounts: a key cannot reach a key more powerful than itself")
	ErrKeyNotActive     = errors.New("accounts: key is revoked, expired or already rolled")
)

// refuse is a refused key request: the rule broken (for errors.Is), the
// request parameter it concerns and a sentence for the caller. A request
// reaching another mode or a more powerful key is an *apierr.Forbidden,
// any other an *apierr.Invalid.
func refuse(rule error, param, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...) + "."
	if msg[0] >= 'a' && msg[0] <= 'z' {
		msg = string(msg[0]-'a'+'A') + msg[1:]
	}
	switch {
	case errors.Is(rule, ErrModeMismatch):
		return &apierr.Forbidden{Param: param, Code: "mode_mismatch", Message: msg, Err: rule}
	case errors.Is(rule, ErrMorePowerful):
		return &apierr.Forbidden{Param: param, Code: "insufficient_scope", Message: msg, Err: rule}
	case errors.Is(rule, ErrKeyNotActive):
		return &apierr.Invalid{Param: param, Code: "api_key_not_active", Message: msg, Err: rule}
	case errors.Is(rule, ErrScopesRequired):
		return &apierr.Invalid{Param: param, Code: apierr.ParameterMissing, Message: msg, Err: rule}
	}
	return &apierr.Invalid{Param: param, Code: apierr.ParameterInvalid, Message: msg, Err: rule}
}

// MaxKeyNameLen bounds a key's name.
const MaxKeyNameLen = 100

// KeyRequest is a key a caller asks for. An empty Mode means the caller's.
type KeyRequest struct {
	Kind   string
	Mode   string
	Name   string
	Scopes []string
}

// permits reports whether key k may use scope.
func permits(k *APIKey, scope string) bool {
	switch k.Kind {
	case KindSecret:
		return true
	case KindPublishable:
		return scope == "tokens:write"
	case KindRestricted:
		return slices.Contains(k.Scopes, scope) ||
			(slices.Contains(k.Scopes, AuditScope) && slices.Contains(AuditorReads, scope))
	}
	return false
}

// AuditScope is the auditor's scope: it reads the audit trail and, through
// AuditorReads, every mandate, agent, charge (with its decision), merchant
// and event of the key's tenant. An auditor key is read-only: it carries
// no write scope.
const AuditScope = "audit:read"

// AuditorReads are the read scopes audit:read implies.
var AuditorReads = []string{"charges:read", "mandates:read", "agents:read", "merchants:read", "events:read"}

// powers lists what a key of kind with scopes may do.
func powers(kind string, scopes []string) []string {
	switch kind {
	case KindSecret:
		return Scopes
	case KindPublishable:
		return []string{"tokens:write"}
	}
	if slices.Contains(scopes, AuditScope) {
		out := slices.Clone(scopes)
		for _, sc := range AuditorReads {
			if !slices.Contains(out, sc) {
				out = append(out, sc)
			}
		}
		return out
	}
	return scopes
}

// checkRequest validates a requested key on its own and fills its mode.
func checkRequest(caller *APIKey, req *KeyRequest) error {
	if req.Mode == "" {
		req.Mode = caller.Mode
	}
	switch {
	case !slices.Contains([]string{KindSecret, KindPublishable, KindRestricted}, req.Kind):
		return refuse(ErrInvalidKind, "type", "type must be one of secret, publishable, restricted")
	case req.Mode != ModeTest && req.Mode != ModeLive:
		return refuse(ErrInvalidMode, "mode", "mode must be test or live")
	case len(req.Name) > MaxKeyNameLen || !utf8.ValidString(req.Name):
		return refuse(ErrInvalidName, "name", "name must be valid UTF-8 of at most %d bytes", MaxKeyNameLen)
	case req.Kind == KindRestricted && len(req.Scopes) == 0:
		return refuse(ErrScopesRequired, "scopes", "a restricted key needs at least one scope")
	case req.Kind != KindRestricted && len(req.Scopes) > 0:
		return refuse(ErrScopesNotAllowed, "scopes", "only restricted keys carry scopes")
	}
	var scopes []string
	for _, sc := range req.Scopes {
		if !slices.Contains(Scopes, sc) {
			return refuse(ErrInvalidScope, "scopes", "unknown scope %q; known scopes: %v", sc, Scopes)
		}
		if !slices.Contains(scopes, sc) {
			scopes = append(scopes, sc)
		}
	}
	if slices.Contains(scopes, AuditScope) {
		for _, sc := range scopes {
			if !strings.HasSuffix(sc, ":read") {
				return refuse(ErrInvalidScope, "scopes", "an %s key is read-only: it cannot carry %s", AuditScope, sc)
			}
		}
	}
	req.Scopes = scopes
	return nil
}

// params name the request parameters a refusal concerns.
type params struct{ kind, mode, scopes string }

var (
	createParams = params{kind: "type", mode: "mode", scopes: "scopes"}
	targetParams = params{kind: "id", mode: "id", scopes: "id"}
)

// mayReach applies the rules shared by create, roll and revoke: caller
// may act on a key of kind, mode and scopes.
func mayReach(caller *APIKey, kind, mode string, scopes []string, p params) error {
	if !permits(caller, "keys:write") {
		return refuse(ErrMorePowerful, "", "the calling key does not hold keys:write")
	}
	if mode != caller.Mode {
		return refuse(ErrModeMismatch, p.mode, "a %s-mode key cannot act on %s-mode keys", caller.Mode, mode)
	}
	if kind == KindSecret && caller.Kind != KindSecret {
		return refuse(ErrMorePowerful, p.kind, "a %s key cannot reach a secret key", caller.Kind)
	}
	for _, sc := range powers(kind, scopes) {
		if !permits(caller, sc) {
			return refuse(ErrMorePowerful, p.scopes, "a %s key cannot reach a key that may use %s, which it does not hold itself", caller.Kind, sc)
		}
	}
	return nil
}

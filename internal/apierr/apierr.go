// Package apierr holds the few kinds of refusal every domain returns and the
// HTTP layer maps once: a request parameter refused (Invalid), a card refused
// (Card), a resource that does not exist (NotFound), a request at odds with a
// resource's state (Conflict), an action not allowed (Forbidden) and a
// dependency briefly out of reach (Unavailable). Codes are typed constants,
// the machine-readable part of an answer clients branch on.
package apierr

import "fmt"

// Code is a machine-readable error code, as Stripe spells them.
type Code string

// The codes shared by several domains. A domain declares its own codes
// (e.g. mandates.CodeWidens) as Code constants beside its rules.
const (
	ParameterInvalid Code = "parameter_invalid"
	ParameterMissing Code = "parameter_missing"
	ResourceMissing  Code = "resource_missing"
)

// Invalid is a request parameter the domain refuses: an HTTP 400
// invalid_request_error naming Param. Message is shown as is and never
// holds card data or secrets. Err, when set, is the domain's rule that
// refused (a sentinel for errors.Is).
type Invalid struct {
	Param   string
	Code    Code
	Message string
	Err     error
}

func (e *Invalid) Error() string {
	if e.Param == "" {
		return e.Message
	}
	return e.Param + ": " + e.Message
}

func (e *Invalid) Unwrap() error { return e.Err }

// Invalidf returns an *Invalid with the formatted message.
func Invalidf(param string, code Code, format string, args ...any) *Invalid {
	return &Invalid{Param: param, Code: code, Message: fmt.Sprintf(format, args...)}
}

// BadParam is an *Invalid with code parameter_invalid.
func BadParam(param, format string, args ...any) *Invalid {
	return Invalidf(param, ParameterInvalid, format, args...)
}

// MissingParam is an *Invalid with code parameter_missing.
func MissingParam(param, format string, args ...any) *Invalid {
	return Invalidf(param, ParameterMissing, format, args...)
}

// Card is a card the vault refuses (an HTTP 402 card_error): Code says why
// (incorrect_number, invalid_expiry_month, …), Param names the field.
type Card struct {
	Param   string
	Code    Code
	Message string
}

func (e *Card) Error() string { return e.Param + ": " + e.Message }

// NotFound is a resource that does not exist for the caller: an HTTP 404
// resource_missing, "No such <Kind>: '<ID>'".
type NotFound struct {
	Kind, ID string
}

func (e *NotFound) Error() string { return fmt.Sprintf("No such %s: '%s'", e.Kind, e.ID) }

// Conflict is a request at odds with the current state of a resource: an
// HTTP 409 invalid_request_error.
type Conflict struct {
	Param   string
	Code    Code
	Message string
}

func (e *Conflict) Error() string { return e.Message }

// Forbidden is an action the caller may not take: an HTTP 403
// permission_error. Err, when set, is the domain's rule that refused.
type Forbidden struct {
	Param   string
	Code    Code
	Message string
	Err     error
}

func (e *Forbidden) Error() string { return e.Message }

func (e *Forbidden) Unwrap() error { return e.Err }

// Unavailable is a dependency briefly out of reach: an HTTP 503 api_error,
// retryable after RetryAfter seconds (none when zero). Err, when set, is
// the domain's sentinel for errors.Is.
type Unavailable struct {
	Code       Code
	Message    string
	RetryAfter int
	Err        error
}

func (e *Unavailable) Error() string { return e.Message }

func (e *Unavailable) Unwrap() error { return e.Err }

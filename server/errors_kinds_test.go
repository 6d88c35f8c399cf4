package server

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/perfectpay/perfectpay/internal/apierr"
)

// TestFromDomain: each kind of refusal a domain returns has one answer,
// also when wrapped on its way up.
func TestFromDomain(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want Error
	}{
		{apierr.BadParam("url", "Invalid url: the URL must use https."),
			Error{Status: 400, Type: TypeInvalidRequest, Code: "parameter_invalid", Param: "url", Message: "Invalid url: the URL must use https."}},
		{apierr.MissingParam("agent", "agent is required."),
			Error{Status: 400, Type: TypeInvalidRequest, Code: "parameter_missing", Param: "agent", Message: "agent is required."}},
		{&apierr.Card{Param: "card[number]", Code: "invalid_number", Message: "The card number is not a valid credit card number."},
			Error{Status: 402, Type: TypeCard, Code: "invalid_number", Param: "card[number]", Message: "The card number is not a valid credit card number."}},
		{&apierr.NotFound{Kind: "mandate", ID: "mdt_1"},
			Error{Status: 404, Type: TypeInvalidRequest, Code: "resource_missing", Param: "id", Message: "No such mandate: 'mdt_1'"}},
		{&apierr.Conflict{Param: "id", Code: "mandate_active", Message: "Cannot resume mandate mdt_1: it is active."},
			Error{Status: 409, Type: TypeInvalidRequest, Code: "mandate_active", Param: "id", Message: "Cannot resume mandate mdt_1: it is active."}},
		{&apierr.Forbidden{Code: "insufficient_scope", Param: "scopes", Message: "No."},
			Error{Status: 403, Type: TypePermission, Code: "insufficient_scope", Param: "scopes", Message: "No."}},
		{&apierr.Unavailable{Code: "processor_unavailable", Message: "Retry.", RetryAfter: 1},
			Error{Status: 503, Type: TypeAPI, Code: "processor_unavailable", Message: "Retry.", RetryAfter: 1}},
	} {
		t.Run(tc.err.Error(), func(t *testing.T) {
			for _, err := range []error{tc.err, fmt.Errorf("context: %w", tc.err)} {
				got := fromDomain(err)
				if assert.NotNil(t, got, "%v", err) {
					assert.Equal(t, tc.want, *got)
				}
			}
		})
	}
	assert.Nil(t, fromDomain(fmt.Errorf("plain")), "anything else is not a refusal")
	assert.Equal(t, http.StatusBadRequest, fromDomain(apierr.BadParam("x", "y")).Status)
}

package apierr

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestMessages(t *testing.T) {
	assert.Equal(t, "budget: budget must be positive.", BadParam("budget", "%s must be positive.", "budget").Error())
	assert.Equal(t, "The token names no mandate.", (&Invalid{Code: "mandate_required", Message: "The token names no mandate."}).Error())
	assert.Equal(t, Invalid{Param: "agent", Code: ParameterMissing, Message: "agent is required."}, *MissingParam("agent", "agent is required."))
	assert.Equal(t, "No such mandate: 'mdt_1'", (&NotFound{Kind: "mandate", ID: "mdt_1"}).Error())
	assert.Equal(t, "card[cvc]: bad", (&Card{Param: "card[cvc]", Code: "invalid_cvc", Message: "bad"}).Error())
	assert.Equal(t, "busy", (&Conflict{Message: "busy"}).Error())
	assert.Equal(t, "no", (&Forbidden{Message: "no"}).Error())
	assert.Equal(t, "later", (&Unavailable{Message: "later"}).Error())
}

func TestRuleKeptForIs(t *testing.T) {
	rule := errors.New("rule")
	assert.ErrorIs(t, &Invalid{Param: "x", Message: "m", Err: rule}, rule)
	assert.ErrorIs(t, &Forbidden{Message: "m", Err: rule}, rule)
	assert.ErrorIs(t, &Unavailable{Message: "m", Err: rule}, rule)
	assert.NotErrorIs(t, BadParam("x", "m"), rule)
}

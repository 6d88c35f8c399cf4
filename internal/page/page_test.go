package page

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/perfectpay/perfectpay/internal/apierr"
)

func TestParseLimit(t *testing.T) {
	for _, tc := range []struct {
		raw  string
		want int
		bad  bool
	}{
		{"", DefaultLimit, false}, {"1", 1, false}, {"100", 100, false}, {"37", 37, false},
		{"0", 0, true}, {"101", 0, true}, {"-1", 0, true}, {"ten", 0, true}, {"1.5", 0, true}, {" 5", 0, true},
	} {
		t.Run(tc.raw, func(t *testing.T) {
			n, err := ParseLimit(tc.raw)
			if !tc.bad {
				require.NoError(t, err)
				assert.Equal(t, tc.want, n)
				return
			}
			var inv *apierr.Invalid
			require.True(t, errors.As(err, &inv), "got %v", err)
			assert.Equal(t, apierr.Invalid{Param: "limit", Code: apierr.ParameterInvalid,
				Message: "limit must be an integer between 1 and 100."}, *inv)
		})
	}
}

func TestTrim(t *testing.T) {
	rows := []int{1, 2, 3}
	got, more := Trim(rows, 2)
	assert.Equal(t, []int{1, 2}, got)
	assert.True(t, more)
	got, more = Trim(rows, 3)
	assert.Equal(t, []int{1, 2, 3}, got)
	assert.False(t, more)
	got, more = Trim([]int{}, 3)
	assert.Empty(t, got)
	assert.False(t, more)
	assert.Equal(t, 4, Fetch(3))
}

package memory

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestFamilyIDRoundTrip: a grant family id reads back exactly as written,
// whether it is held as a UUID's bytes or as a string.
func TestFamilyIDRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		id     string
		packed bool
	}{
		{"0f8fad5b-d9cb-469f-a165-70867728950e", true},
		{"0F8FAD5B-D9CB-469F-A165-70867728950E", false}, // not canonical: kept as written
		{"00000000-0000-0000-0000-000000000000", false},
		{"0f8fad5bd9cb469fa16570867728950e", false},
		{"0f8fad5b-d9cb-469f-a165-70867728950g", false},
		{"fam", false},
		{"", false},
	} {
		f := newFamilyID(tc.id)
		assert.Equal(t, tc.id, f.String(), tc.id)
		assert.Equal(t, tc.packed, f.other == "" && tc.id != "", tc.id)
		assert.Equal(t, f, newFamilyID(f.String()), "the same id compares equal: %s", tc.id)
	}
}

package ids

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestNewShape(t *testing.T) {
	id := New("aud")
	require.Len(t, id, len("aud_")+24)
	assert.True(t, strings.HasPrefix(id, "aud_"))
	assert.NotEqual(t, id, New("aud"))
	for _, c := range id[4:] {
		assert.Contains(t, alphabet, string(c))
	}
}

// TestRandomUsesEveryCharacter: long draws reach every character of the
// alphabet, including the last ones that rejected bytes would starve, and
// lengths beyond one block of random bytes come out whole.
func TestRandomUsesEveryCharacter(t *testing.T) {
	s := Random(62 * 200)
	require.Len(t, s, 62*200)
	counts := map[rune]int{}
	for _, c := range s {
		counts[c]++
	}
	for _, c := range alphabet {
		assert.Positive(t, counts[c], "character %q never drawn", c)
	}
	assert.Len(t, counts, len(alphabet))
	assert.Empty(t, Random(0))
}

func BenchmarkNew(b *testing.B) {
	b.ReportAllocs()
	for range b.N {
		_ = New("aud")
	}
}

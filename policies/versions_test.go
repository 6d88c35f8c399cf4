package policies

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestVersionOfSources: the kept modules name themselves with the engine's
// version, and a changed byte changes it.
func TestVersionOfSources(t *testing.T) {
	src, err := Sources()
	require.NoError(t, err)
	require.NotEmpty(t, src)
	v, err := Version()
	require.NoError(t, err)
	assert.Equal(t, v, VersionOf(src))
	for name := range src {
		src[name] += " "
		break
	}
	assert.NotEqual(t, v, VersionOf(src))
}

// TestReplayerMatchesEngine: a recorded input replays to the decision the
// engine made, reasons and all.
func TestReplayerMatchesEngine(t *testing.T) {
	ctx := context.Background()
	e := newEngine(t)
	src, err := Sources()
	require.NoError(t, err)
	r, err := NewReplayer(ctx, src)
	require.NoError(t, err)
	assert.Equal(t, e.Version(), r.Version())
	for _, amount := range []int64{20_00, 50_00, 50_01, 80_01} {
		in := baseInput()
		in.Charge.Amount = amount
		want, err := e.Decide(ctx, in)
		require.NoError(t, err)
		b, err := in.JSON()
		require.NoError(t, err)
		digest, err := in.Digest()
		require.NoError(t, err)
		assert.Equal(t, digest, DigestJSON(b))
		got, err := r.Decide(ctx, b)
		require.NoError(t, err)
		assert.Equal(t, want, got, "amount %d", amount)
	}
	_, err = r.Decide(ctx, []byte("{"))
	assert.Error(t, err)
	_, err = NewReplayer(ctx, map[string]string{"charge.rego": "package perfectpay.charge\n\ndecision := x if {"})
	assert.Error(t, err)
}

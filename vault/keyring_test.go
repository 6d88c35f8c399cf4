package vault

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	sealing "github.com/perfectpay/perfectpay/internal/seal"
)

func TestKeyring(t *testing.T) {
	k1, k2 := bytes.Repeat([]byte{1}, KeySize), bytes.Repeat([]byte{2}, KeySize)
	keys, err := ParseKEKs("# comment\n1:" + FormatKEK(1, k1)[2:] + ", " + FormatKEK(2, k2))
	require.NoError(t, err)
	assert.Equal(t, map[int][]byte{1: k1, 2: k2}, keys)
	for _, bad := range []string{"1", "x:AAAA", "0:" + FormatKEK(1, k1)[2:], "1:AAAA", FormatKEK(1, k1) + "," + FormatKEK(1, k2)} {
		_, err := ParseKEKs(bad)
		require.Error(t, err, bad)
		assert.NotContains(t, err.Error(), FormatKEK(1, k1)[2:], "errors never echo key material")
	}

	kr, err := NewKeyring(keys, 0, 0)
	require.NoError(t, err)
	assert.Equal(t, 2, kr.Active())
	v, ct, err := kr.wrap([]byte("secret"), []byte("aad"))
	require.NoError(t, err)
	assert.Equal(t, 2, v)
	got, err := kr.unwrap(2, ct, []byte("aad"))
	require.NoError(t, err)
	assert.Equal(t, []byte("secret"), got)
	_, err = kr.unwrap(2, ct, []byte("other row"))
	require.ErrorIs(t, err, ErrDecrypt)
	_, err = kr.unwrap(1, ct, []byte("aad"))
	require.ErrorIs(t, err, ErrDecrypt, "wrong version's key")
	_, err = kr.unwrap(2, ct[:len(ct)-1], []byte("aad"))
	require.ErrorIs(t, err, ErrDecrypt, "truncated")
	_, err = kr.unwrap(2, append([]byte{9}, ct[1:]...), []byte("aad"))
	require.ErrorIs(t, err, ErrDecrypt, "unknown format version")
	require.ErrorIs(t, err, sealing.ErrVersion, "the cause is kept")
	_, err = kr.unwrap(3, ct, []byte("aad"))
	require.ErrorIs(t, err, ErrKEKUnknown)
	strict, err := NewKeyring(keys, 0, 2)
	require.NoError(t, err)
	_, err = strict.unwrap(1, ct, []byte("aad"))
	require.ErrorIs(t, err, ErrKEKRetired)

	_, err = NewKeyring(keys, 3, 0)
	require.Error(t, err)
	_, err = NewKeyring(keys, 1, 2)
	require.Error(t, err)
	_, err = NewKeyring(map[int][]byte{1: {1}}, 0, 0)
	require.Error(t, err)
}

func TestRotateKEKFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keks")
	for want := 1; want <= 3; want++ {
		v, err := RotateKEKFile(path)
		require.NoError(t, err)
		assert.Equal(t, want, v)
	}
	keys, err := ReadKEKFile(path)
	require.NoError(t, err)
	assert.Len(t, keys, 3)
	require.NoError(t, os.Chmod(path, 0o644))
	_, err = ReadKEKFile(path)
	require.Error(t, err, "a world-readable KEK file is refused")
}

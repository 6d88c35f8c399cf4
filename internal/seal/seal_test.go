package seal

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func newKey(t *testing.T) []byte {
	k := make([]byte, KeySize)
	_, err := rand.Read(k)
	require.NoError(t, err)
	return k
}

func TestRoundTrip(t *testing.T) {
	key := newKey(t)
	for _, plain := range [][]byte{nil, []byte("x"), bytes.Repeat([]byte("secret"), 100)} {
		sealed, err := Seal(key, plain, []byte("row 1"))
		require.NoError(t, err)
		assert.Len(t, sealed, len(plain)+Overhead)
		assert.Equal(t, V1, sealed[0], "the format byte leads")
		if len(plain) >= 8 {
			// A plaintext that short could occur in random ciphertext by
			// chance (one byte does in about one run in nine).
			assert.NotContains(t, string(sealed), string(plain))
		}
		got, err := Open(key, sealed, []byte("row 1"))
		require.NoError(t, err)
		assert.Equal(t, len(plain), len(got))
		assert.True(t, bytes.Equal(plain, got))
		got, err = OpenLegacy(key, sealed, []byte("row 1"))
		require.NoError(t, err, "OpenLegacy reads the current format too")
		assert.True(t, bytes.Equal(plain, got))
	}
	a, err := Seal(key, []byte("same"), nil)
	require.NoError(t, err)
	b, err := Seal(key, []byte("same"), nil)
	require.NoError(t, err)
	assert.NotEqual(t, a, b, "every seal draws a fresh nonce")
}

// Every way a sealed value can be wrong fails, with an error that says
// which way when it can be known.
func TestOpenRefuses(t *testing.T) {
	key := newKey(t)
	sealed, err := Seal(key, []byte("the secret"), []byte("endpoint we_1"))
	require.NoError(t, err)
	for _, open := range []struct {
		name string
		fn   func(key, sealed, aad []byte) ([]byte, error)
	}{{"Open", Open}, {"OpenLegacy", OpenLegacy}} {
		t.Run(open.name, func(t *testing.T) {
			_, err := open.fn(newKey(t), sealed, []byte("endpoint we_1"))
			require.ErrorIs(t, err, ErrAuth, "wrong key")
			_, err = open.fn(key, sealed, []byte("endpoint we_2"))
			require.ErrorIs(t, err, ErrAuth, "wrong additional data: moved to another row")
			_, err = open.fn(key, sealed, nil)
			require.ErrorIs(t, err, ErrAuth, "additional data left out")
			for i := range sealed {
				bad := bytes.Clone(sealed)
				bad[i] ^= 0x40
				_, err := open.fn(key, bad, []byte("endpoint we_1"))
				require.Error(t, err, "byte %d altered", i)
				assert.True(t, errorIsOneOf(err, ErrAuth, ErrVersion), "byte %d altered: %v", i, err)
			}
			for n := range sealed {
				_, err := open.fn(key, sealed[:n], []byte("endpoint we_1"))
				require.Error(t, err, "truncated to %d bytes", n)
				assert.True(t, errorIsOneOf(err, ErrShort, ErrAuth), "truncated to %d bytes: %v", n, err)
			}
			_, err = open.fn(key[:16], sealed, []byte("endpoint we_1"))
			require.ErrorIs(t, err, ErrKeySize)
		})
	}

	// Open names what it can tell: a short value, an unknown version.
	for n := range Overhead {
		_, err := Open(key, sealed[:n], []byte("endpoint we_1"))
		require.ErrorIs(t, err, ErrShort, "%d bytes", n)
	}
	for _, v := range []byte{0, 2, 0xff} {
		bad := bytes.Clone(sealed)
		bad[0] = v
		_, err := Open(key, bad, []byte("endpoint we_1"))
		require.ErrorIs(t, err, ErrVersion, "version %d", v)
	}
}

func errorIsOneOf(err error, targets ...error) bool {
	for _, t := range targets {
		if errors.Is(err, t) {
			return true
		}
	}
	return false
}

func TestKeySize(t *testing.T) {
	for _, n := range []int{0, 16, 24, 31, 33, 64} {
		require.ErrorIs(t, CheckKey(make([]byte, n)), ErrKeySize, "%d bytes", n)
		_, err := Seal(make([]byte, n), []byte("x"), nil)
		require.ErrorIs(t, err, ErrKeySize, "%d bytes: AES-128 and AES-192 are not accepted", n)
	}
	require.NoError(t, CheckKey(make([]byte, KeySize)))
}

// fixture is a value sealed by the code that sealed before this package:
// the signing keys (no format byte), the vault keyring and the webhook
// secrets (a format byte of 1).
type fixture struct {
	Name   string `json:"name"`
	Layout string `json:"layout"`
	Key    string `json:"key"`
	AAD    string `json:"aad"`
	Plain  string `json:"plain"`
	Sealed string `json:"sealed"`
}

func TestOpensWhatTheOldCodeSealed(t *testing.T) {
	b, err := os.ReadFile("testdata/before_seal_package.json")
	require.NoError(t, err)
	var fixtures []fixture
	require.NoError(t, json.Unmarshal(b, &fixtures))
	require.Len(t, fixtures, 4)
	for _, f := range fixtures {
		t.Run(f.Name, func(t *testing.T) {
			key, err := hex.DecodeString(f.Key)
			require.NoError(t, err)
			sealed, err := hex.DecodeString(f.Sealed)
			require.NoError(t, err)
			got, err := OpenLegacy(key, sealed, []byte(f.AAD))
			require.NoError(t, err)
			assert.Equal(t, f.Plain, string(got))
			_, err = OpenLegacy(key, sealed, []byte(f.AAD+"x"))
			require.ErrorIs(t, err, ErrAuth)

			got, err = Open(key, sealed, []byte(f.AAD))
			if f.Layout == "v1" {
				require.NoError(t, err, "the vault and webhook format is version 1 of this one")
				assert.Equal(t, f.Plain, string(got))
			} else {
				require.Error(t, err, "Open reads the versioned format only")
			}
		})
	}
}

// Open never panics on any input, and no change to a sealed value (bytes
// flipped, cut or added) opens, under either reading.
func FuzzOpen(f *testing.F) {
	key := bytes.Repeat([]byte{5}, KeySize)
	sealed, err := Seal(key, []byte("the secret"), []byte("row"))
	require.NoError(f, err)
	f.Add([]byte{}, 0, []byte("row"))
	f.Add([]byte{1}, 0, []byte("row"))
	f.Add([]byte{0, 0, 0, 1}, -3, []byte("row"))
	f.Add([]byte{}, 5, []byte("row"))
	f.Fuzz(func(t *testing.T, flip []byte, cut int, aad []byte) {
		for _, open := range []func(key, sealed, aad []byte) ([]byte, error){Open, OpenLegacy} {
			_, _ = open(key, flip, aad) // arbitrary bytes: no panic

			changed := bytes.Clone(sealed)
			for i, b := range flip {
				changed[i%len(changed)] ^= b
			}
			switch {
			case cut > 0:
				changed = changed[:len(changed)-cut%len(changed)]
			case cut < 0:
				changed = append(changed, bytes.Repeat([]byte{0}, -cut%64)...)
			}
			plain, err := open(key, changed, aad)
			if bytes.Equal(changed, sealed) && bytes.Equal(aad, []byte("row")) {
				require.NoError(t, err)
				require.Equal(t, "the secret", string(plain))
				continue
			}
			require.Error(t, err, "a changed value or additional data opened")
		}
	})
}

package authz

import (
	"bytes"
	"context"
	"testing"

	"github.com/ory/fosite"
)

func TestSecretHasher(t *testing.T) {
	ctx := context.Background()
	h := secretHasher{pepper: bytes.Repeat([]byte{1}, 32)}
	sum, _ := h.Hash(ctx, []byte("pps_secret"))
	if err := h.Compare(ctx, sum, []byte("pps_secret")); err != nil {
		t.Fatal(err)
	}
	for _, bad := range [][]byte{[]byte("pps_secreT"), nil} {
		if h.Compare(ctx, sum, bad) == nil {
			t.Fatalf("%q matched", bad)
		}
	}
	if h.Compare(ctx, nil, []byte("pps_secret")) == nil {
		t.Fatal("an empty stored hash matched")
	}
	other := secretHasher{pepper: bytes.Repeat([]byte{2}, 32)}
	if other.Compare(ctx, sum, []byte("pps_secret")) == nil {
		t.Fatal("another pepper matched")
	}
}

// BenchmarkSecretHasher compares checking a client secret with our keyed
// HMAC and with fosite's default (bcrypt at its default cost).
func BenchmarkSecretHasher(b *testing.B) {
	ctx := context.Background()
	secret := []byte("pps_" + randomToken(32))
	for _, tc := range []struct {
		name string
		h    fosite.Hasher
	}{
		{"hmac_sha256", secretHasher{pepper: bytes.Repeat([]byte{1}, 32)}},
		{"fosite_bcrypt_default", &fosite.BCrypt{Config: &fosite.Config{}}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			sum, err := tc.h.Hash(ctx, secret)
			if err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for range b.N {
				if err := tc.h.Compare(ctx, sum, secret); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

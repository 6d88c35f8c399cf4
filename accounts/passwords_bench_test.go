package accounts_test

import (
	"testing"

	"github.com/perfectpay/perfectpay/accounts"
)

// BenchmarkPasswordHash is the cost of one sign-in's password check with
// the default argon2id parameters (19 MiB, 2 iterations, 1 lane).
func BenchmarkPasswordHash(b *testing.B) {
	h, err := accounts.HashPassword("violet-harbour-tangent-42", accounts.DefaultPasswordParams)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if ok, _, err := accounts.VerifyPassword("violet-harbour-tangent-42", h, accounts.DefaultPasswordParams); err != nil || !ok {
			b.Fatal("not verified")
		}
	}
}

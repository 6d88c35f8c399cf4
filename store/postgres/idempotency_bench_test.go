package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/perfectpay/perfectpay/idempotency"
	"github.com/perfectpay/perfectpay/internal/ids"
	"github.com/perfectpay/perfectpay/store/pgtest"
	"github.com/perfectpay/perfectpay/store/postgres"
)

// BenchmarkClaimIdempotency measures the claim every POST with an
// Idempotency-Key makes (one autocommit INSERT), as it is now (it checks
// the node's own session by pid) and as a plain INSERT without that
// check, in the same run.
func BenchmarkClaimIdempotency(b *testing.B) {
	s := pgtest.NewStore(b)
	for s.SessionName() == "" {
		time.Sleep(10 * time.Millisecond)
	}
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Microsecond)
	rec := func() *idempotency.Record {
		return &idempotency.Record{TenantID: "ten_bench", CredentialID: "key_bench", Key: ids.Random(16), Method: "POST",
			Path: "/v1/charges", RequestHash: make([]byte, 32), State: idempotency.StateInProgress,
			CreatedAt: now, LockedUntil: now.Add(time.Minute), ExpiresAt: now.Add(time.Hour)}
	}
	b.Run("with_session_check", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := s.Autocommit(ctx, func(tx *postgres.Tx) error { _, err := tx.ClaimIdempotency(ctx, rec()); return err }); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("plain_insert", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			r := rec()
			_, err := s.Pool().Exec(ctx, `INSERT INTO idempotency_keys AS k
				(tenant_id, credential_id, key, method, path, request_hash, state, status, header, body, created_at, locked_until, expires_at, owner)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
				ON CONFLICT (tenant_id, credential_id, key) DO NOTHING`,
				r.TenantID, r.CredentialID, r.Key, r.Method, r.Path, r.RequestHash, r.State, r.Status, map[string]string{}, r.Body,
				r.CreatedAt, r.LockedUntil, r.ExpiresAt, s.SessionName())
			if err != nil {
				b.Fatal(err)
			}
		}
	})
}

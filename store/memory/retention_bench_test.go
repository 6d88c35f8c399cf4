package memory

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/perfectpay/perfectpay/accounts"
	"github.com/perfectpay/perfectpay/charging"
	"github.com/perfectpay/perfectpay/idempotency"
	"github.com/perfectpay/perfectpay/mandates"
	"github.com/perfectpay/perfectpay/payments"
	"github.com/perfectpay/perfectpay/vault"
)

// The retention sweeps run batch by batch, each batch of limit its own
// transaction that holds the store. Each benchmark below is one batch in
// a table of 100,000 rows of which 300 are due, rolled back so that every
// iteration finds the table as seeded.

const retentionRows = 100_000

// benchT0 is the seeds' first instant; benchBefore the sweeps' cut-off:
// the due rows are before it, the others after.
var (
	benchT0     = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	benchBefore = benchT0.Add(2 * retentionRows * time.Second)
)

// benchAt is the instant of the j-th row: before benchBefore for 3 rows
// in 1,000, after it for the others.
func benchAt(j int) time.Time {
	if j%1000 < 3 {
		return benchT0.Add(time.Duration(j) * time.Second)
	}
	return benchBefore.Add(time.Duration(j) * time.Second)
}

// seedRows runs add for the rows 0 to retentionRows-1, 1,000 a
// transaction, in a store with the tenant ten_a.
func seedRows(b *testing.B, add func(tx *Tx, j int) error) *Store {
	return seedStore(b, []string{"ten_a"}, retentionRows, add)
}

// benchSweep runs one batch of sweep, limit 100, rolled back, per op.
func benchSweep(b *testing.B, s *Store, sweep func(tx *Tx, before time.Time, limit int) (int, error)) {
	eachRolledBack(b, s, func(tx *Tx) {
		if n, err := sweep(tx, benchBefore, 100); err != nil || n != 100 {
			b.Fatalf("swept %d, %v", n, err)
		}
	})
}

// BenchmarkScrubCharges: 100,000 settled charges with a description, 300
// of them last updated before the cut-off.
//
//	go test ./store/memory/ -run '^$' -bench ScrubCharges
func BenchmarkScrubCharges(b *testing.B) {
	ctx := context.Background()
	s := seedRows(b, func(tx *Tx, j int) error {
		return tx.CreateCharge(ctx, &payments.Charge{ID: fmt.Sprintf("ch_%06d", j), TenantID: "ten_a",
			Status: payments.StatusSucceeded, Amount: 100, AmountCaptured: 100, Currency: "eur", PaymentMethod: "tok_1",
			Description: "order 1234", Created: benchAt(j), Updated: benchAt(j)})
	})
	benchSweep(b, s, func(tx *Tx, before time.Time, limit int) (int, error) { return tx.ScrubCharges(ctx, before, limit) })
}

// BenchmarkPruneDecisions: 100,000 decisions, 300 of them made before the
// cut-off.
//
//	go test ./store/memory/ -run '^$' -bench PruneDecisions
func BenchmarkPruneDecisions(b *testing.B) {
	ctx := context.Background()
	s := seedRows(b, func(tx *Tx, j int) error {
		return tx.CreateDecision(ctx, &charging.Decision{ID: fmt.Sprintf("dec_%06d", j), TenantID: "ten_a",
			MandateID: "mdt_1", AgentID: "agt_1", ChargeID: fmt.Sprintf("ch_%06d", j), Result: "allow",
			PolicyVersion: "v1", CreatedAt: benchAt(j)})
	})
	benchSweep(b, s, func(tx *Tx, before time.Time, limit int) (int, error) { return tx.PruneDecisions(ctx, before, limit) })
}

// BenchmarkPruneExpiredIdempotency: 100,000 idempotency records, 300 of
// them expired before the cut-off.
//
//	go test ./store/memory/ -run '^$' -bench PruneExpiredIdempotency
func BenchmarkPruneExpiredIdempotency(b *testing.B) {
	ctx := context.Background()
	s := seedRows(b, func(tx *Tx, j int) error {
		_, err := tx.ClaimIdempotency(ctx, &idempotency.Record{TenantID: "ten_a", CredentialID: "key_1",
			Key: fmt.Sprintf("idem_%06d", j), Method: "POST", Path: "/v1/charges", RequestHash: []byte("hash"),
			State: idempotency.StateDone, Status: 200, Body: []byte(`{}`), CreatedAt: benchT0, LockedUntil: benchT0,
			ExpiresAt: benchAt(j)})
		return err
	})
	benchSweep(b, s, func(tx *Tx, before time.Time, limit int) (int, error) {
		return tx.PruneExpiredIdempotency(ctx, before, limit)
	})
}

// BenchmarkPruneSessions: 100,000 sessions of 100 users, 300 of them
// opened before the cut-off.
//
//	go test ./store/memory/ -run '^$' -bench PruneSessions
func BenchmarkPruneSessions(b *testing.B) {
	ctx := context.Background()
	s := seedRows(b, func(tx *Tx, j int) error {
		if j < 100 {
			if err := tx.CreateUser(ctx, &accounts.User{ID: fmt.Sprintf("usr_%03d", j), TenantID: "ten_a",
				Email: fmt.Sprintf("u%03d@example.com", j)}); err != nil {
				return err
			}
		}
		return tx.CreateSession(ctx, &accounts.Session{IDHash: []byte(fmt.Sprintf("%032d", j)),
			Ref: fmt.Sprintf("ses_%06d", j), TenantID: "ten_a", UserID: fmt.Sprintf("usr_%03d", j%100),
			CreatedAt: benchAt(j), LastSeenAt: benchAt(j)})
	})
	benchSweep(b, s, func(tx *Tx, before time.Time, limit int) (int, error) { return tx.PruneSessions(ctx, before, limit) })
}

// BenchmarkPruneLoginMarks: 100,000 login marks of 100 users, 300 of them
// first seen before the cut-off.
//
//	go test ./store/memory/ -run '^$' -bench PruneLoginMarks
func BenchmarkPruneLoginMarks(b *testing.B) {
	ctx := context.Background()
	s := seedRows(b, func(tx *Tx, j int) error {
		_, err := tx.MarkLogin(ctx, "ten_a", fmt.Sprintf("usr_%03d", j%100), fmt.Sprintf("dev_%06d", j), benchAt(j))
		return err
	})
	benchSweep(b, s, func(tx *Tx, before time.Time, limit int) (int, error) { return tx.PruneLoginMarks(ctx, before, limit) })
}

// BenchmarkShredUnusedTokens: 100,000 card tokens, each charged once when
// made; 300 of them made and charged before the cut-off; 200 of the
// others, made before it too, charged since or named by a live mandate.
//
//	go test ./store/memory/ -run '^$' -bench ShredUnusedTokens
func BenchmarkShredUnusedTokens(b *testing.B) {
	ctx := context.Background()
	s := seedRows(b, func(tx *Tx, j int) error {
		if j == 0 {
			if _, err := tx.EnsureTenantKey(ctx, &vault.TenantKey{ID: "key_a", TenantID: "ten_a", KEKVersion: 1,
				Wrapped: []byte("wrapped"), CreatedAt: benchT0}); err != nil {
				return err
			}
		}
		made, charged := benchAt(j), benchAt(j)
		if j%1000 == 500 || j%1000 == 501 {
			made = benchT0.Add(time.Duration(j) * time.Second) // old but in use
		}
		id := fmt.Sprintf("tok_%06d", j)
		if err := tx.CreateToken(ctx, &vault.Token{ID: id, TenantID: "ten_a", TenantKeyID: "key_a", Brand: "visa",
			Last4: "4242", WrappedDEK: make([]byte, 40), Ciphertext: make([]byte, 64), CreatedAt: made}); err != nil {
			return err
		}
		if j%1000 == 501 {
			return tx.CreateMandate(ctx, &mandates.Mandate{ID: fmt.Sprintf("mdt_%06d", j), TenantID: "ten_a", Payer: "p",
				Agent: "agt", Status: mandates.StatusActive, Limits: mandates.Limits{PaymentMethods: []string{id}},
				CreatedAt: made})
		}
		return tx.CreateCharge(ctx, &payments.Charge{ID: fmt.Sprintf("ch_%06d", j), TenantID: "ten_a",
			Status: payments.StatusSucceeded, Amount: 100, AmountCaptured: 100, Currency: "eur", PaymentMethod: id,
			Created: charged, Updated: charged})
	})
	benchSweep(b, s, func(tx *Tx, before time.Time, limit int) (int, error) {
		return tx.ShredUnusedTokens(context.Background(), before, before, limit)
	})
}

// Package charging decides and makes agent charges and owns their
// transactions (DESIGN.md §3.4): verify the token (done by the HTTP layer's
// agent authenticator) → the outcome of a charge already made under the
// request's Idempotency-Key, if any, is the answer → load the mandate chain
// and revocation state → gather velocity signals → OPA decision → in one
// transaction: re-check revocations and every agent along the mandate
// chain, reserve the amount on the mandate and every ancestor (root
// first), insert the charge (the payment core's Open step), its hold,
// decision record, audit entry and outbox event → processor → in one
// transaction: record the answer (Record) and settle the hold. Captures,
// voids, refunds and the resolver run here too, for every charge, so a
// budget moves in the same transaction as the charge it follows. It also
// runs step-up approvals and binds the payment_mandate authorization
// details type to the issuer.
//
// # The ledger rule
//
// A mandate's spent equals, over the agent charges made on it and on every
// mandate below it:
//
//   - the amount of each charge that is pending or authorized
//     (requires_capture),
//   - plus the captured amount of each captured charge, minus its
//     SUCCEEDED refunds,
//   - and nothing for a failed or voided charge.
//
// A refund gives budget back only when the processor confirms it, in the
// transaction that records the confirmation; a pending, failed or lost
// refund never does (the charge's amount_refunded counts pending refunds
// too, so that refunds never exceed the captured amount, which is why the
// ledger never reads it). Each charge's Hold is its term of that sum;
// Holds states it and CheckLedger recomputes every mandate from a
// LedgerSnapshot, as the conformance suite and the end-to-end tests do
// after their runs.
//
// # Retries
//
// A charge is made once per agent, mandate and Idempotency-Key: a retry
// under the same key gets the outcome of the charge made under it
// (succeeded, declined, or *PendingError while the processor's answer is
// not recorded), looked up before any decision, so a charge that went
// through is never reported as refused by a second decision that sees
// its own budget spent.
package charging

package postgres

// SetSession makes the store name the session a claim records, as if its
// session goroutine still believed in it (tests only).
func (s *Store) SetSession(name string, pid uint32) { s.sess.set(name, pid) }

// SessionPID is the backend pid of the store's session (tests only).
func (s *Store) SessionPID() uint32 {
	_, pid := s.sess.current()
	return pid
}

// ForgetAuditPersonalSQL is the statement of ForgetAuditPersonal (tests only).
const ForgetAuditPersonalSQL = forgetAuditPersonalSQL

// ForgetEventIPsSQL is the statement of ForgetEventIPs (tests only).
const ForgetEventIPsSQL = forgetEventIPsSQL

// UnsealedAuditSQL and PendingAuditSQL are the sealer queue's reads
// (tests only).
var UnsealedAuditSQL, PendingAuditSQL = unsealedAuditSQL, pendingAuditSQL

// ChargeByIDSQL reads a charge by id and tenant, UpdateChargeSQL updates
// one (tests only).
const ChargeByIDSQL, UpdateChargeSQL = chargeByID, updateChargeSQL

// ScrubChargesSQL selects the charges retention's scrub empties (tests only).
const ScrubChargesSQL = scrubChargesSQL

// ShredTokensSQL selects the card tokens retention's shred erases (tests
// only).
const ShredTokensSQL = shredTokensSQL

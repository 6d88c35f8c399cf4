// Package audit is the tamper-evident audit trail: one entry for every API
// request and every state change, written in the same transaction as the
// change, later sealed into a hash chain whose head is signed, so auditors
// can verify it against a checkpoint they keep outside the database.
//
// # How it is built
//
// Appending never takes a global lock. An entry is inserted with the hash
// of its own content and a gap-free number on a stripe: a counter row that
// the writing transaction takes with FOR UPDATE SKIP LOCKED, so concurrent
// appends use different stripes and never wait on each other, while a
// stripe's numbers commit in order and a rolled-back append leaves no
// hole. A sealer (one at a time, on any node) links committed entries into
// the chain: chain_pos, prev_hash and hash, the link covering the content
// hash, the position and the entry's number. (On PostgreSQL the links are
// rows of their own, audit_seals, and an append queues its entry in
// audit_unsealed: an entry is written once and never rewritten.) Every
// checkpoint interval (one second by default) while the head moves, and
// on demand, the sealer signs a checkpoint (chain position, head hash,
// time and every stripe's counter) with the audit signing key: Ed25519,
// used for nothing else, its private half sealed under the signing KEK
// like the token signing keys. Retention removes old entries only under a
// signed retention record naming the removed range, the hash of the last
// removed link (the new anchor) and the stripes' floors.
//
// Verification walks the chain from the anchor and recomputes every hash;
// checks that each stripe's numbers run without a hole from its floor to
// its counter and that no counter fell below a signed one; checks every
// stored checkpoint against the link at its position and every retention
// record against the anchor; and, given a checkpoint exported earlier
// (ExportCheckpoint, `perfectpay audit checkpoint export`), checks that the
// link at its position still has the signed hash. With that file it trusts
// only the audit public keys exported in it.
//
// # Personal values outside the hash
//
// An entry's IP is personal data the right to erasure reaches, but the
// chain must never change. Entries are written in FormatPseudonymous: the
// content hash covers IPDigest, SHA-256 of a random per-entry salt and the
// IP, while the IP and its salt are stored beside the hashed content.
// Erasing a customer deletes both from the entries of their own acts
// (ForgetPersonal); the digest left names no one, and the chain verifies
// as before. Verification checks that an IP still held matches its digest,
// so it can be forgotten but not changed. Entries written before this
// format (FormatClear) hash the IP itself: erasure cannot forget it
// without breaking the chain, so they keep it until audit retention
// removes them whole.
//
// # Threat model: a database writer without the audit signing key
//
// The attacker can run any SQL on the database (or edit the memory
// store's tables) but has neither the signing KEK nor the audit private
// key. Verified with a checkpoint file held outside the database, taken at
// position P:
//
//   - Editing, deleting, inserting or reordering any entry at or below P is
//     detected, even with every later hash recomputed and relinked and the
//     head moved ("rewritten"): the link at P no longer has the signed hash.
//     The same holds up to the newest stored checkpoint the attacker leaves
//     in place.
//   - Removing a prefix of the chain and moving the anchor is detected
//     unless a signed retention record removed exactly that range ("prefix
//     deleted"); a record cannot be forged, stretched or replayed elsewhere.
//   - Deleting an entry that committed but was not yet sealed is detected
//     ("fresh entry deleted"): it leaves a hole in its stripe's numbers, or
//     a counter above the last entry. Hiding the hole takes renumbering
//     every later entry of the stripe and rolling the counter back, which
//     fails once a checkpoint signed a counter that included the entry, or
//     sealed a later entry of its stripe at or below P.
//   - Cutting the chain below P is detected ("truncated"), and so are
//     checkpoints or retention records signed with any key not in the file.
//
// What the attacker can do undetected:
//
//   - Delete, rewrite or add entries after P, if it also deletes every stored
//     checkpoint after P (stored checkpoints can be deleted, not forged):
//     fresh entries can be renumbered and counters rolled back as long as
//     no surviving checkpoint signed them. How often checkpoints are
//     exported bounds what can be lost this way; the one-second signing
//     interval bounds it only while the stored checkpoints survive.
//   - Without a checkpoint file, replace the stored keys with its own and
//     re-sign everything: `audit verify` without --checkpoint trusts the
//     database and proves nothing against its writer.
//   - Read every entry (the trail is not confidential), and stop new
//     entries from being written by refusing writes.
//
// Whoever holds the signing KEK, or the opened audit key of a running
// node, can sign anything and is outside this model. Retention is trusted
// on first use once: the first audit key ever created adopts an anchor
// left by retention from before records were signed.
package audit

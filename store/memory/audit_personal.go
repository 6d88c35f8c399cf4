package memory

import (
	"slices"

	"github.com/perfectpay/perfectpay/audit"
)

// An erasure forgets the IP of a person's audit entries (see
// audit.ForgetPersonal): the pseudonymous entries of a tenant still
// holding an IP that a user did as that person, or that a user or the
// system wrote about that person. The log holds one or more entries per
// issued token, by agents, which no erasure selects; so the index of the
// entries an erasure may select keeps those of users and the system only,
// the seqs of each person's, and a token costs it nothing. Entries of no
// tenant (the token endpoint's before it knows its caller) are left out
// too: an erasure is of a tenant's person, and one of no tenant reads the
// whole log.

// personKey names a person of a tenant: the actor or target of entries.
type personKey struct{ tenantID, person string }

// personalIndex holds, for each person, the seqs of the entries an
// erasure of that person may select, ascending. A seq stays listed when
// its entry is forgotten under another person or deleted behind the
// chain's back: readers check the entry again. PruneAudit takes the
// pruned entries out; an erasure takes its person's list out whole.
type personalIndex = table[personKey, []int64]

// mayBePersonal says from the record's shared part alone whether an
// erasure may select it: a pseudonymous entry of a tenant, by a user or
// the system. Agents' and API keys' entries stop here.
func (a auditRec) mayBePersonal() bool {
	c := a.common.Value()
	return c.format == audit.FormatPseudonymous && c.tenantID != "" &&
		(c.actorType == audit.ActorUser || c.actorType == audit.ActorSystem)
}

// personalKeys are the people whose erasure selects e (as forgets
// does), at most two.
func personalKeys(e *audit.Entry) []personKey {
	if e.IP == "" && e.IPSalt == nil {
		return nil
	}
	return listedUnder(e)
}

// listedUnder are the people under whose lists e is or was listed,
// whether or not it still holds an IP: an erasure of one of them clears
// the IP but leaves the seq in the other's list, and a prune must take
// it out of both.
func listedUnder(e *audit.Entry) []personKey {
	if e.Format != audit.FormatPseudonymous || e.TenantID == "" {
		return nil
	}
	var out []personKey
	if e.ActorType == audit.ActorUser && e.ActorID != "" {
		out = append(out, personKey{e.TenantID, e.ActorID})
	}
	if (e.ActorType == audit.ActorUser || e.ActorType == audit.ActorSystem) && e.Target != "" &&
		(e.ActorType != audit.ActorUser || e.Target != e.ActorID) {
		out = append(out, personKey{e.TenantID, e.Target})
	}
	return out
}

// notePersonal lists the appended entry e under the people whose
// erasure selects it.
func (tx *Tx) notePersonal(e *audit.Entry) {
	keys := personalKeys(e)
	if len(keys) == 0 {
		return
	}
	l := &tx.d.auditLog
	if l.personal == nil {
		l.personal = personalIndex{}
	}
	for _, k := range keys {
		put(tx, l.personal, k, append(l.personal[k], e.Seq))
	}
}

// unlistPersonal takes the entries deleted since out of the lists of
// keys.
func (tx *Tx) unlistPersonal(keys map[personKey]bool) {
	l := tx.d.auditLog.personal
	for k := range keys {
		kept := slices.DeleteFunc(slices.Clone(l[k]), func(seq int64) bool {
			_, ok := tx.d.auditEntries[seq]
			return !ok
		})
		if len(kept) == 0 {
			del(tx, l, k)
		} else {
			put(tx, l, k, kept)
		}
	}
}

// reindexPersonal rebuilds the erasure index from the entries, in seq
// order.
func (s *Store) reindexPersonal() {
	x := personalIndex{}
	for _, seq := range s.d.auditLog.order {
		r := s.d.auditEntries[seq]
		if !r.mayBePersonal() {
			continue
		}
		e := r.entry(seq, true)
		for _, k := range personalKeys(&e) {
			x[k] = append(x[k], seq)
		}
	}
	s.d.auditLog.personal = x
}

package memory

import (
	"context"
	"slices"
	"strings"

	"github.com/perfectpay/perfectpay/accounts"
	"github.com/perfectpay/perfectpay/audit"
	"github.com/perfectpay/perfectpay/store"
)

var _ accounts.ErasureRepo = (*Tx)(nil)

func (tx *Tx) SetUserEmail(_ context.Context, tenantID, id, email string) error {
	p := tx.people()
	u, ok := p.users[id]
	if !ok || u.TenantID != tenantID {
		return store.ErrNotFound
	}
	if other, ok := p.byEmail[tenantID+"/"+email]; ok && other != id {
		return store.ErrConflict
	}
	del(tx, p.byEmail, tenantID+"/"+u.Email)
	c := u.Clone()
	c.Email = email
	put(tx, p.users, id, *c)
	put(tx, p.byEmail, tenantID+"/"+email, id)
	return nil
}

// DeleteUserPasskeys deletes the user's passkeys, in credential id
// order. It reads them from passkeysByUser, from the user's first key.
func (tx *Tx) DeleteUserPasskeys(_ context.Context, tenantID, userID string) (int, error) {
	p := tx.people()
	ids := p.userPasskeys(tenantID, userID)
	for _, id := range ids {
		p.passkeysByUser.drop(tx, userPasskey{tenantID, userID, id})
		del(tx, p.passkeys, id)
	}
	return len(ids), nil
}

// DeleteLoginMarks deletes the user's login marks, in key order. It
// reads the keys of the user's prefix from marksByKey, from the first.
func (tx *Tx) DeleteLoginMarks(_ context.Context, tenantID, userID string) (int, error) {
	p := tx.people()
	prefix := userKey(tenantID, userID) + "/"
	var keys []string
	p.marksByKey.walkFrom(prefix, func(k string) bool {
		if !strings.HasPrefix(k, prefix) {
			return false
		}
		keys = append(keys, k)
		return true
	})
	for _, k := range keys {
		tx.delMark(k)
	}
	return len(keys), nil
}

// ForgetAuditPersonal clears the IP and its salt of the entries f
// selects, in seq order. It reads the person's entries from the erasure
// index (audit_personal.go), not the log; an erasure of no tenant, which
// the index leaves out, reads the log.
func (tx *Tx) ForgetAuditPersonal(_ context.Context, f audit.ForgetPersonal) (int, error) {
	var seqs []int64
	selects := func(seq int64, r auditRec) {
		if e := r.entry(seq, false); e.Format != audit.FormatPseudonymous || !forgets(f, &e) {
			return
		}
		if e := r.entry(seq, true); e.IP != "" || e.IPSalt != nil {
			seqs = append(seqs, seq)
		}
	}
	if f.TenantID == "" {
		for seq, r := range tx.d.auditEntries {
			selects(seq, r)
		}
		slices.Sort(seqs)
	} else {
		l, k := tx.d.auditLog.personal, personKey{f.TenantID, f.Subject}
		for _, seq := range l[k] {
			if r, ok := tx.d.auditEntries[seq]; ok {
				selects(seq, r)
			}
		}
		// None of the person's entries holds an IP any longer.
		del(tx, l, k)
	}
	for _, seq := range seqs {
		e := tx.d.auditEntries[seq].entry(seq, true)
		e.IP, e.IPSalt = "", nil
		put(tx, tx.d.auditEntries, seq, packAudit(&e))
	}
	return len(seqs), nil
}

// forgets says whether f selects e (see audit.ForgetPersonal).
func forgets(f audit.ForgetPersonal, e *audit.Entry) bool {
	if e.TenantID != f.TenantID || f.Subject == "" {
		return false
	}
	return (e.ActorType == audit.ActorUser && e.ActorID == f.Subject) ||
		((e.ActorType == audit.ActorSystem || e.ActorType == audit.ActorUser) && e.Target == f.Subject)
}

// ForgetEventIPs removes the "ip" of the person's events, in the order
// they were written. It reads them from eventIPs (events.go), not every
// event, then drops their list: none of them holds an address any longer.
func (tx *Tx) ForgetEventIPs(_ context.Context, tenantID, userID string) (int, error) {
	l, k := tx.people().eventIPs, personKey{tenantID, userID}
	n := 0
	for _, id := range l[k] {
		e := tx.d.events[id]
		doc, user, ok := eventIPUser(e.Data)
		if !ok || e.TenantID != tenantID || user != userID {
			continue
		}
		b, err := doc.forgetIP()
		if err != nil {
			return n, err
		}
		e.Data = b
		put(tx, tx.d.events, id, e)
		n++
	}
	del(tx, l, k)
	return n, nil
}

package memory

import (
	"encoding/binary"
	"strings"
	"time"
	"unique"

	"github.com/perfectpay/perfectpay/audit"
)

// auditRec is an audit entry as the memory store holds it: a node keeps
// every entry for its retention period, one or more per issued token, so
// an entry costs what it must and no more. The values many entries share
// (tenant, actor, address, action, route) are one interned handle; the
// rest is packed into one string, sized exactly: times and counters as
// varints, byte fields behind their lengths. The struct this replaced held
// sixteen headers and five separately allocated byte slices per entry.
type auditRec struct {
	common unique.Handle[auditCommon]
	packed string
}

// auditCommon is the part of an entry that repeats across entries.
type auditCommon struct {
	tenantID, actorType, actorID, ip, action, method, route string
	status, format, stripe                                  int
}

// packAudit returns e as a record. The entry's Seq is the table's key.
func packAudit(e *audit.Entry) auditRec {
	c := unique.Make(auditCommon{
		tenantID: e.TenantID, actorType: e.ActorType, actorID: e.ActorID, ip: e.IP, action: e.Action,
		method: e.Method, route: e.Route, status: e.Status, format: e.Format, stripe: e.Stripe,
	})
	fields := [...][]byte{e.Data, e.IPSalt, e.IPDigest, e.ContentHash, e.PrevHash, e.Hash}
	strs := [...]string{e.ID, e.Target, e.RequestID}
	micros := e.CreatedAt.UnixMicro()
	n := varintLen(micros) + varintLen(e.StripeSeq) + varintLen(e.ChainPos)
	for _, s := range strs {
		n += varintLen(int64(len(s))) + len(s)
	}
	for _, f := range fields {
		n += varintLen(int64(len(f))+1) + len(f)
	}
	var b strings.Builder
	b.Grow(n)
	var tmp [binary.MaxVarintLen64]byte
	for _, v := range [...]int64{micros, e.StripeSeq, e.ChainPos} {
		b.Write(binary.AppendVarint(tmp[:0], v))
	}
	for _, s := range strs {
		b.Write(binary.AppendVarint(tmp[:0], int64(len(s))))
		b.WriteString(s)
	}
	for _, f := range fields {
		// Length plus one, so a nil field (no IP, not sealed) reads back
		// as nil and an empty one as empty.
		l := int64(len(f)) + 1
		if f == nil {
			l = 0
		}
		b.Write(binary.AppendVarint(tmp[:0], l))
		b.Write(f)
	}
	return auditRec{common: c, packed: b.String()}
}

func varintLen(v int64) int {
	var tmp [binary.MaxVarintLen64]byte
	return len(binary.AppendVarint(tmp[:0], v))
}

// auditReader walks a packed record.
type auditReader struct{ s string }

func (r *auditReader) int() int64 {
	v, n := binary.Varint([]byte(r.s[:min(len(r.s), binary.MaxVarintLen64)]))
	r.s = r.s[n:]
	return v
}

func (r *auditReader) str() string {
	n := int(r.int())
	s := r.s[:n]
	r.s = r.s[n:]
	return s
}

// bytes returns a copy of the next byte field (callers own what they read).
func (r *auditReader) bytes() []byte {
	n := int(r.int())
	if n == 0 {
		return nil
	}
	b := []byte(r.s[:n-1])
	r.s = r.s[n-1:]
	return b
}

// skip passes over the next byte field.
func (r *auditReader) skip() {
	if n := int(r.int()); n > 0 {
		r.s = r.s[n-1:]
	}
}

// chainPos is the record's chain position (0 until sealed), read without
// unpacking the rest.
func (a auditRec) chainPos() int64 {
	r := auditReader{a.packed}
	r.int()
	r.int()
	return r.int()
}

// pending is what sealing reads of the record at seq, read without
// unpacking the rest.
func (a auditRec) pending(seq int64) audit.Pending {
	r := auditReader{a.packed}
	r.int()
	p := audit.Pending{Seq: seq, Stripe: a.common.Value().stripe, StripeSeq: r.int()}
	r.int()
	r.str()
	r.str()
	r.str()
	r.skip()
	r.skip()
	r.skip()
	p.ContentHash = r.bytes()
	return p
}

// entry unpacks the record at seq. With withBytes false it leaves out the
// byte fields (data, hashes, salt), which no filter reads.
func (a auditRec) entry(seq int64, withBytes bool) audit.Entry {
	c := a.common.Value()
	e := audit.Entry{
		Seq: seq, TenantID: c.tenantID, ActorType: c.actorType, ActorID: c.actorID, IP: c.ip, Action: c.action,
		Method: c.method, Route: c.route, Status: c.status, Format: c.format, Stripe: c.stripe,
	}
	r := auditReader{a.packed}
	e.CreatedAt = time.UnixMicro(r.int()).UTC()
	e.StripeSeq = r.int()
	e.ChainPos = r.int()
	e.ID, e.Target, e.RequestID = r.str(), r.str(), r.str()
	if withBytes {
		e.Data = r.bytes()
		e.IPSalt, e.IPDigest = r.bytes(), r.bytes()
		e.ContentHash, e.PrevHash, e.Hash = r.bytes(), r.bytes(), r.bytes()
	}
	return e
}

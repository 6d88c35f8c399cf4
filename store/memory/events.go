package memory

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"

	"github.com/perfectpay/perfectpay/events"
	"github.com/perfectpay/perfectpay/store"
)

var _ events.Outbox = (*Tx)(nil)

// EnqueueEvent inserts the event and fans it out: one pending delivery per
// enabled endpoint of the tenant subscribed to its type.
func (tx *Tx) EnqueueEvent(_ context.Context, e *events.Event) error {
	if _, ok := tx.d.events[e.ID]; ok {
		return store.ErrConflict
	}
	c := *e
	c.Data = slices.Clone(e.Data)
	put(tx, tx.d.events, e.ID, c)
	appendUndo(tx, &tx.d.eventOrder, e.ID)
	tx.noteEventIP(&c)
	tx.fanOut(&c)
	return nil
}

// An erasure forgets the address of the person's events (see
// ForgetEventIPs): those of the tenant whose object holds an "ip" and
// names the person as its "user", which suspicious sign-ins are. Nothing
// else changes an event, and nothing deletes one, so whether an erasure
// changes an event is known when it is written: eventIPs lists those
// events under their person, and ForgetEventIPs reads that list.
//
// Ordinary events (one or more per charge) hold no "ip" key; they are
// told apart without decoding them, and cost the index nothing.

// eventIPDoc is how ForgetEventIPs reads an event's data: its members
// and those of its "object", each kept as written.
type eventIPDoc struct {
	top, object map[string]json.RawMessage
}

// eventIPUser decodes data and returns its doc and the user it names,
// when its "object" (the key written so, as PostgreSQL's -> reads it)
// holds an "ip" and a "user" that is a JSON string: an event that an
// erasure of that user changes. A user of another type is no person's
// id (a user 7 is not the person "7"), and a user outside the object
// names nobody.
func eventIPUser(data []byte) (doc eventIPDoc, user string, ok bool) {
	if json.Unmarshal(data, &doc.top) != nil || json.Unmarshal(doc.top["object"], &doc.object) != nil ||
		doc.object["ip"] == nil {
		return doc, "", false
	}
	if u := doc.object["user"]; len(u) == 0 || u[0] != '"' || json.Unmarshal(u, &user) != nil {
		return doc, "", false
	}
	return doc, user, true
}

// forgetIP is data, read as doc, without the object's "ip": every other
// member, of the object or beside it, is kept, as PostgreSQL's #- does.
func (doc eventIPDoc) forgetIP() ([]byte, error) {
	delete(doc.object, "ip")
	obj, err := json.Marshal(doc.object)
	if err != nil {
		return nil, err
	}
	doc.top["object"] = obj
	return json.Marshal(doc.top)
}

// mayHoldIP says, without decoding data, whether its object may hold an
// "ip" key: the key is written "ip", or with its i or p escaped (other
// escapes, such as the \u0026 Go writes for &, cannot spell it).
func mayHoldIP(data []byte) bool {
	return bytes.Contains(data, []byte(`"ip"`)) || bytes.Contains(data, []byte(`\u0069`)) ||
		bytes.Contains(data, []byte(`\u0070`))
}

// noteEventIP lists the event e, just written, under the person whose
// erasure changes it, if any.
func (tx *Tx) noteEventIP(e *events.Event) {
	if !mayHoldIP(e.Data) {
		return
	}
	if _, user, ok := eventIPUser(e.Data); ok {
		l, k := tx.people().eventIPs, personKey{e.TenantID, user}
		put(tx, l, k, append(l[k], e.ID))
	}
}

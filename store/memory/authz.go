package memory

import (
	"cmp"
	"context"
	"encoding/hex"
	"slices"
	"strings"
	"time"

	"github.com/perfectpay/perfectpay/accounts"
	"github.com/perfectpay/perfectpay/authz"
	"github.com/perfectpay/perfectpay/store"
)

var _ authz.Repo = (*Tx)(nil)
var _ authz.Listener = (*Store)(nil)

type jtiKey struct{ ns, jti string }
type tokKey struct{ kind, sig string }
type revKey struct{ kind, id string }

// authzData is the issuer's tables.
type authzData struct {
	agents table[string, authz.Agent]
	// agentsByTenant holds every agent by tenant, creation, then id: a
	// page of ListAgents reads the page (see putAgent).
	agentsByTenant *ordered[tenantAgent]
	jtis           table[jtiKey, time.Time]
	tokens         table[tokKey, *tokRow]
	// The token sessions of each grant family, so that revoking a family
	// reads its sessions alone (see addToFamily).
	fam1        table[[16]byte, string]
	famN        table[familyID, []tokKey]
	revocations table[revKey, authz.Revocation]
	keys        table[string, authz.SigningKey]
	delegations table[[2]string, authz.Delegation]
	// delegatedFrom counts the delegations naming each jti, so an access
	// token's revocation asks one key (a delegation is never changed or
	// deleted).
	delegatedFrom table[string, int]

	// listeners get NotifyAuthz payloads; guarded by Store.mu.
	listeners map[int]func(string)
	nextID    int
}

func newAuthzData() *authzData {
	return &authzData{
		agents:         table[string, authz.Agent]{},
		agentsByTenant: newOrdered(compareTenantAgents, nil),
		jtis:           table[jtiKey, time.Time]{},
		tokens:         table[tokKey, *tokRow]{},
		fam1:           table[[16]byte, string]{},
		famN:           table[familyID, []tokKey]{},
		revocations:    table[revKey, authz.Revocation]{},
		keys:           table[string, authz.SigningKey]{},
		delegations:    table[[2]string, authz.Delegation]{},
		delegatedFrom:  table[string, int]{},
		listeners:      map[int]func(string){},
	}
}

func cloneAgent(a authz.Agent) authz.Agent {
	a.JWKS = slices.Clone(a.JWKS)
	a.SecretHash = slices.Clone(a.SecretHash)
	a.GrantTypes = slices.Clone(a.GrantTypes)
	a.Scopes = slices.Clone(a.Scopes)
	a.Audiences = slices.Clone(a.Audiences)
	a.RedirectURIs = slices.Clone(a.RedirectURIs)
	a.SuspendedAt = cloneTime(a.SuspendedAt)
	a.RevokedAt = cloneTime(a.RevokedAt)
	return a
}

func cloneTime(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	c := *t
	return &c
}

func (tx *Tx) CreateAgent(_ context.Context, a *authz.Agent) error {
	if _, ok := tx.d.authz.agents[a.ID]; ok {
		return store.ErrConflict
	}
	if _, ok := tx.d.tenants[a.TenantID]; !ok {
		return store.ErrNotFound
	}
	tx.putAgent(cloneAgent(*a))
	return nil
}

// tenantAgent is an agent's key in agentsByTenant.
type tenantAgent struct {
	tenantID string
	created  stamp
	id       string
}

func compareTenantAgents(a, b tenantAgent) int {
	return cmp.Or(cmp.Compare(a.tenantID, b.tenantID), a.created.compare(b.created), cmp.Compare(a.id, b.id))
}

func agentKey(a *authz.Agent) tenantAgent { return tenantAgent{a.TenantID, stampOf(a.CreatedAt), a.ID} }

// putAgent writes a, a copy the table may keep, and moves its entry in
// agentsByTenant when its key changed: every write of an agent goes
// through it.
func (tx *Tx) putAgent(a authz.Agent) {
	d := tx.d.authz
	old, had := d.agents[a.ID]
	put(tx, d.agents, a.ID, a)
	relist(tx, d.agentsByTenant, had, agentKey(&old), agentKey(&a))
}

func (tx *Tx) GetAgent(_ context.Context, id string) (*authz.Agent, error) {
	a, ok := tx.d.authz.agents[id]
	if !ok {
		return nil, store.ErrNotFound
	}
	a = cloneAgent(a)
	return &a, nil
}

// ListAgents reads a page of the tenant's agents by creation, then id,
// from agentsByTenant: from the tenant's first agent, or from after when
// it is one of them (an after that is not gives an empty page).
func (tx *Tx) ListAgents(_ context.Context, tenantID, after string, limit int) ([]authz.Agent, error) {
	d := tx.d.authz
	out := []authz.Agent{}
	from := tenantAgent{tenantID: tenantID, created: firstStamp}
	if after != "" {
		a, ok := d.agents[after]
		if !ok || a.TenantID != tenantID {
			return out, nil
		}
		from = agentKey(&a)
	}
	d.agentsByTenant.walkFrom(from, func(k tenantAgent) bool {
		if k.tenantID != tenantID || (limit > 0 && len(out) == limit) {
			return false
		}
		if k.id != after {
			out = append(out, cloneAgent(d.agents[k.id]))
		}
		return true
	})
	return out, nil
}

func (tx *Tx) UpdateAgent(_ context.Context, a *authz.Agent) error {
	old, ok := tx.d.authz.agents[a.ID]
	if !ok || old.TenantID != a.TenantID {
		return store.ErrNotFound
	}
	tx.putAgent(cloneAgent(*a))
	return nil
}

func (tx *Tx) UseJTI(_ context.Context, ns, jti string, exp time.Time) error {
	k := jtiKey{ns, jti}
	if old, ok := tx.d.authz.jtis[k]; ok && old.After(tx.now) {
		return store.ErrConflict
	}
	put(tx, tx.d.authz.jtis, k, exp)
	tx.exp.jti.push(exp, k)
	return nil
}

// tokRow is a token session as the memory store holds it, one per live
// token: its key is not repeated, times are Unix microseconds (the
// precision PostgreSQL keeps) instead of 24-byte time.Time values, and a
// grant family id that is a UUID (fosite's request ids) is held as its 16
// bytes rather than a 36-character string. The table holds pointers:
// a row inline would make every slot of the map, used or not, row-sized.
// A row is never changed in place (a change puts a new one), so a
// rollback can put the old one back.
type tokRow struct {
	family    familyID
	clientID  string
	tenantID  string
	accessSig string
	data      []byte
	created   int64
	expires   int64
	active    bool
}

func newTokRow(s *authz.TokenSession) *tokRow {
	return &tokRow{family: newFamilyID(s.RequestID), clientID: s.ClientID, tenantID: s.TenantID, accessSig: s.AccessSignature,
		data: slices.Clone(s.Data), created: s.CreatedAt.UnixMicro(), expires: s.ExpiresAt.UnixMicro(), active: s.Active}
}

func (r *tokRow) session(k tokKey) authz.TokenSession {
	return authz.TokenSession{Kind: k.kind, Signature: k.sig, RequestID: r.family.String(), ClientID: r.clientID,
		TenantID: r.tenantID, AccessSignature: r.accessSig, Active: r.active, Data: slices.Clone(r.data),
		CreatedAt: time.UnixMicro(r.created).UTC(), ExpiresAt: time.UnixMicro(r.expires).UTC()}
}

// familyID is a grant family id: the 16 bytes of a UUID in its canonical
// lower-case form, or else the string itself.
type familyID struct {
	uuid  [16]byte
	other string
}

func newFamilyID(s string) familyID {
	if u, ok := parseUUID(s); ok {
		return familyID{uuid: u}
	}
	return familyID{other: s}
}

func (f familyID) String() string {
	if f.other != "" || f.uuid == [16]byte{} {
		return f.other
	}
	var b [36]byte
	hex.Encode(b[0:8], f.uuid[0:4])
	b[8] = '-'
	hex.Encode(b[9:13], f.uuid[4:6])
	b[13] = '-'
	hex.Encode(b[14:18], f.uuid[6:8])
	b[18] = '-'
	hex.Encode(b[19:23], f.uuid[8:10])
	b[23] = '-'
	hex.Encode(b[24:], f.uuid[10:])
	return string(b[:])
}

// parseUUID reads a UUID in the canonical form String writes back
// (lower-case hex, hyphens at 8, 13, 18 and 23); the nil UUID is not one,
// so the zero familyID stays the empty string.
func parseUUID(s string) (u [16]byte, ok bool) {
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' || strings.ContainsAny(s, "ABCDEF") {
		return u, false
	}
	at := 0
	for _, g := range [5][2]int{{0, 8}, {9, 13}, {14, 18}, {19, 23}, {24, 36}} {
		n, err := hex.Decode(u[at:], []byte(s[g[0]:g[1]]))
		if err != nil {
			return u, false
		}
		at += n
	}
	return u, u != [16]byte{}
}

func (tx *Tx) CreateTokenSession(_ context.Context, s *authz.TokenSession) error {
	k := tokKey{s.Kind, s.Signature}
	if _, ok := tx.d.authz.tokens[k]; ok {
		return store.ErrConflict
	}
	r := newTokRow(s)
	put(tx, tx.d.authz.tokens, k, r)
	tx.addToFamily(k, r.family)
	tx.exp.token.push(s.ExpiresAt, k)
	return nil
}

func (tx *Tx) GetTokenSession(_ context.Context, kind, signature string) (*authz.TokenSession, error) {
	k := tokKey{kind, signature}
	r, ok := tx.d.authz.tokens[k]
	if !ok {
		return nil, store.ErrNotFound
	}
	s := r.session(k)
	return &s, nil
}

func (tx *Tx) DeleteTokenSession(_ context.Context, kind, signature string) error {
	tx.delToken(tokKey{kind, signature})
	return nil
}

// Revoking a grant family must reach every session of the family, and a
// family is found by its id alone, so the sessions are indexed by family.
// Most families are a client_credentials grant's one access token: those
// are held in fam1, by the UUID's 16 bytes, as the token's signature (a
// string header sharing the key's bytes), which costs a live token far
// less than a list would. Every other family (more than one session, a
// refresh token or authorization code, an id that is not a UUID) is a
// list in famN. A family is in one of the two or in neither. The lists
// are never changed in place: a rollback puts the old one back.

// addToFamily indexes the session at k under its family f.
func (tx *Tx) addToFamily(k tokKey, f familyID) {
	a := tx.d.authz
	if keys, ok := a.famN[f]; ok {
		put(tx, a.famN, f, append(slices.Clip(keys), k))
		return
	}
	if f.other == "" && f.uuid != [16]byte{} {
		if sig, ok := a.fam1[f.uuid]; ok {
			del(tx, a.fam1, f.uuid)
			put(tx, a.famN, f, []tokKey{{authz.KindAccess, sig}, k})
			return
		}
		if k.kind == authz.KindAccess {
			put(tx, a.fam1, f.uuid, k.sig)
			return
		}
	}
	put(tx, a.famN, f, []tokKey{k})
}

// family lists the keys of the sessions of family f.
func (tx *Tx) family(f familyID) []tokKey {
	a := tx.d.authz
	if f.other == "" {
		if sig, ok := a.fam1[f.uuid]; ok {
			return []tokKey{{authz.KindAccess, sig}}
		}
	}
	return a.famN[f]
}

// delToken deletes the session at k and its place in its family.
func (tx *Tx) delToken(k tokKey) {
	a := tx.d.authz
	r, ok := a.tokens[k]
	if !ok {
		return
	}
	del(tx, a.tokens, k)
	f := r.family
	if f.other == "" && k.kind == authz.KindAccess {
		if sig, ok := a.fam1[f.uuid]; ok && sig == k.sig {
			del(tx, a.fam1, f.uuid)
			return
		}
	}
	unlist(tx, a.famN, f, k)
}

func (tx *Tx) DeactivateTokenSession(_ context.Context, kind, signature string) error {
	k := tokKey{kind, signature}
	r, ok := tx.d.authz.tokens[k]
	if !ok {
		return store.ErrNotFound
	}
	if !r.active {
		return store.ErrConflict
	}
	c := *r
	c.active = false
	put(tx, tx.d.authz.tokens, k, &c)
	return nil
}

func (tx *Tx) DeactivateTokenFamily(_ context.Context, requestID string, now time.Time) ([]authz.TokenSession, error) {
	fam := newFamilyID(requestID)
	at := now.UnixMicro()
	var live []authz.TokenSession
	for _, k := range tx.family(fam) {
		r, ok := tx.d.authz.tokens[k]
		if !ok {
			continue // the index names only rows that exist; never fail a revocation on it
		}
		if r.active {
			c := *r
			c.active = false
			put(tx, tx.d.authz.tokens, k, &c)
		}
		if k.kind == authz.KindAccess && r.expires > at {
			live = append(live, r.session(k))
		}
	}
	slices.SortFunc(live, func(a, b authz.TokenSession) int { return strings.Compare(a.Signature, b.Signature) })
	return live, nil
}

func (tx *Tx) IsRevoked(_ context.Context, jti, clientID, tenantID string) (string, error) {
	r := tx.d.authz.revocations
	if tenantID != "" {
		if _, ok := r[revKey{authz.RevokedTenant, tenantID}]; ok {
			return authz.RevokedTenant, nil
		}
		if t, ok := tx.d.tenants[tenantID]; ok && t.Status == accounts.TenantRevoked {
			return authz.RevokedTenant, nil
		}
	}
	if clientID != "" {
		if _, ok := r[revKey{authz.RevokedAgent, clientID}]; ok {
			return authz.RevokedAgent, nil
		}
	}
	if jti != "" {
		if _, ok := r[revKey{authz.RevokedToken, jti}]; ok {
			return authz.RevokedToken, nil
		}
	}
	return "", nil
}

func (tx *Tx) Revoke(_ context.Context, r *authz.Revocation) error {
	k := revKey{r.Kind, r.ID}
	if old, ok := tx.d.authz.revocations[k]; ok && !(old.Reason == "suspended" && r.Reason != "suspended") {
		return nil
	}
	c := *r
	c.ExpiresAt = cloneTime(r.ExpiresAt)
	put(tx, tx.d.authz.revocations, k, c)
	if c.ExpiresAt != nil {
		tx.exp.rev.push(*c.ExpiresAt, k)
	}
	return nil
}

func (tx *Tx) Unrevoke(_ context.Context, kind, id string) error {
	del(tx, tx.d.authz.revocations, revKey{kind, id})
	return nil
}

func (tx *Tx) RecordDelegation(_ context.Context, d *authz.Delegation) error {
	k := [2]string{d.TenantID, d.GrantKey}
	if _, ok := tx.d.authz.delegations[k]; ok {
		return nil
	}
	if _, ok := tx.d.tenants[d.TenantID]; !ok {
		return store.ErrNotFound
	}
	c := *d
	c.DelegatedFrom = slices.Clone(d.DelegatedFrom)
	put(tx, tx.d.authz.delegations, k, c)
	for _, jti := range c.DelegatedFrom {
		put(tx, tx.d.authz.delegatedFrom, jti, tx.d.authz.delegatedFrom[jti]+1)
	}
	return nil
}

func (tx *Tx) GetDelegation(_ context.Context, tenantID, grantKey string) (*authz.Delegation, error) {
	d, ok := tx.d.authz.delegations[[2]string{tenantID, grantKey}]
	if !ok {
		return nil, store.ErrNotFound
	}
	d.DelegatedFrom = slices.Clone(d.DelegatedFrom)
	return &d, nil
}

func (tx *Tx) DelegatedFrom(_ context.Context, jti string) (bool, error) {
	return tx.d.authz.delegatedFrom[jti] > 0, nil
}

// LockTokenFamily is a no-op: memory transactions are already serialized.
func (tx *Tx) LockTokenFamily(context.Context, string) error { return nil }

func cloneSigningKey(k authz.SigningKey) authz.SigningKey {
	k.PublicJWK = slices.Clone(k.PublicJWK)
	k.PrivateEnc = slices.Clone(k.PrivateEnc)
	k.RetiredAt = cloneTime(k.RetiredAt)
	k.ExpiresAt = cloneTime(k.ExpiresAt)
	return k
}

func (tx *Tx) CreateSigningKey(_ context.Context, k *authz.SigningKey) error {
	if _, ok := tx.d.authz.keys[k.KID]; ok {
		return store.ErrConflict
	}
	put(tx, tx.d.authz.keys, k.KID, cloneSigningKey(*k))
	return nil
}

func (tx *Tx) ListSigningKeys(context.Context) ([]authz.SigningKey, error) {
	out := []authz.SigningKey{}
	for _, k := range tx.d.authz.keys {
		out = append(out, cloneSigningKey(k))
	}
	slices.SortFunc(out, func(a, b authz.SigningKey) int {
		if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(b.KID, a.KID)
	})
	return out, nil
}

func (tx *Tx) UpdateSigningKey(_ context.Context, k *authz.SigningKey) error {
	if _, ok := tx.d.authz.keys[k.KID]; !ok {
		return store.ErrNotFound
	}
	put(tx, tx.d.authz.keys, k.KID, cloneSigningKey(*k))
	return nil
}

func (tx *Tx) DeleteSigningKey(_ context.Context, kid string) error {
	del(tx, tx.d.authz.keys, kid)
	return nil
}

// LockSigningKeys is a no-op: memory transactions are already serialized.
func (tx *Tx) LockSigningKeys(context.Context) error { return nil }

// NotifyAuthz calls the listeners at once (they only drop caches, and the
// store lock keeps anyone from reading before this transaction ends).
func (tx *Tx) NotifyAuthz(_ context.Context, payload string) error {
	for _, fn := range tx.d.authz.listeners {
		fn(payload)
	}
	return nil
}

// PruneAuthz evicts what expired before before through the expiry
// indexes: its cost is the number of rows that expired, not the number
// held.
func (tx *Tx) PruneAuthz(_ context.Context, before time.Time) (int, error) {
	a := tx.d.authz
	n := expire(tx, &tx.exp.jti, before, func(k jtiKey) bool {
		if exp, ok := a.jtis[k]; ok && exp.Before(before) {
			del(tx, a.jtis, k)
			return true
		}
		return false
	})
	n += expire(tx, &tx.exp.token, before, func(k tokKey) bool {
		if r, ok := a.tokens[k]; ok && time.UnixMicro(r.expires).Before(before) {
			tx.delToken(k)
			return true
		}
		return false
	})
	n += expire(tx, &tx.exp.rev, before, func(k revKey) bool {
		if r, ok := a.revocations[k]; ok && r.ExpiresAt != nil && r.ExpiresAt.Before(before) {
			del(tx, a.revocations, k)
			return true
		}
		return false
	})
	return n, nil
}

// ListenAuthz registers fn for NotifyAuthz payloads until ctx ends.
func (s *Store) ListenAuthz(ctx context.Context, fn func(payload string)) error {
	s.mu.Lock()
	id := s.d.authz.nextID
	s.d.authz.nextID++
	s.d.authz.listeners[id] = fn
	s.mu.Unlock()
	<-ctx.Done()
	s.mu.Lock()
	delete(s.d.authz.listeners, id)
	s.mu.Unlock()
	return ctx.Err()
}

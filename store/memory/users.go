package memory

import (
	"cmp"
	"context"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/perfectpay/perfectpay/accounts"
	"github.com/perfectpay/perfectpay/store"
)

var _ accounts.UserRepo = (*Tx)(nil)

type recoveryCode struct {
	tenantID, userID string
	hash             string
	usedAt           *time.Time
}

type peopleData struct {
	users       table[string, accounts.User]
	byEmail     table[string, string] // tenant + "/" + email -> user id
	invitations table[string, accounts.Invitation]
	inviteHash  table[string, string] // token hash -> invitation id
	recovery    table[string, []recoveryCode]
	sessions    table[string, accounts.Session] // id hash -> session
	marks       table[string, time.Time]        // tenant/user/mark -> first seen
	passkeys    table[string, accounts.Passkey] // credential id -> passkey
	// sessionsByAge holds every session by creation, then ref (then id
	// hash): a batch of retention's PruneSessions reads the sessions it
	// deletes. Nothing changes a session's creation time or ref, so
	// CreateSession adds to it and delSession removes from it.
	sessionsByAge *ordered[sessionAge]
	// sessionsByUser holds every session by tenant, user, then id hash:
	// DeleteUserSessions reads the user's sessions, not every session.
	// Nothing changes a session's tenant or user, so CreateSession adds
	// to it and delSession removes from it.
	sessionsByUser *ordered[userSession]
	// marksByAge holds every login mark by first seen, then key: a batch
	// of retention's PruneLoginMarks reads the marks it deletes. A mark is
	// never rewritten, so MarkLogin adds to it and delMark removes from it.
	marksByAge *ordered[timedKey]
	// marksByKey holds every login mark's key (tenant/user/mark), in
	// order: DeleteLoginMarks reads the range of the user's prefix, not
	// every mark. MarkLogin adds to it and delMark removes from it.
	marksByKey *ordered[string]
	// passkeysByUser holds every passkey by tenant, user, then credential
	// id: a user's list and an erasure read the user's passkeys, not
	// every passkey. Nothing changes a passkey's tenant or user, so
	// AddPasskey adds to it and DeleteUserPasskeys removes from it.
	passkeysByUser *ordered[userPasskey]
	// eventIPs lists, per person of a tenant, the ids of the events an
	// erasure of that person changes, in the order they were written
	// (see noteEventIP): ForgetEventIPs reads them, not every event.
	eventIPs table[personKey, []string]
	// usersByTenant holds every user by tenant, kind, creation, then id:
	// a page of ListUsers reads its users from its cursor, not every
	// user. Nothing changes a user's tenant, kind or creation, and no user
	// is deleted, so CreateUser alone adds to it.
	usersByTenant *ordered[tenantUser]
}

// tenantUser is a user's key in usersByTenant.
type tenantUser struct {
	tenantID, kind string
	at             stamp
	id             string
}

func compareTenantUsers(a, b tenantUser) int {
	return cmp.Or(cmp.Compare(a.tenantID, b.tenantID), cmp.Compare(a.kind, b.kind), a.at.compare(b.at), cmp.Compare(a.id, b.id))
}

// firstStamp is before every instant: a walk from it starts a range.
// lastStamp is after every instant (no instant has a nanosecond of
// math.MaxInt32): a walk from it starts a range ordered newest first.
var (
	firstStamp = stamp{math.MinInt64, math.MinInt32}
	lastStamp  = stamp{math.MaxInt64, math.MaxInt32}
)

func listedUser(u *accounts.User) tenantUser {
	return tenantUser{u.TenantID, u.Kind, stampOf(u.CreatedAt), u.ID}
}

// sessionAge is a session's key in sessionsByAge.
type sessionAge struct {
	at        stamp
	ref, hash string
}

func compareSessionAges(a, b sessionAge) int {
	return cmp.Or(a.at.compare(b.at), cmp.Compare(a.ref, b.ref), cmp.Compare(a.hash, b.hash))
}

// userSession is a session's key in sessionsByUser.
type userSession struct{ tenantID, userID, hash string }

func compareUserSessions(a, b userSession) int {
	return cmp.Or(cmp.Compare(a.tenantID, b.tenantID), cmp.Compare(a.userID, b.userID), cmp.Compare(a.hash, b.hash))
}

// ageOf is the index key of s, stored at k (its id hash: the index
// shares the table's key).
func ageOf(k string, s *accounts.Session) sessionAge {
	return sessionAge{stampOf(s.CreatedAt), s.Ref, k}
}

// delSession deletes the session of id hash k, there, and its index
// entries.
func (tx *Tx) delSession(k string) {
	p := tx.people()
	s := p.sessions[k]
	p.sessionsByAge.drop(tx, ageOf(k, &s))
	p.sessionsByUser.drop(tx, userSession{s.TenantID, s.UserID, k})
	del(tx, p.sessions, k)
}

func newPeopleData() *peopleData {
	return &peopleData{users: table[string, accounts.User]{}, byEmail: table[string, string]{},
		invitations: table[string, accounts.Invitation]{}, inviteHash: table[string, string]{},
		recovery: table[string, []recoveryCode]{}, sessions: table[string, accounts.Session]{},
		marks: table[string, time.Time]{}, passkeys: table[string, accounts.Passkey]{},
		sessionsByAge: newOrdered(compareSessionAges, nil), marksByAge: newOrdered(compareTimed, nil),
		sessionsByUser: newOrdered(compareUserSessions, nil), marksByKey: newOrdered(strings.Compare, nil),
		passkeysByUser: newOrdered(compareUserPasskeys, nil), eventIPs: table[personKey, []string]{},
		usersByTenant: newOrdered(compareTenantUsers, nil)}
}

func (tx *Tx) people() *peopleData { return tx.d.people }

func (tx *Tx) CreateUser(_ context.Context, u *accounts.User) error {
	p := tx.people()
	if _, ok := tx.d.tenants[u.TenantID]; !ok {
		return store.ErrNotFound
	}
	if _, ok := p.users[u.ID]; ok {
		return store.ErrConflict
	}
	if _, ok := p.byEmail[u.TenantID+"/"+u.Email]; ok {
		return store.ErrConflict
	}
	c := u.Clone()
	put(tx, p.users, c.ID, *c)
	put(tx, p.byEmail, u.TenantID+"/"+u.Email, u.ID)
	p.usersByTenant.add(tx, listedUser(c))
	return nil
}

func (tx *Tx) GetUser(_ context.Context, tenantID, id string) (*accounts.User, error) {
	u, ok := tx.people().users[id]
	if !ok || u.TenantID != tenantID {
		return nil, store.ErrNotFound
	}
	return u.Clone(), nil
}

func (tx *Tx) GetUserByEmail(ctx context.Context, tenantID, email string) (*accounts.User, error) {
	id, ok := tx.people().byEmail[tenantID+"/"+email]
	if !ok {
		return nil, store.ErrNotFound
	}
	return tx.GetUser(ctx, tenantID, id)
}

// ListUsers returns a page of the tenant's users of f.Kind (of every
// kind when it is ""), by creation then id, after f.StartingAfter. It
// walks usersByTenant from the cursor in the range of each kind and stops
// one past the limit; a page of every kind merges those of each kind.
func (tx *Tx) ListUsers(_ context.Context, f accounts.UserFilter) ([]accounts.User, bool, error) {
	p := tx.people()
	var after *tenantUser
	if f.StartingAfter != "" {
		u, ok := p.users[f.StartingAfter]
		if !ok || u.TenantID != f.TenantID || (f.Kind != "" && u.Kind != f.Kind) {
			return nil, false, store.ErrNotFound
		}
		k := listedUser(&u)
		after = &k
	}
	kinds := []string{f.Kind}
	if f.Kind == "" {
		kinds = p.userKinds(f.TenantID)
	}
	limit := max(f.Limit, 0)
	var keys []tenantUser
	for _, kind := range kinds {
		from, n := tenantUser{f.TenantID, kind, firstStamp, ""}, 0
		if after != nil {
			from.at, from.id = after.at, after.id
		}
		p.usersByTenant.walkFrom(from, func(k tenantUser) bool {
			if k.tenantID != f.TenantID || k.kind != kind {
				return false
			}
			if after != nil && k.id == after.id {
				return true
			}
			keys = append(keys, k)
			n++
			return n <= limit
		})
	}
	if len(kinds) > 1 {
		slices.SortFunc(keys, func(a, b tenantUser) int { return cmp.Or(a.at.compare(b.at), cmp.Compare(a.id, b.id)) })
	}
	more := len(keys) > limit
	if more {
		keys = keys[:limit]
	}
	var out []accounts.User
	if after != nil || more {
		out = make([]accounts.User, 0, len(keys))
	}
	for _, k := range keys {
		u := p.users[k.id]
		out = append(out, *u.Clone())
	}
	return out, more, nil
}

// userKinds are the kinds of the tenant's users, ascending: a walk of
// usersByTenant that hops from one kind's range to the next.
func (p *peopleData) userKinds(tenantID string) []string {
	var kinds []string
	from := tenantUser{tenantID, "", firstStamp, ""}
	for {
		found := false
		p.usersByTenant.walkFrom(from, func(k tenantUser) bool {
			found = k.tenantID == tenantID
			if found {
				kinds = append(kinds, k.kind)
			}
			return false
		})
		if !found {
			return kinds
		}
		// The next kind sorts after the last one followed by the smallest byte.
		from.kind = kinds[len(kinds)-1] + "\x00"
	}
}

func (tx *Tx) UpdateUser(_ context.Context, u *accounts.User) error {
	p := tx.people()
	old, ok := p.users[u.ID]
	if !ok || old.TenantID != u.TenantID {
		return store.ErrNotFound
	}
	c := u.Clone()
	c.Email, c.Kind, c.CreatedAt = old.Email, old.Kind, old.CreatedAt // not mutable
	put(tx, p.users, u.ID, *c)
	return nil
}

func (tx *Tx) FailLogin(_ context.Context, tenantID, userID string, max int, until time.Time) (*accounts.User, error) {
	p := tx.people()
	u, ok := p.users[userID]
	if !ok || u.TenantID != tenantID {
		return nil, store.ErrNotFound
	}
	c := u.Clone()
	c.FailedLogins++
	if c.FailedLogins >= max {
		c.FailedLogins, c.LockedUntil = 0, &until
	}
	put(tx, p.users, userID, *c)
	return c.Clone(), nil
}

func cloneInvitation(i accounts.Invitation) accounts.Invitation {
	i.TokenHash = slices.Clone(i.TokenHash)
	if i.UsedAt != nil {
		t := *i.UsedAt
		i.UsedAt = &t
	}
	return i
}

func (tx *Tx) CreateInvitation(_ context.Context, inv *accounts.Invitation) error {
	p := tx.people()
	if _, ok := p.invitations[inv.ID]; ok {
		return store.ErrConflict
	}
	if _, ok := p.inviteHash[string(inv.TokenHash)]; ok {
		return store.ErrConflict
	}
	if u, ok := p.users[inv.UserID]; !ok || u.TenantID != inv.TenantID {
		return store.ErrNotFound
	}
	put(tx, p.invitations, inv.ID, cloneInvitation(*inv))
	put(tx, p.inviteHash, string(inv.TokenHash), inv.ID)
	return nil
}

func (tx *Tx) GetInvitationByHash(_ context.Context, hash []byte) (*accounts.Invitation, error) {
	p := tx.people()
	id, ok := p.inviteHash[string(hash)]
	if !ok {
		return nil, store.ErrNotFound
	}
	i := cloneInvitation(p.invitations[id])
	return &i, nil
}

func (tx *Tx) UseInvitation(_ context.Context, tenantID, id string, at time.Time) error {
	p := tx.people()
	i, ok := p.invitations[id]
	if !ok || i.TenantID != tenantID {
		return store.ErrNotFound
	}
	if i.UsedAt != nil {
		return store.ErrConflict
	}
	i = cloneInvitation(i)
	i.UsedAt = &at
	put(tx, p.invitations, id, i)
	return nil
}

func userKey(tenantID, userID string) string { return tenantID + "/" + userID }

func (tx *Tx) SetRecoveryCodes(_ context.Context, tenantID, userID string, hashes [][]byte) error {
	codes := make([]recoveryCode, len(hashes))
	for i, h := range hashes {
		codes[i] = recoveryCode{tenantID: tenantID, userID: userID, hash: string(h)}
	}
	put(tx, tx.people().recovery, userKey(tenantID, userID), codes)
	return nil
}

func (tx *Tx) UseRecoveryCode(_ context.Context, tenantID, userID string, hash []byte, at time.Time) error {
	p := tx.people()
	codes := p.recovery[userKey(tenantID, userID)]
	for i, c := range codes {
		if c.hash == string(hash) && c.usedAt == nil {
			n := slices.Clone(codes)
			n[i].usedAt = &at
			put(tx, p.recovery, userKey(tenantID, userID), n)
			return nil
		}
	}
	return store.ErrNotFound
}

func (tx *Tx) CountRecoveryCodes(_ context.Context, tenantID, userID string) (int, error) {
	n := 0
	for _, c := range tx.people().recovery[userKey(tenantID, userID)] {
		if c.usedAt == nil {
			n++
		}
	}
	return n, nil
}

func cloneUserSession(s accounts.Session) accounts.Session {
	s.IDHash = slices.Clone(s.IDHash)
	if s.MFAAt != nil {
		t := *s.MFAAt
		s.MFAAt = &t
	}
	return s
}

func (tx *Tx) CreateSession(_ context.Context, s *accounts.Session) error {
	p := tx.people()
	if _, ok := p.sessions[string(s.IDHash)]; ok {
		return store.ErrConflict
	}
	if u, ok := p.users[s.UserID]; !ok || u.TenantID != s.TenantID {
		return store.ErrNotFound
	}
	k, c := string(s.IDHash), cloneUserSession(*s)
	put(tx, p.sessions, k, c)
	p.sessionsByAge.add(tx, ageOf(k, &c))
	p.sessionsByUser.add(tx, userSession{c.TenantID, c.UserID, k})
	return nil
}

func (tx *Tx) GetSession(_ context.Context, idHash []byte) (*accounts.Session, error) {
	s, ok := tx.people().sessions[string(idHash)]
	if !ok {
		return nil, store.ErrNotFound
	}
	s = cloneUserSession(s)
	return &s, nil
}

func (tx *Tx) TouchSession(_ context.Context, idHash []byte, seen time.Time, mfa *time.Time) error {
	p := tx.people()
	s, ok := p.sessions[string(idHash)]
	if !ok {
		return store.ErrNotFound
	}
	s = cloneUserSession(s)
	s.LastSeenAt = seen
	if mfa != nil {
		t := *mfa
		s.MFAAt = &t
	}
	put(tx, p.sessions, string(idHash), s)
	return nil
}

func (tx *Tx) DeleteSession(_ context.Context, idHash []byte) error {
	p := tx.people()
	if _, ok := p.sessions[string(idHash)]; !ok {
		return store.ErrNotFound
	}
	tx.delSession(string(idHash))
	return nil
}

// DeleteUserSessions deletes the user's sessions, in id hash order. It
// reads them from sessionsByUser, from the user's first key.
func (tx *Tx) DeleteUserSessions(_ context.Context, tenantID, userID string) (int, error) {
	p := tx.people()
	var keys []string
	p.sessionsByUser.walkFrom(userSession{tenantID, userID, ""}, func(s userSession) bool {
		if s.tenantID != tenantID || s.userID != userID {
			return false
		}
		keys = append(keys, s.hash)
		return true
	})
	for _, k := range keys {
		tx.delSession(k)
	}
	return len(keys), nil
}

func (tx *Tx) MarkLogin(_ context.Context, tenantID, userID, mark string, at time.Time) (bool, error) {
	p := tx.people()
	k := userKey(tenantID, userID) + "/" + mark
	if _, ok := p.marks[k]; ok {
		return false, nil
	}
	put(tx, p.marks, k, at)
	p.marksByAge.add(tx, timedKey{stampOf(at), k})
	p.marksByKey.add(tx, k)
	return true, nil
}

// delMark deletes the login mark at k, there, and its index entries.
func (tx *Tx) delMark(k string) {
	p := tx.people()
	p.marksByAge.drop(tx, timedKey{stampOf(p.marks[k]), k})
	p.marksByKey.drop(tx, k)
	del(tx, p.marks, k)
}

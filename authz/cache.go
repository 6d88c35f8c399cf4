package authz

import (
	"context"
	"crypto/sha256"
	"strings"
	"sync"
	"time"

	"github.com/perfectpay/perfectpay/internal/ids"
	"github.com/perfectpay/perfectpay/store"
)

// cacheTTL bounds how long a node trusts a cached answer if a
// notification was lost without the listener noticing.
const cacheTTL = 10 * time.Second

// cacheMax bounds each cache; a full cache starts over.
const cacheMax = 100_000

// revocationCache remembers "not revoked" answers for a short while. Any
// revocation anywhere drops it (NOTIFY "revocation"). Revoked answers are
// not cached: they are rare and final.
type revocationCache struct {
	db  store.Runner[Tx]
	now func() time.Time

	mu  sync.Mutex
	gen uint64
	ok  map[[3]string]time.Time
}

func (c *revocationCache) check(ctx context.Context, jti, clientID, tenantID string) (string, error) {
	k := [3]string{jti, clientID, tenantID}
	now := c.now()
	c.mu.Lock()
	until, hit := c.ok[k]
	gen := c.gen
	c.mu.Unlock()
	if hit && now.Before(until) {
		return "", nil
	}
	var what string
	err := c.db.Autocommit(ctx, func(tx Tx) error {
		var err error
		what, err = tx.IsRevoked(ctx, jti, clientID, tenantID)
		return err
	})
	if err != nil || what != "" {
		return what, err
	}
	c.mu.Lock()
	if c.gen == gen { // no revocation arrived while we asked
		if len(c.ok) >= cacheMax {
			c.ok = map[[3]string]time.Time{}
		}
		c.ok[k] = now.Add(cacheTTL)
	}
	c.mu.Unlock()
	return "", nil
}

func (c *revocationCache) drop() {
	c.mu.Lock()
	c.gen++
	c.ok = map[[3]string]time.Time{}
	c.mu.Unlock()
}

// agentCache keeps agents by client id for the token endpoint.
type agentCache struct {
	db  store.Runner[Tx]
	now func() time.Time

	mu  sync.Mutex
	gen uint64
	m   map[string]agentEntry
	// byURL resolves a URL client id (Client ID Metadata Document); its
	// own cache follows the document's HTTP caching headers.
	byURL func(ctx context.Context, id string) (*agentClient, error)
}

type agentEntry struct {
	a     *agentClient
	until time.Time
}

// get returns the agent as a fosite client; callers must not modify it.
func (c *agentCache) get(ctx context.Context, id string) (*agentClient, error) {
	if c.byURL != nil && IsURLClientID(id) {
		return c.byURL(ctx, id)
	}
	if !ids.Storable(id) {
		// A client id from outside (HTTP Basic, client_id, an assertion's
		// iss) that no agent has; PostgreSQL would fail the lookup.
		return nil, store.ErrNotFound
	}
	now := c.now()
	c.mu.Lock()
	e, hit := c.m[id]
	gen := c.gen
	c.mu.Unlock()
	if hit && now.Before(e.until) {
		return e.a, nil
	}
	var a *Agent
	err := c.db.Autocommit(ctx, func(tx Tx) error {
		var err error
		a, err = tx.GetAgent(ctx, id)
		return err
	})
	if err != nil {
		return nil, err
	}
	cl, err := newAgentClient(a)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.gen == gen {
		if len(c.m) >= cacheMax {
			c.m = map[string]agentEntry{}
		}
		c.m[id] = agentEntry{a: cl, until: now.Add(cacheTTL)}
	}
	c.mu.Unlock()
	return cl, nil
}

func (c *agentCache) drop(id string) {
	c.mu.Lock()
	c.gen++
	if id == "" {
		c.m = map[string]agentEntry{}
	} else {
		delete(c.m, id)
	}
	c.mu.Unlock()
}

// verifiedCache remembers the claims of access tokens whose signature and
// claims verified, by the SHA-256 of the compact token, so a token
// presented again (a resource server introspecting it on every call, an
// agent using it for many charges) skips the signature check, which was
// most of the cost of introspection. The time claims are checked on every
// use, revocation is checked by the callers as before, and a hit counts
// only while its key is still published. A full cache starts over.
type verifiedCache struct {
	mu sync.Mutex
	m  map[[sha256.Size]byte]verifiedEntry
}

type verifiedEntry struct {
	kid string
	at  *AccessToken
}

// verifiedMax bounds the cache (about 1 KB an entry with the token).
const verifiedMax = 8192

func (c *verifiedCache) get(raw string) (*AccessToken, string, bool) {
	k := sha256.Sum256([]byte(raw))
	c.mu.Lock()
	e, ok := c.m[k]
	c.mu.Unlock()
	return e.at, e.kid, ok
}

func (c *verifiedCache) put(raw, kid string, at *AccessToken) {
	k := sha256.Sum256([]byte(raw))
	c.mu.Lock()
	if c.m == nil || len(c.m) >= verifiedMax {
		c.m = make(map[[sha256.Size]byte]verifiedEntry)
	}
	c.m[k] = verifiedEntry{kid: kid, at: at}
	c.mu.Unlock()
}

// onNotify routes a NotifyAuthz payload to the caches it names.
func (i *Issuer) onNotify(payload string) {
	switch {
	case payload == "*":
		i.agents.drop("")
		i.revoked.drop()
		i.keys.invalidate()
	case payload == "revocation":
		i.revoked.drop()
	case payload == "keys":
		i.keys.invalidate()
	case strings.HasPrefix(payload, "agent:"):
		i.agents.drop(strings.TrimPrefix(payload, "agent:"))
	}
}

// IsRevoked is the revocation check for code outside a transaction (it
// uses the node's cache). The charge transaction calls Revocations.IsRevoked
// on its own transaction instead.
func (i *Issuer) IsRevoked(ctx context.Context, jti, clientID, tenantID string) (string, error) {
	return i.revoked.check(ctx, jti, clientID, tenantID)
}

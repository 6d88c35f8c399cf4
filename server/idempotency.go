package server

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/perfectpay/perfectpay/idempotency"
	"github.com/perfectpay/perfectpay/internal/ids"
	"github.com/perfectpay/perfectpay/store"
)

// MaxIdempotencyKeyLen bounds the Idempotency-Key header.
const MaxIdempotencyKeyLen = 255

// idempotencyLock is how long a claim blocks retries before it may be taken
// over (a node that died mid-request).
const idempotencyLock = 60 * time.Second

// headerNoStore, set by a handler, keeps its response out of the
// idempotency store (e.g. a 402 that asks for approval: the retry that
// carries the approval must run again). It is removed before sending.
const headerNoStore = "X-Perfectpay-Idempotency-No-Store"

// DontStoreResponse marks the response so the idempotency layer releases
// the key instead of storing this answer.
func DontStoreResponse(w http.ResponseWriter) { w.Header().Set(headerNoStore, "1") }

// ReplayAs stores v, instead of the response actually sent, as the answer
// replayed for a retried request. Responses that show a secret once use it,
// so the secret is never written to the idempotency store.
func ReplayAs(r *http.Request, v any) {
	b, err := json.Marshal(v)
	if err == nil {
		state(r).replay = append(b, '\n')
	}
}

// RequestHash is what an idempotency record keeps of a request: a keyed
// HMAC-SHA256, never a plain hash, because some bodies hold card data
// (POST /v1/tokens) that a plain hash would let anyone brute-force.
func RequestHash(key []byte, method, path string, body []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("idempotency\n" + method + "\n" + path + "\n"))
	m.Write(body)
	return m.Sum(nil)
}

// idempotent claims the Idempotency-Key (a row, so the claim holds across
// nodes), replays stored answers, and stores the new one.
func (s *Server) idempotent(next handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		key := r.Header.Get("Idempotency-Key")
		if key == "" {
			return next(w, r)
		}
		if len(key) > MaxIdempotencyKeyLen {
			return BadRequest("idempotency_key_too_long", "Idempotency-Key", "The Idempotency-Key header is longer than %d characters.", MaxIdempotencyKeyLen)
		}
		if !ids.Storable(key) {
			return BadRequest("idempotency_key_invalid", "Idempotency-Key", "The Idempotency-Key header must be valid UTF-8 without NUL characters.")
		}
		body, err := readBody(r)
		if err != nil {
			return err
		}
		p := PrincipalFrom(r)
		now := time.Now().UTC().Truncate(time.Microsecond)
		rec := &idempotency.Record{
			TenantID: p.TenantID, CredentialID: idempotencyScope(p), Key: key,
			Method: r.Method, Path: r.URL.Path, RequestHash: RequestHash(s.IdempotencyHMACKey, r.Method, r.URL.Path, body),
			State: idempotency.StateInProgress, CreatedAt: now,
			LockedUntil: now.Add(idempotencyLock), ExpiresAt: now.Add(s.IdempotencyTTL),
		}
		// An agent's charge takes the claim in its own charge transaction
		// (idempotency.Claim), so the claim costs no commit of its own; a
		// handler that returns before any transaction leaves it to us.
		var claim *idempotency.Claim
		if p.Agent == nil {
			if old, err := s.claim(r.Context(), rec); err != nil {
				return answerClaimed(w, rec, old, err)
			}
		} else {
			claim = &idempotency.Claim{Record: rec, Render: s.render(r)}
			r = r.WithContext(idempotency.WithClaim(r.Context(), claim))
		}

		buf := &bufferedWriter{header: http.Header{}, status: http.StatusOK}
		s.wrap(next).ServeHTTP(buf, r)
		if claim != nil && claim.Old != nil {
			// Another request held or answered the key: its answer, not ours.
			return answerClaimed(w, rec, claim.Old, store.ErrConflict)
		}

		release := buf.status >= 500 || buf.header.Get(headerNoStore) != ""
		buf.header.Del(headerNoStore)
		if claim != nil && !claim.Held() && !release {
			// Refused before any transaction took the claim: take it now to
			// store the answer.
			if old, err := s.claim(r.Context(), rec); err != nil {
				return answerClaimed(w, rec, old, err)
			}
		}
		// The claim is settled even when the client has gone away.
		ctx := context.WithoutCancel(r.Context())
		var settle func(ctx context.Context, tx idempotency.Repo) error
		switch {
		case claim != nil && claim.Answered():
			// Stored by the transaction that recorded the outcome.
		case release && claim != nil && !claim.Held():
			// Nothing was claimed: nothing to release.
		case release:
			settle = func(ctx context.Context, tx idempotency.Repo) error { return tx.AbandonIdempotency(ctx, rec) }
		default:
			done := *rec
			done.State, done.Status, done.Body = idempotency.StateDone, buf.status, buf.body.Bytes()
			if st := state(r); st.replay != nil {
				done.Body = st.replay
			}
			done.Header = map[string]string{}
			for k := range buf.header {
				if k != "Request-Id" {
					done.Header[k] = buf.header.Get(k)
				}
			}
			settle = func(ctx context.Context, tx idempotency.Repo) error { return tx.CompleteIdempotency(ctx, &done) }
		}
		// By group commit: the answers of concurrent requests share one
		// transaction, and this one is sent once its batch committed.
		if settle != nil {
			if err := s.answers.Do(settle); err != nil {
				s.log.ErrorContext(ctx, "idempotency: could not record the outcome; retrying", "err", err)
				go s.settleLater(rec.LockedUntil, settle)
			}
		}
		for k, v := range buf.header {
			w.Header()[k] = v
		}
		w.WriteHeader(buf.status)
		_, _ = w.Write(buf.body.Bytes())
		return nil
	}
}

// render returns the renderer of r's answers for its claim: the
// response the handler's respond function (RespondWith) writes, as the
// idempotency layer would store it. Responses that are not stored (5xx,
// DontStoreResponse) are not rendered.
func (s *Server) render(r *http.Request) func(result any, err error) (idempotency.Answer, bool) {
	st := state(r)
	return func(result any, err error) (idempotency.Answer, bool) {
		if st.respond == nil {
			return idempotency.Answer{}, false
		}
		buf := &bufferedWriter{header: http.Header{}, status: http.StatusOK}
		if e := st.respond(buf, result, err); e != nil {
			s.writeError(buf, r, e)
		}
		if buf.status >= 500 || buf.header.Get(headerNoStore) != "" {
			return idempotency.Answer{}, false
		}
		a := idempotency.Answer{Status: buf.status, Header: map[string]string{}, Body: buf.body.Bytes()}
		for k := range buf.header {
			if k != "Request-Id" {
				a.Header[k] = buf.header.Get(k)
			}
		}
		return a, true
	}
}

// RespondWith makes respond the writer of r's responses for results its
// handler hands to a store transaction (see render); the handler answers
// with the same function, so the stored answer is the one sent.
func RespondWith(r *http.Request, respond func(w http.ResponseWriter, result any, err error) error) {
	state(r).respond = respond
}

// claim takes rec's key in a transaction of its own. On store.ErrConflict
// it returns the record that holds the key.
func (s *Server) claim(ctx context.Context, rec *idempotency.Record) (*idempotency.Record, error) {
	var old *idempotency.Record
	err := s.Idempotency.InTx(ctx, func(tx idempotency.Repo) error {
		var err error
		old, err = tx.ClaimIdempotency(ctx, rec)
		return err
	})
	return old, err
}

// answerClaimed answers a request whose key another request holds or
// answered (old, with err store.ErrConflict): a reused key with other
// parameters, a key in use, or the stored answer replayed. Any other err
// is returned as it is.
func answerClaimed(w http.ResponseWriter, rec, old *idempotency.Record, err error) error {
	if !errors.Is(err, store.ErrConflict) || old == nil {
		return err
	}
	if subtle.ConstantTimeCompare(old.RequestHash, rec.RequestHash) != 1 {
		return Errorf(http.StatusUnprocessableEntity, TypeIdempotency, "idempotency_key_reused", "Idempotency-Key",
			"Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than '%s' if you meant to execute a different request.", rec.Key)
	}
	if old.State == idempotency.StateInProgress {
		e := Errorf(http.StatusConflict, TypeIdempotency, "idempotency_key_in_use", "Idempotency-Key",
			"There is currently another in-progress request using this Idempotent Key. Retry after a short while.")
		e.RetryAfter = 1
		return e
	}
	for k, v := range old.Header {
		w.Header().Set(k, v)
	}
	w.Header().Set("Idempotent-Replayed", "true")
	w.WriteHeader(old.Status)
	_, _ = w.Write(old.Body)
	return nil
}

// Settling a claim when the store is unreachable.
//
// A request that fails because the store is unreachable answers 503 and
// must leave no claim behind, so its retry runs again; a request that was
// answered just before the store went away must still store its answer.
// Either write may fail for the same reason. The claim is then freed in two
// ways, the first that applies:
//   - the claim names this node's store session, which an outage ends
//     (PostgreSQL restarted; the memory store's SetUnavailable): a claim
//     whose session is gone is taken over by the next claim at once;
//   - settleLater retries the write with a short backoff until it
//     succeeds or the claim's lock has lapsed anyway. A release deletes
//     the claim only while it is still this request's, never one taken
//     over since.
const (
	settleBackoffMin = 100 * time.Millisecond
	settleBackoffMax = 2 * time.Second
)

func (s *Server) settleLater(until time.Time, settle func(ctx context.Context, tx idempotency.Repo) error) {
	wait := settleBackoffMin
	for time.Now().Before(until) {
		time.Sleep(wait)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := s.Idempotency.Autocommit(ctx, func(tx idempotency.Repo) error { return settle(ctx, tx) })
		cancel()
		if err == nil {
			return
		}
		wait = min(2*wait, settleBackoffMax)
	}
}

// bufferedWriter captures a response so it can be stored before sending.
type bufferedWriter struct {
	header http.Header
	status int
	wrote  bool
	body   bytes.Buffer
}

func (b *bufferedWriter) Header() http.Header { return b.header }

func (b *bufferedWriter) WriteHeader(code int) {
	if !b.wrote {
		b.status, b.wrote = code, true
	}
}

func (b *bufferedWriter) Write(p []byte) (int, error) {
	b.wrote = true
	return b.body.Write(p)
}

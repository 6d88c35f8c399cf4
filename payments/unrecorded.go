package payments

import (
	"context"
	"errors"
	"sync"

	"github.com/perfectpay/perfectpay/store"
)

// Answers an outage kept from being recorded.
//
// A charge is inserted pending, the processor is called outside any
// transaction, and its answer is recorded in a second transaction. When the
// store becomes unreachable between the two, the answer cannot be written
// and the charge stays pending. The node still knows the answer, so it
// keeps it (KeepUnrecorded) and records it the moment the store is back
// (ResolveUnrecorded, run by the resolver with a short backoff while
// answers are waiting), instead of leaving the charge to the resolver's
// ResolveAfter sweep, which asks the processor again minutes later. A node
// that dies loses what it kept; the sweep still completes those charges.
type unrecorded struct {
	mu      sync.Mutex
	answers map[string]unrecordedAnswer // by charge id
	wake    chan struct{}
}

type unrecordedAnswer struct {
	charge Charge
	answer Answer
}

func (u *unrecorded) wakeChan() chan struct{} {
	if u.wake == nil {
		u.wake = make(chan struct{}, 1)
	}
	return u.wake
}

// KeepUnrecorded keeps the processor's answer a to charge c when recording
// it failed because the store was unreachable (err wraps
// store.ErrUnavailable); any other failure is left alone.
func (s *Service) KeepUnrecorded(c *Charge, a Answer, err error) {
	if c == nil || !errors.Is(err, store.ErrUnavailable) {
		return
	}
	u := &s.unrec
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.answers == nil {
		u.answers = map[string]unrecordedAnswer{}
	}
	u.answers[c.ID] = unrecordedAnswer{charge: *c, answer: a}
	select {
	case u.wakeChan() <- struct{}{}:
	default:
	}
	s.log.Warn("charge answer kept until the store is back", "charge", c.ID)
}

// Unrecorded reports how many kept answers wait to be recorded.
func (s *Service) Unrecorded() int {
	s.unrec.mu.Lock()
	defer s.unrec.mu.Unlock()
	return len(s.unrec.answers)
}

// UnrecordedWake receives a value when an answer is kept, so a resolver
// waiting for its next period can start at once.
func (s *Service) UnrecordedWake() <-chan struct{} {
	s.unrec.mu.Lock()
	defer s.unrec.mu.Unlock()
	return s.unrec.wakeChan()
}

// ResolveUnrecorded records every kept answer with record (the caller's
// own completion, e.g. one that also settles a mandate hold). An answer
// whose recording fails because the store is still unreachable stays kept,
// and the call returns that error at once; any other outcome, including a
// decline, forgets it.
func (s *Service) ResolveUnrecorded(ctx context.Context, record func(ctx context.Context, c *Charge, a Answer) error) error {
	u := &s.unrec
	u.mu.Lock()
	list := make([]unrecordedAnswer, 0, len(u.answers))
	for _, ua := range u.answers {
		list = append(list, ua)
	}
	u.mu.Unlock()
	for _, ua := range list {
		c := ua.charge
		err := record(ctx, &c, ua.answer)
		if errors.Is(err, store.ErrUnavailable) {
			return err
		}
		u.mu.Lock()
		if cur, ok := u.answers[ua.charge.ID]; ok && cur.answer == ua.answer {
			delete(u.answers, ua.charge.ID)
		}
		u.mu.Unlock()
		var ce *CardError
		if err != nil && !errors.As(err, &ce) {
			s.log.ErrorContext(ctx, "recording a kept charge answer failed", "charge", ua.charge.ID, "err", err)
		}
	}
	return nil
}

package payments

import (
	"context"

	"github.com/perfectpay/perfectpay/store"
)

// Flow drives the core's steps for an authorization's answer, a capture,
// a void and a refund on transactions of DB, so that a caller with more
// to keep in step adds its writes to the very transaction that records
// the change: the core's own flow adds nothing (merchant charges), the
// agent charge ledger settles mandate holds there (package charging). A
// nil hook adds nothing. Flow is also the Completion the resolver records
// through.
type Flow[T Tx] struct {
	Core *Service
	DB   store.Runner[T]
	// Authorized runs where a processor's answer to an authorization
	// changed the charge.
	Authorized func(ctx context.Context, tx T, c *Charge) error
	// Captured and Voided run where a capture or a void is recorded.
	Captured func(ctx context.Context, tx T, c *Charge) error
	Voided   func(ctx context.Context, tx T, c *Charge) error
	// Refunded runs where a refund the processor confirmed is recorded;
	// c is its charge.
	Refunded func(ctx context.Context, tx T, r *Refund, c *Charge) error
}

var _ Completion = Flow[Tx]{}

// own is the core's flow for merchant charges, on its own transactions.
func (s *Service) own() Flow[Tx] { return Flow[Tx]{Core: s, DB: s.db} }

// Complete records the processor's answer on a pending charge; a charge
// failed without an answer is then reversed. A decline comes back as a
// *CardError.
func (f Flow[T]) Complete(ctx context.Context, c *Charge, a Answer) (*Charge, error) {
	s := f.Core
	var out *Charge
	err := f.DB.InTx(ctx, func(tx T) error {
		rc, changed, err := s.Record(ctx, tx, c.TenantID, c.ID, a)
		if err != nil {
			return err
		}
		if changed && f.Authorized != nil {
			if err := f.Authorized(ctx, tx, rc); err != nil {
				return err
			}
		}
		out = rc
		return nil
	})
	if err != nil {
		s.KeepUnrecorded(c, a, err)
		return nil, err
	}
	if out.ReversalPending {
		s.FinishReversal(ctx, out)
	}
	return Outcome(out)
}

// Capture captures an authorized charge, fully or partly (amount nil: the
// whole authorized amount).
func (f Flow[T]) Capture(ctx context.Context, o Owner, id string, amount *int64) (*Charge, error) {
	c, err := f.Core.Get(ctx, o, id)
	if err != nil {
		return nil, err
	}
	amt, err := CaptureAmount(c, amount)
	if err != nil {
		return nil, err
	}
	return f.change(ctx, o, id, OpCapture, func(ctx context.Context, c *Charge) error { return f.Core.CallCapture(ctx, c, amt) },
		func(tx T) (*Charge, error) { return f.Core.ApplyCapture(ctx, tx, o, id, amt) }, f.Captured)
}

// Void cancels an uncaptured charge. Claim finds it and checks that it is
// still uncaptured, under its lock.
func (f Flow[T]) Void(ctx context.Context, o Owner, id string) (*Charge, error) {
	return f.change(ctx, o, id, OpVoid, f.Core.CallVoid,
		func(tx T) (*Charge, error) { return f.Core.ApplyVoid(ctx, tx, o, id) }, f.Voided)
}

// change claims the charge for op (committed before the processor is
// called), makes the processor call, gives the claim back when the call
// fails, and otherwise records the change with apply and hook in one
// transaction.
func (f Flow[T]) change(ctx context.Context, o Owner, id, op string, call func(ctx context.Context, c *Charge) error,
	apply func(tx T) (*Charge, error), hook func(ctx context.Context, tx T, c *Charge) error) (*Charge, error) {
	s := f.Core
	ctx = context.WithoutCancel(ctx)
	var c *Charge
	err := f.DB.InTx(ctx, func(tx T) error {
		var err error
		c, err = s.Claim(ctx, tx, o, id, op)
		return err
	})
	if err != nil {
		return nil, err
	}
	if err := call(ctx, c); err != nil {
		if err := f.DB.InTx(ctx, func(tx T) error { return s.Unclaim(ctx, tx, o, id, op) }); err != nil {
			s.log.ErrorContext(ctx, "releasing a charge claim failed", "charge", id, "err", err)
		}
		return nil, err
	}
	var out *Charge
	err = f.DB.InTx(ctx, func(tx T) error {
		var err error
		if out, err = apply(tx); err != nil {
			return err
		}
		if hook != nil {
			return hook(ctx, tx, out)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out.derive()
	return out, nil
}

// Refund returns money of a captured charge. A refund whose answer was
// lost stays pending; the resolver retries it with the same reference.
func (f Flow[T]) Refund(ctx context.Context, p RefundParams) (*Refund, error) {
	if err := CheckRefund(p); err != nil {
		return nil, err
	}
	var r *Refund
	err := f.DB.InTx(ctx, func(tx T) error {
		var err error
		r, err = f.Core.OpenRefund(ctx, tx, p)
		return err
	})
	if err != nil {
		return nil, err
	}
	return f.CompleteRefund(context.WithoutCancel(ctx), r)
}

// CompleteRefund sends a refund to the processor (again, with the same
// reference) and records the answer; without an answer it stays pending.
func (f Flow[T]) CompleteRefund(ctx context.Context, r *Refund) (*Refund, error) {
	res := f.Core.CallRefund(ctx, r)
	if res == nil {
		return r, nil
	}
	var out *Refund
	err := f.DB.InTx(ctx, func(tx T) error {
		rr, c, changed, err := f.Core.RecordRefund(ctx, tx, r.TenantID, r.ID, res)
		if err != nil {
			return err
		}
		if changed && rr.Status == RefundSucceeded && f.Refunded != nil {
			if err := f.Refunded(ctx, tx, rr, c); err != nil {
				return err
			}
		}
		out = rr
		return nil
	})
	return out, err
}

package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"slices"

	"github.com/perfectpay/perfectpay/abuse"
	"github.com/perfectpay/perfectpay/accounts"
)

// Event and audit action of a source taken for a card tester.
const ActionCardTestingDetected = "radar.card_testing_detected"

// watchCards runs card-testing protection around a tokenization or a
// charge: a blocked credential, IP or card gets 429 before anything
// happens; afterwards the attempt (its card, amount and outcome) counts
// towards each source's signals, and a source passing a threshold is
// blocked for the cool-down, audited and announced to its tenant.
func (s *Server) watchCards(charge bool, next handlerFunc) handlerFunc {
	ct := s.Abuse.CardTesting
	if ct == nil {
		return next
	}
	return func(w http.ResponseWriter, r *http.Request) error {
		p := PrincipalFrom(r)
		srcs := cardTestingSources(p, state(r).ip)
		var in struct {
			Amount        json.Number `json:"amount"`
			PaymentMethod string      `json:"payment_method"`
		}
		if raw, err := readBody(r); err == nil && len(raw) > 0 {
			_ = json.Unmarshal(raw, &in) // the handler validates strictly
		}
		card := ""
		if charge {
			card = ct.CardOfToken(in.PaymentMethod)
		}
		check := slices.Clone(srcs)
		if card != "" {
			check = append(check, abuse.Source{Kind: "card", Value: card})
		}
		if left, blocked := ct.Blocked(check...); blocked {
			return rateLimited(left)
		}

		// A charge on a card this node knows needs nothing from a
		// successful answer: the request says the amount, the token the
		// card. Only otherwise is the answer kept and read.
		known := charge && card != ""
		rw, rec := w, (*bodyRecorder)(nil)
		if !known {
			rec = &bodyRecorder{ResponseWriter: w}
			rw = rec
		}
		err := next(rw, r)
		if w.Header().Get("Idempotent-Replayed") == "true" {
			return err // seen the first time
		}
		var o *abuse.Observation
		var oc cardOutcome
		if known && err == nil {
			o, oc.PaymentMethod = &abuse.Observation{Charge: true, Fingerprint: card}, in.PaymentMethod
		} else {
			var body []byte
			if rec != nil {
				body = rec.body.Bytes()
			}
			o, oc = observe(charge, body, err)
		}
		if o == nil {
			return err
		}
		if charge {
			ct.RememberToken(oc.PaymentMethod, o.Fingerprint)
		} else {
			ct.RememberToken(oc.ID, o.Fingerprint)
		}
		if o.Amount == 0 {
			o.Amount, _ = in.Amount.Int64()
		}
		if card == "" {
			card = o.Fingerprint
		}
		o.Sources = slices.Clone(srcs)
		if card != "" {
			o.Sources = append(o.Sources, abuse.Source{Kind: "card", Value: card})
		}
		s.recordBlocks(r.Context(), p.TenantID, ActionCardTestingDetected, ct.Observe(*o))
		return err
	}
}

// cardTestingSources are the sources an attempt counts against besides
// its card: a publishable key (browsers) and the IP it came from; an
// agent. A merchant's secret key charges many cards from one server by
// design, so only the cards it charges are watched.
func cardTestingSources(p *Principal, ip string) []abuse.Source {
	switch {
	case p.Agent != nil:
		return []abuse.Source{{Kind: "agent", Value: p.CredentialID}}
	case p.Key != nil && p.Key.Key.Kind == accounts.KindPublishable:
		return []abuse.Source{{Kind: "key", Value: p.CredentialID}, {Kind: "ip", Value: ip}}
	}
	return nil
}

// cardOutcome is what an answer says about a tokenization or a charge.
type cardOutcome struct {
	ID            string `json:"id"`
	Amount        int64  `json:"amount"`
	PaymentMethod string `json:"payment_method"`
	Card          struct {
		Fingerprint string `json:"fingerprint"`
	} `json:"card"`
}

// observe reads the outcome of an attempt from its answer: the body of a
// success, or the error (a card error carries the declined charge). Nil
// when the attempt never reached a card (a malformed request, a refusal
// of the policy).
func observe(charge bool, body []byte, err error) (*abuse.Observation, cardOutcome) {
	var out cardOutcome
	o := &abuse.Observation{Charge: charge}
	if err == nil {
		if json.Unmarshal(body, &out) != nil {
			return nil, out
		}
	} else {
		var e *Error
		if !errors.As(err, &e) || e.Type != TypeCard {
			return nil, out
		}
		o.Declined = charge
		o.IncorrectCVC = e.Code == "incorrect_cvc" || e.DeclineCode == "incorrect_cvc"
		if c, ok := e.Extra["charge"]; ok {
			if raw, err := json.Marshal(c); err == nil {
				_ = json.Unmarshal(raw, &out)
			}
		}
	}
	o.Fingerprint, o.Amount = out.Card.Fingerprint, out.Amount
	return o, out
}

// bodyRecorder keeps the start of a JSON answer (card tokens and charges
// are small) while passing it on.
type bodyRecorder struct {
	http.ResponseWriter
	body bytes.Buffer
}

func (b *bodyRecorder) Write(p []byte) (int, error) {
	if n := 64<<10 - b.body.Len(); n > 0 {
		b.body.Write(p[:min(n, len(p))])
	}
	return b.ResponseWriter.Write(p)
}

func (b *bodyRecorder) Unwrap() http.ResponseWriter { return b.ResponseWriter }

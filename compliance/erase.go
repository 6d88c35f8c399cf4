package compliance

import (
	"context"
	"errors"
	"slices"

	"github.com/perfectpay/perfectpay/accounts"
	"github.com/perfectpay/perfectpay/internal/apierr"
	"github.com/perfectpay/perfectpay/internal/page"
	"github.com/perfectpay/perfectpay/mandates"
	"github.com/perfectpay/perfectpay/store"
	"github.com/perfectpay/perfectpay/vault"
)

// CardTokens shreds card tokens: their wrapped key and ciphertext go, so
// the card can never be decrypted again.
type CardTokens interface {
	Delete(ctx context.Context, tenantID, id string) (*vault.Token, error)
}

// Erasure erases customers (the right to erasure).
type Erasure struct {
	DB       store.Runner[accounts.EraseTx]
	Mandates Mandates
	Tokens   CardTokens
}

// ErasureReport says what an erasure did.
type ErasureReport struct {
	Object   string `json:"object"`
	Customer string `json:"customer"`
	// CardTokens are the customer's card tokens shredded (those of their
	// mandates no other payer's mandate names).
	CardTokens []string `json:"card_tokens_shredded"`
	Mandates   int      `json:"mandates"`
}

// Erase crypto-shreds the card tokens of the customer's mandates, then
// scrubs the customer's personal fields, deletes their second factors and
// passkeys, ends their sessions and forgets the IPs of their audit entries
// and events (accounts.EraseCustomer, audited as customer.erased).
// Mandates, charges and audit entries keep the customer's id, which names
// no one afterwards; the audit chain still verifies, since the hashes
// cover only the IPs' salted digests (entries written before that format
// keep their IPs until audit retention). A failure part way is completed
// by erasing again.
func (e *Erasure) Erase(ctx context.Context, tenantID, id string) (*ErasureReport, error) {
	err := e.DB.InTx(ctx, func(tx accounts.EraseTx) error {
		u, err := tx.GetUser(ctx, tenantID, id)
		if errors.Is(err, store.ErrNotFound) || (err == nil && u.Kind != accounts.UserPayer) {
			return &apierr.NotFound{Kind: "customer", ID: id}
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	rep := &ErasureReport{Object: "customer_erasure", Customer: id, CardTokens: []string{}}
	mine, others := map[string]bool{}, map[string]bool{}
	after := ""
	for {
		list, more, err := e.Mandates.List(ctx, mandates.Filter{TenantID: tenantID, StartingAfter: after, Limit: page.MaxLimit})
		if err != nil {
			return nil, err
		}
		for _, m := range list {
			into := others
			if m.Payer == id {
				into = mine
				rep.Mandates++
			}
			for _, pm := range m.PaymentMethods {
				into[pm] = true
			}
		}
		if !more || len(list) == 0 {
			break
		}
		after = list[len(list)-1].ID
	}
	for tok := range mine {
		if others[tok] {
			continue
		}
		if _, err := e.Tokens.Delete(ctx, tenantID, tok); err != nil && !errors.Is(err, store.ErrNotFound) {
			return nil, err
		}
		rep.CardTokens = append(rep.CardTokens, tok)
	}
	slices.Sort(rep.CardTokens)
	err = e.DB.InTx(ctx, func(tx accounts.EraseTx) error {
		_, err := accounts.EraseCustomer(ctx, tx, tenantID, id, map[string]any{
			"card_tokens_shredded": len(rep.CardTokens), "mandates": rep.Mandates})
		return err
	})
	if err != nil {
		return nil, err
	}
	return rep, nil
}

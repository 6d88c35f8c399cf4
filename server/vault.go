package server

import (
	"bytes"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/gorilla/mux"

	"github.com/perfectpay/perfectpay/accounts"
	"github.com/perfectpay/perfectpay/internal/apierr"
	"github.com/perfectpay/perfectpay/store"
	"github.com/perfectpay/perfectpay/vault"
)

// VaultHandlers serve card tokens. There is no endpoint that returns a
// card number: detokenization exists only in the payment core's Go API.
type VaultHandlers struct{ v *vault.Service }

// NewVaultHandlers returns the token endpoints.
func NewVaultHandlers(v *vault.Service) *VaultHandlers { return &VaultHandlers{v: v} }

// Mount registers the routes. POST /v1/tokens is the one route a
// publishable key may call, from a browser page of any origin (CORS).
func (h *VaultHandlers) Mount(api *API) {
	api.Handle(http.MethodPost, "/v1/tokens", Access{Scope: "tokens:write", CORS: true}, h.create)
	api.Handle(http.MethodGet, "/v1/tokens/{id}", Access{Scope: "tokens:read"}, h.get)
	api.Handle(http.MethodDelete, "/v1/tokens/{id}", Access{Scope: "tokens:write"}, h.delete)
}

// tokenView is the masked token: never the number, never the CVC.
type tokenView struct {
	ID       string    `json:"id"`
	Object   string    `json:"object"`
	Livemode bool      `json:"livemode"`
	Created  time.Time `json:"created"`
	Card     cardView  `json:"card"`
}

type cardView struct {
	Brand       string `json:"brand"`
	Last4       string `json:"last4"`
	ExpMonth    int    `json:"exp_month"`
	ExpYear     int    `json:"exp_year"`
	Fingerprint string `json:"fingerprint"`
	CVCCheck    string `json:"cvc_check"`
}

func viewToken(t *vault.Token) tokenView {
	return tokenView{ID: t.ID, Object: "token", Livemode: t.Livemode, Created: t.CreatedAt, Card: cardView{
		Brand: t.Brand, Last4: t.Last4, ExpMonth: t.ExpMonth, ExpYear: t.ExpYear, Fingerprint: t.Fingerprint, CVCCheck: t.CVCCheck,
	}}
}

// flexInt accepts a JSON number or a string of digits (browser forms send
// strings), so `"exp_month": "12"` and `12` both work.
type flexInt int

func (f *flexInt) UnmarshalJSON(b []byte) error {
	b = bytes.Trim(b, `"`)
	if len(b) == 0 || len(b) > 6 {
		return errors.New("not a small integer")
	}
	n, err := strconv.Atoi(string(b))
	if err != nil {
		return errors.New("not a small integer")
	}
	*f = flexInt(n)
	return nil
}

type tokenRequest struct {
	Card *struct {
		Number   string  `json:"number"`
		ExpMonth flexInt `json:"exp_month"`
		ExpYear  flexInt `json:"exp_year"`
		CVC      string  `json:"cvc"`
		Name     string  `json:"name"`
	} `json:"card"`
}

func (h *VaultHandlers) create(w http.ResponseWriter, r *http.Request) error {
	var req tokenRequest
	if err := decodeCardJSON(r, &req); err != nil {
		return err
	}
	if req.Card == nil {
		return BadRequest(apierr.ParameterMissing, "card", "Missing required param: card.")
	}
	p := PrincipalFrom(r)
	tok, err := h.v.Tokenize(r.Context(), p.TenantID, p.Key.Key.Mode == accounts.ModeLive, vault.CardInput{
		Number: req.Card.Number, ExpMonth: int(req.Card.ExpMonth), ExpYear: int(req.Card.ExpYear),
		CVC: req.Card.CVC, Name: req.Card.Name,
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, viewToken(tok))
	return nil
}

// decodeCardJSON is DecodeJSON whose errors never echo the body, which
// holds the card number and CVC.
func decodeCardJSON(r *http.Request, v any) error {
	err := decodeCardBody(r, v)
	var e *Error
	if errors.As(err, &e) && e.Code == "invalid_json" {
		return BadRequest("invalid_json", "", "The request body is not valid JSON.")
	}
	if errors.As(err, &e) && e.Code == "invalid_type" {
		return BadRequest("invalid_type", e.Param, "Invalid type for %s.", e.Param)
	}
	return err
}

func (h *VaultHandlers) token(r *http.Request) (*vault.Token, error) {
	p := PrincipalFrom(r)
	id := mux.Vars(r)["id"]
	tok, err := h.v.Get(r.Context(), p.TenantID, id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && tok.Livemode != (p.Key.Key.Mode == accounts.ModeLive)) {
		return nil, NotFound("token", id)
	}
	return tok, err
}

func (h *VaultHandlers) get(w http.ResponseWriter, r *http.Request) error {
	tok, err := h.token(r)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, viewToken(tok))
	return nil
}

func (h *VaultHandlers) delete(w http.ResponseWriter, r *http.Request) error {
	if PrincipalFrom(r).Key.Key.Kind == accounts.KindPublishable {
		return Errorf(http.StatusForbidden, TypePermission, "insufficient_scope", "",
			"Publishable keys may only create card tokens.")
	}
	tok, err := h.token(r)
	if err != nil {
		return err
	}
	if _, err := h.v.Delete(r.Context(), tok.TenantID, tok.ID); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return NotFound("token", tok.ID)
		}
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"id": tok.ID, "object": "token", "deleted": true})
	return nil
}

package fraud

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/perfectpay/perfectpay/internal/egress"
	"github.com/perfectpay/perfectpay/internal/money"
)

// VendorConfig is a fraud vendor's endpoint and credentials.
type VendorConfig struct {
	// URL is the API base (e.g. https://api.signifyd.com).
	URL string `mapstructure:"url"`
	// Key is the API key (Signifyd, Kount) or the authentication token
	// that signs requests (Riskified).
	Key string `mapstructure:"key"`
	// Account is the shop domain (Riskified) or the channel (Kount).
	Account string `mapstructure:"account"`
}

// maxAnswer bounds a screener's answer; a longer one is refused.
const maxAnswer = 1 << 20

// vendorTimeout bounds one request when the caller's context does not
// bound it sooner (the Assessor's screener timeout always does).
const vendorTimeout = 10 * time.Second

// vendor is what the adapters share: one JSON POST through the egress
// guard (the destination checked on the URL and again on every address at
// connect time; private, loopback and metadata addresses refused unless
// the policy allows them; no proxy, no redirects), bounded in time and in
// the size of the answer.
type vendor struct {
	cfg    VendorConfig
	client *http.Client
	urlErr error // the URL refused by the policy: every screening fails
}

func newVendor(cfg VendorConfig, p egress.Policy) vendor {
	cfg.URL = strings.TrimRight(cfg.URL, "/")
	v := vendor{cfg: cfg, client: egress.NewHTTPClient(p, nil, vendorTimeout, nil)}
	if err := p.CheckURL(cfg.URL); err != nil {
		v.urlErr = fmt.Errorf("fraud: the screener's URL is refused: %w", err)
	}
	return v
}

func (v vendor) post(ctx context.Context, path string, body any, header http.Header, out any) error {
	if v.urlErr != nil {
		return v.urlErr
	}
	raw, err := json.Marshal(body)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, v.cfg.URL+path, bytes.NewReader(raw))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	for k, vs := range header {
		for _, x := range vs {
			req.Header.Add(k, x)
		}
	}
	resp, err := v.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer+1))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("fraud: the screener answered %d", resp.StatusCode)
	}
	if len(b) > maxAnswer {
		return fmt.Errorf("%w: longer than %d bytes", ErrBadAnswer, maxAnswer)
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("%w: %v", ErrBadAnswer, err)
	}
	return nil
}

// major formats minor units as a decimal amount in the currency's
// exponent ("12.34"), as the vendors expect prices.
func major(amount int64, currency string) json.Number {
	exp, ok := money.Exponent(strings.ToUpper(currency))
	if !ok || exp == 0 {
		return json.Number(fmt.Sprint(amount))
	}
	p := int64(1)
	for range exp {
		p *= 10
	}
	sign := ""
	if amount < 0 {
		sign, amount = "-", -amount
	}
	return json.Number(fmt.Sprintf("%s%d.%0*d", sign, amount/p, exp, amount%p))
}

// ---- Signifyd: pre-authorization checkout (API v3) ----------------------------

// Signifyd screens with Signifyd's checkout event (POST
// /v3/orders/events/checkouts, HTTP Basic with the API key as user). Its
// score runs from 0 (likely fraud) to 1000; ours is the other way round,
// on 0-100. Its checkpoint action ACCEPT, HOLD or REJECT is our decision.
type Signifyd struct{ vendor }

// NewSignifyd returns the Signifyd adapter; its requests go out
// through the egress guard with policy p.
func NewSignifyd(cfg VendorConfig, p egress.Policy) *Signifyd {
	return &Signifyd{newVendor(cfg, p)}
}

// Name implements Screener.
func (*Signifyd) Name() string { return "signifyd" }

type signifydCheckout struct {
	CheckoutID       string                `json:"checkoutId"`
	OrderID          string                `json:"orderId"`
	Purchase         signifydPurchase      `json:"purchase"`
	Transactions     []signifydTransaction `json:"transactions"`
	MerchantPlatform map[string]string     `json:"merchantPlatform,omitempty"`
}

type signifydPurchase struct {
	CreatedAt    string            `json:"createdAt"`
	OrderChannel string            `json:"orderChannel"`
	TotalPrice   json.Number       `json:"totalPrice"`
	Currency     string            `json:"currency"`
	Products     []signifydProduct `json:"products"`
}

type signifydProduct struct {
	ItemName     string      `json:"itemName"`
	ItemPrice    json.Number `json:"itemPrice"`
	ItemQuantity int         `json:"itemQuantity"`
}

type signifydTransaction struct {
	TransactionID          string      `json:"transactionId"`
	GatewayStatusCode      string      `json:"gatewayStatusCode"`
	PaymentMethod          string      `json:"paymentMethod"`
	Amount                 json.Number `json:"amount"`
	Currency               string      `json:"currency"`
	CheckoutPaymentDetails struct {
		CardBin   string `json:"cardBin,omitempty"`
		CardLast4 string `json:"cardLast4"`
		CardBrand string `json:"cardBrand"`
	} `json:"checkoutPaymentDetails"`
}

type signifydAnswer struct {
	SignifydID int64  `json:"signifydId"`
	CheckoutID string `json:"checkoutId"`
	Decision   struct {
		CheckpointAction       string   `json:"checkpointAction"`
		CheckpointActionReason string   `json:"checkpointActionReason"`
		Score                  *float64 `json:"score"`
	} `json:"decision"`
}

// Screen implements Screener.
func (s *Signifyd) Screen(ctx context.Context, c *Charge) (Result, error) {
	price := major(c.Amount, c.Currency)
	tx := signifydTransaction{TransactionID: c.Reference, GatewayStatusCode: "PENDING", PaymentMethod: "CREDIT_CARD",
		Amount: price, Currency: strings.ToUpper(c.Currency)}
	tx.CheckoutPaymentDetails.CardLast4, tx.CheckoutPaymentDetails.CardBrand = c.Card.Last4, strings.ToUpper(c.Card.Brand)
	body := signifydCheckout{CheckoutID: c.Reference, OrderID: c.Reference,
		Purchase: signifydPurchase{CreatedAt: c.At.UTC().Format(time.RFC3339), OrderChannel: "WEB", TotalPrice: price,
			Currency: strings.ToUpper(c.Currency), Products: []signifydProduct{{ItemName: c.Merchant.Name, ItemPrice: price, ItemQuantity: 1}}},
		Transactions: []signifydTransaction{tx},
	}
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte(s.cfg.Key+":"))
	var a signifydAnswer
	if err := s.post(ctx, "/v3/orders/events/checkouts", body, http.Header{"Authorization": {basic}}, &a); err != nil {
		return Result{}, err
	}
	var r Result
	switch a.Decision.CheckpointAction {
	case "ACCEPT":
		r.Decision = Accept
	case "HOLD":
		r.Decision = Review
	case "REJECT":
		r.Decision = Reject
	default:
		return Result{}, fmt.Errorf("%w: checkpointAction %q", ErrBadAnswer, a.Decision.CheckpointAction)
	}
	if a.Decision.Score != nil {
		r.Score = int((1000 - min(1000, max(0, *a.Decision.Score))) / 10)
	}
	if a.Decision.CheckpointActionReason != "" {
		r.Reasons = []string{a.Decision.CheckpointActionReason}
	}
	return r, nil
}

// ---- Riskified: synchronous Decide -------------------------------------------

// Riskified screens with Riskified's Decide endpoint (POST /api/decide):
// the order signed with HMAC-SHA256 of the body under the authentication
// token (X-RISKIFIED-HMAC-SHA256), the shop named in
// X-RISKIFIED-SHOP-DOMAIN. Its answer is approved or declined, without a
// score: approved scores 0, declined 100.
type Riskified struct{ vendor }

// NewRiskified returns the Riskified adapter (requests through the
// egress guard with policy p).
func NewRiskified(cfg VendorConfig, p egress.Policy) *Riskified {
	return &Riskified{newVendor(cfg, p)}
}

// Name implements Screener.
func (*Riskified) Name() string { return "riskified" }

type riskifiedOrder struct {
	ID             string              `json:"id"`
	CreatedAt      string              `json:"created_at"`
	Currency       string              `json:"currency"`
	TotalPrice     json.Number         `json:"total_price"`
	Gateway        string              `json:"gateway"`
	Source         string              `json:"source"`
	LineItems      []riskifiedLineItem `json:"line_items"`
	PaymentDetails []riskifiedPayment  `json:"payment_details"`
	Customer       map[string]string   `json:"customer,omitempty"`
}

type riskifiedLineItem struct {
	Title    string      `json:"title"`
	Price    json.Number `json:"price"`
	Quantity int         `json:"quantity"`
}

type riskifiedPayment struct {
	CreditCardNumber  string `json:"credit_card_number"`
	CreditCardCompany string `json:"credit_card_company"`
}

// Screen implements Screener.
func (s *Riskified) Screen(ctx context.Context, c *Charge) (Result, error) {
	price := major(c.Amount, c.Currency)
	order := riskifiedOrder{ID: c.Reference, CreatedAt: c.At.UTC().Format(time.RFC3339), Currency: strings.ToUpper(c.Currency),
		TotalPrice: price, Gateway: "perfectpay", Source: "agent",
		LineItems:      []riskifiedLineItem{{Title: c.Merchant.Name, Price: price, Quantity: 1}},
		PaymentDetails: []riskifiedPayment{{CreditCardNumber: "XXXX-XXXX-XXXX-" + c.Card.Last4, CreditCardCompany: c.Card.Brand}},
		Customer:       map[string]string{"id": c.AgentID},
	}
	body := map[string]any{"order": order}
	raw, err := json.Marshal(body)
	if err != nil {
		return Result{}, err
	}
	mac := hmac.New(sha256.New, []byte(s.cfg.Key))
	mac.Write(raw)
	h := http.Header{
		"Accept":                  {"application/vnd.riskified.com; version=2"},
		"X-Riskified-Shop-Domain": {s.cfg.Account},
		"X-Riskified-Hmac-Sha256": {hex.EncodeToString(mac.Sum(nil))},
	}
	var a struct {
		Order struct {
			ID          string `json:"id"`
			Status      string `json:"status"`
			Description string `json:"description"`
		} `json:"order"`
	}
	if err := s.post(ctx, "/api/decide", json.RawMessage(raw), h, &a); err != nil {
		return Result{}, err
	}
	var r Result
	switch a.Order.Status {
	case "approved":
		r.Decision = Accept
	case "declined":
		r.Decision, r.Score = Reject, 100
	default:
		return Result{}, fmt.Errorf("%w: status %q", ErrBadAnswer, a.Order.Status)
	}
	if a.Order.Description != "" {
		r.Reasons = []string{a.Order.Description}
	}
	return r, nil
}

// ---- Kount 360: order with risk inquiry ---------------------------------------

// Kount screens with Kount 360's order endpoint (POST
// /commerce/v2/orders?riskInquiry=true, Bearer token). Its omniscore runs
// from 0 (risky) to 99.9; ours is the other way round. Its decision
// APPROVE, REVIEW (or ESCALATE) or DECLINE is ours.
type Kount struct{ vendor }

// NewKount returns the Kount adapter (requests through the egress guard
// with policy p).
func NewKount(cfg VendorConfig, p egress.Policy) *Kount {
	return &Kount{newVendor(cfg, p)}
}

// Name implements Screener.
func (*Kount) Name() string { return "kount" }

type kountOrder struct {
	MerchantOrderID  string      `json:"merchantOrderId"`
	Channel          string      `json:"channel"`
	CreationDateTime string      `json:"creationDateTime"`
	Items            []kountItem `json:"items"`
	Transactions     []kountTx   `json:"transactions"`
}

type kountItem struct {
	Price       json.Number `json:"price"`
	Description string      `json:"description"`
	Quantity    int         `json:"quantity"`
}

type kountTx struct {
	Processor string `json:"processor"`
	Payment   struct {
		Type         string `json:"type"`
		PaymentToken string `json:"paymentToken"`
		Bin          string `json:"bin,omitempty"`
		Last4        string `json:"last4"`
	} `json:"payment"`
	Subtotal              json.Number `json:"subtotal"`
	OrderTotal            json.Number `json:"orderTotal"`
	Currency              string      `json:"currency"`
	MerchantTransactionID string      `json:"merchantTransactionId"`
}

// Screen implements Screener.
func (s *Kount) Screen(ctx context.Context, c *Charge) (Result, error) {
	price := major(c.Amount, c.Currency)
	tx := kountTx{Processor: "perfectpay", Subtotal: price, OrderTotal: price, Currency: strings.ToUpper(c.Currency), MerchantTransactionID: c.Reference}
	tx.Payment.Type, tx.Payment.PaymentToken, tx.Payment.Last4 = "CREDIT_CARD", c.Card.Fingerprint, c.Card.Last4
	body := kountOrder{MerchantOrderID: c.Reference, Channel: s.cfg.Account, CreationDateTime: c.At.UTC().Format(time.RFC3339),
		Items: []kountItem{{Price: price, Description: c.Merchant.Name, Quantity: 1}}, Transactions: []kountTx{tx}}
	var a struct {
		Order struct {
			RiskInquiry struct {
				Decision  string   `json:"decision"`
				Omniscore *float64 `json:"omniscore"`
				Reasons   []string `json:"reasonCode,omitempty"`
			} `json:"riskInquiry"`
		} `json:"order"`
	}
	if err := s.post(ctx, "/commerce/v2/orders?riskInquiry=true", body, http.Header{"Authorization": {"Bearer " + s.cfg.Key}}, &a); err != nil {
		return Result{}, err
	}
	ri := a.Order.RiskInquiry
	var r Result
	switch ri.Decision {
	case "APPROVE":
		r.Decision = Accept
	case "REVIEW", "ESCALATE":
		r.Decision = Review
	case "DECLINE":
		r.Decision = Reject
	default:
		return Result{}, fmt.Errorf("%w: decision %q", ErrBadAnswer, ri.Decision)
	}
	if ri.Omniscore != nil {
		r.Score = int(100 - min(100, max(0, *ri.Omniscore)))
	}
	r.Reasons = ri.Reasons
	return r, nil
}

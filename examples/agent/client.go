package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// client is a thin JSON client of the PerfectPay API: what any agent or
// merchant integration would write with the standard library.
type client struct {
	base string
	http *http.Client
}

// apiError is the API's error object.
type apiError struct {
	Type    string `json:"type"`
	Code    string `json:"code"`
	Message string `json:"message"`
	Param   string `json:"param"`
}

// errorBody is an error answer: the error and, for charges, the policy
// decision and (when a person must approve) the approval.
type errorBody struct {
	Error    apiError  `json:"error"`
	Decision *decision `json:"decision"`
	Approval *approval `json:"approval"`
}

type reason struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

type decision struct {
	ID            string   `json:"id"`
	Result        string   `json:"result"`
	Reasons       []reason `json:"reasons"`
	PolicyVersion string   `json:"policy_version"`
}

func (d *decision) has(code string) bool {
	if d == nil {
		return false
	}
	for _, r := range d.Reasons {
		if r.Code == code {
			return true
		}
	}
	return false
}

type approval struct {
	ID        string   `json:"id"`
	Status    string   `json:"status"`
	Amount    int64    `json:"amount"`
	Currency  string   `json:"currency"`
	Charge    string   `json:"charge"`
	ExpiresAt string   `json:"expires_at"`
	URL       string   `json:"url"`
	Reasons   []reason `json:"reasons"`
}

type agent struct {
	ID           string   `json:"id"`
	ClientID     string   `json:"client_id"`
	Name         string   `json:"name"`
	Status       string   `json:"status"`
	GrantTypes   []string `json:"grant_types"`
	Scopes       []string `json:"scopes"`
	ClientSecret string   `json:"client_secret"`
}

type cardToken struct {
	ID   string `json:"id"`
	Card struct {
		Brand    string `json:"brand"`
		Last4    string `json:"last4"`
		CVCCheck string `json:"cvc_check"`
	} `json:"card"`
}

type merchant struct {
	ID          string `json:"id"`
	DisplayName string `json:"display_name"`
	MCC         string `json:"mcc"`
	Country     string `json:"country"`
	Domains     []struct {
		Domain   string `json:"domain"`
		Verified bool   `json:"verified"`
	} `json:"domains"`
}

type mandate struct {
	ID                 string   `json:"id"`
	Status             string   `json:"status"`
	Agent              string   `json:"agent"`
	Payer              string   `json:"payer"`
	ParentID           string   `json:"parent_id"`
	Depth              int      `json:"depth"`
	Currency           string   `json:"currency"`
	Budget             int64    `json:"budget"`
	MaxAmountPerCharge *int64   `json:"max_amount_per_charge"`
	ApprovalThreshold  *int64   `json:"approval_threshold"`
	AllowedMerchants   []string `json:"allowed_merchants"`
	AllowedCategories  []string `json:"allowed_categories"`
	PaymentMethods     []string `json:"payment_methods"`
	Description        string   `json:"description"`
	Spent              int64    `json:"spent"`
	ChargeCount        int64    `json:"charge_count"`
	Remaining          int64    `json:"remaining"`
	Revoked            []string `json:"revoked"` // only in the revoke answer
}

type mandateEvent struct {
	ID        string          `json:"id"`
	Type      string          `json:"type"`
	ActorType string          `json:"actor_type"`
	ActorID   string          `json:"actor_id"`
	Data      json.RawMessage `json:"data"`
	Created   string          `json:"created"`
}

type lineItem struct {
	Name       string `json:"name"`
	Quantity   int64  `json:"quantity"`
	UnitAmount int64  `json:"unit_amount"`
}

type chargeRequest struct {
	Amount        int64      `json:"amount"`
	Currency      string     `json:"currency"`
	PaymentMethod string     `json:"payment_method"`
	Merchant      string     `json:"merchant"`
	Description   string     `json:"description,omitempty"`
	LineItems     []lineItem `json:"line_items,omitempty"`
	Approval      string     `json:"approval,omitempty"`
}

type charge struct {
	ID       string    `json:"id"`
	Status   string    `json:"status"`
	Amount   int64     `json:"amount"`
	Currency string    `json:"currency"`
	Mandate  string    `json:"mandate"`
	Agent    string    `json:"agent"`
	Merchant string    `json:"merchant"`
	Decision *decision `json:"decision"`
}

// tokenResponse is the token endpoint's answer (RFC 6749 §5.1 plus
// RFC 8693's issued_token_type and RFC 9396's authorization_details).
type tokenResponse struct {
	AccessToken          string          `json:"access_token"`
	TokenType            string          `json:"token_type"`
	ExpiresIn            int64           `json:"expires_in"`
	Scope                string          `json:"scope"`
	IssuedTokenType      string          `json:"issued_token_type"`
	AuthorizationDetails json.RawMessage `json:"authorization_details"`
	Error                string          `json:"error"`
	ErrorDescription     string          `json:"error_description"`
}

// bearer is the Authorization header value for a key or an access token.
func bearer(tok string) string { return "Bearer " + tok }

// call sends a JSON request. A 2xx answer is decoded into out (when not
// nil); any other into the returned errorBody. err is a transport or
// decoding failure only.
func (c *client) call(ctx context.Context, method, path, auth string, in any, hdr map[string]string, out any) (int, *errorBody, error) {
	var body io.Reader
	if in != nil {
		raw, err := json.Marshal(in)
		if err != nil {
			return 0, nil, err
		}
		body = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return 0, nil, err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return resp.StatusCode, nil, err
	}
	if resp.StatusCode/100 == 2 {
		if out != nil {
			if err := json.Unmarshal(raw, out); err != nil {
				return resp.StatusCode, nil, fmt.Errorf("%s %s: decoding the answer: %w", method, path, err)
			}
		}
		return resp.StatusCode, nil, nil
	}
	var eb errorBody
	if err := json.Unmarshal(raw, &eb); err != nil || eb.Error.Code == "" && eb.Error.Type == "" {
		return resp.StatusCode, nil, fmt.Errorf("%s %s: HTTP %d with an unexpected body: %.300s", method, path, resp.StatusCode, raw)
	}
	return resp.StatusCode, &eb, nil
}

// mustCall is call for requests that must succeed.
func (c *client) mustCall(ctx context.Context, method, path, auth string, in any, out any) error {
	hdr := map[string]string{}
	if method == http.MethodPost {
		hdr["Idempotency-Key"] = newKey()
	}
	status, eb, err := c.call(ctx, method, path, auth, in, hdr, out)
	if err != nil {
		return err
	}
	if eb != nil {
		return fmt.Errorf("%w: %s %s: HTTP %d %s/%s: %s", errStory, method, path, status, eb.Error.Type, eb.Error.Code, eb.Error.Message)
	}
	return nil
}

// form posts an application/x-www-form-urlencoded request to the token
// endpoint with client_secret_basic authentication.
func (c *client) form(ctx context.Context, path, clientID, secret string, v url.Values) (int, *tokenResponse, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+path, strings.NewReader(v.Encode()))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(clientID), url.QueryEscape(secret))
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	var tr tokenResponse
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&tr); err != nil {
		return resp.StatusCode, nil, fmt.Errorf("POST %s: decoding the answer: %w", path, err)
	}
	return resp.StatusCode, &tr, nil
}

// newKey returns a fresh Idempotency-Key.
func newKey() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	// base64url rather than hex: a long run of digits may pass the Luhn
	// check, and the server refuses card numbers in every stored header.
	return "demo-" + base64.RawURLEncoding.EncodeToString(b)
}

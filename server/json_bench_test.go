package server_test

import (
	"bytes"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/perfectpay/perfectpay/server"
)

type benchCharge struct {
	Amount        int64             `json:"amount"`
	Currency      string            `json:"currency"`
	PaymentMethod string            `json:"payment_method"`
	Merchant      string            `json:"merchant"`
	Description   string            `json:"description"`
	OrderURL      string            `json:"order_url"`
	Metadata      map[string]string `json:"metadata"`
	LineItems     []struct {
		Name       string `json:"name"`
		Quantity   int64  `json:"quantity"`
		UnitAmount int64  `json:"unit_amount"`
	} `json:"line_items"`
}

// BenchmarkDecodeJSON measures the strict decoder with its card-number
// guard on an agent charge body: one with no run of 13 digits (the guard
// only scans the raw bytes), one whose number fields hold 16 digits (the
// guard parses the body again to look at its strings), and a 64 KB
// description.
func BenchmarkDecodeJSON(b *testing.B) {
	base := `{"amount":%s,"currency":"USD","payment_method":"tok_hpjKAkcqI5JumyXr7qyTPMvx","merchant":"acct_VaWvQSsAkKCEpmO0vJNAGgS0",` +
		`"description":"%s","order_url":"https://shop.example/o/1234","metadata":{"order":"A-17","cart":"c-99"},` +
		`"line_items":[{"name":"paperback","quantity":1,"unit_amount":1999},{"name":"bookmark","quantity":2,"unit_amount":250}]}`
	for _, tc := range []struct{ name, amount, desc string }{
		{"plain", "2499", "two books"},
		{"long_numbers", "4242424242424242", "two books"},
		{"64KB_text", "2499", strings.Repeat("a book about 1234 things ", 2600)},
	} {
		body := []byte(strings.Replace(strings.Replace(base, "%s", tc.amount, 1), "%s", tc.desc, 1))
		b.Run(tc.name, func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				r := httptest.NewRequest("POST", "/v1/charges", bytes.NewReader(body))
				r.Header.Set("Content-Type", "application/json")
				var v benchCharge
				if err := server.DecodeJSON(r, &v); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

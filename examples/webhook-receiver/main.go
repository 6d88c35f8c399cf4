// Command webhook-receiver is a minimal PerfectPay webhook receiver: it
// verifies every request with webhooks/verify, ignores resends of a
// webhook-id it already handled (delivery is at least once, and order is
// not promised), and answers 204 quickly.
//
//	WEBHOOK_SECRET=whsec_… go run ./examples/webhook-receiver -addr 127.0.0.1:4242
//
// During a secret rotation, list both secrets separated by commas; any of
// them verifies.
package main

import (
	"encoding/json"
	"flag"
	"log"
	"net/http"
	"os"
	"strings"
	"sync"

	"github.com/perfectpay/perfectpay/webhooks/verify"
)

// Event is the delivered JSON body.
type Event struct {
	ID      string          `json:"id"`
	Type    string          `json:"type"`
	Created string          `json:"created"`
	Data    json.RawMessage `json:"data"`
}

// Receiver handles webhooks.
type Receiver struct {
	V      *verify.Verifier
	Handle func(Event)

	mu   sync.Mutex
	seen map[string]bool // a real receiver keeps this in its database
}

func (rc *Receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	body, err := rc.V.Request(r, 1<<20)
	if err != nil {
		http.Error(w, "invalid signature", http.StatusBadRequest)
		return
	}
	id := r.Header.Get(verify.HeaderID)
	rc.mu.Lock()
	if rc.seen == nil {
		rc.seen = map[string]bool{}
	}
	dup := rc.seen[id]
	rc.seen[id] = true
	rc.mu.Unlock()
	if dup {
		w.WriteHeader(http.StatusNoContent) // already handled: acknowledge again
		return
	}
	var ev Event
	if err := json.Unmarshal(body, &ev); err != nil {
		http.Error(w, "bad JSON", http.StatusBadRequest)
		return
	}
	if rc.Handle != nil {
		rc.Handle(ev)
	}
	w.WriteHeader(http.StatusNoContent)
}

func main() {
	addr := flag.String("addr", "127.0.0.1:4242", "listen address")
	flag.Parse()
	raw := os.Getenv("WEBHOOK_SECRET")
	if raw == "" {
		log.Fatal("set WEBHOOK_SECRET to the endpoint's whsec_… secret")
	}
	v, err := verify.New(strings.Split(raw, ",")...)
	if err != nil {
		log.Fatal(err)
	}
	rc := &Receiver{V: v, Handle: func(ev Event) { log.Printf("event %s %s", ev.ID, ev.Type) }}
	log.Printf("listening on http://%s", *addr)
	log.Fatal(http.ListenAndServe(*addr, rc))
}

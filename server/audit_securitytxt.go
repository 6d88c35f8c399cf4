package server

import (
	"fmt"
	"net/http"
	"strings"
	"time"
)

// SecurityTxt serves /.well-known/security.txt (RFC 9116): where to
// report a vulnerability.
type SecurityTxt struct {
	// Contact is a mailto: or https: URI; Canonical the file's own URL.
	Contact   string
	Canonical string
	Now       func() time.Time
}

// PathSecurityTxt is where RFC 9116 puts the file.
const PathSecurityTxt = "/.well-known/security.txt"

// Mount adds the route.
func (h *SecurityTxt) Mount(api *API) {
	api.Raw(http.MethodGet, PathSecurityTxt, http.HandlerFunc(h.serve))
}

func (h *SecurityTxt) serve(w http.ResponseWriter, _ *http.Request) {
	now := time.Now
	if h.Now != nil {
		now = h.Now
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Contact: %s\n", h.Contact)
	// Less than a year ahead, as RFC 9116 recommends; the file is made on
	// each request, so it never lapses.
	fmt.Fprintf(&b, "Expires: %s\n", now().UTC().Add(180*24*time.Hour).Truncate(time.Second).Format(time.RFC3339))
	if h.Canonical != "" {
		fmt.Fprintf(&b, "Canonical: %s\n", h.Canonical)
	}
	b.WriteString("Preferred-Languages: en\n")
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "public, max-age=86400")
	_, _ = w.Write([]byte(b.String()))
}

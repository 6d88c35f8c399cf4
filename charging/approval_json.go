package charging

import (
	"encoding/json"
	"strings"
)

// MarshalJSON writes the approval with its currency in lower case, as every
// object of the API writes currencies (inside, the request's currency is
// ISO 4217 upper case, bound into the approval's digest).
func (a Approval) MarshalJSON() ([]byte, error) {
	type plain Approval
	p := plain(a)
	p.Currency = strings.ToLower(p.Currency)
	return json.Marshal(p)
}

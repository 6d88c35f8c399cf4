package server

import (
	"bytes"
	"encoding/json"
	"io"
	"math"
	"net/http"
	"slices"

	"github.com/perfectpay/perfectpay/fraud"
	"github.com/perfectpay/perfectpay/internal/apierr"
	"github.com/perfectpay/perfectpay/policies"
)

// maxRiskSignals bounds the risk signals one charge may carry.
const maxRiskSignals = 20

// acceptRiskSignals takes an agent's risk signals out of its charge
// request (POST /v1/charges) before anything else reads the body.
func acceptRiskSignals(method, path string, next handlerFunc) handlerFunc {
	if method != http.MethodPost || path != "/v1/charges" {
		return next
	}
	return func(w http.ResponseWriter, r *http.Request) error {
		if p := PrincipalFrom(r); p == nil || p.Agent == nil {
			return next(w, r)
		}
		r, err := takeRiskSignals(r)
		if err != nil {
			return err
		}
		return next(w, r)
	}
}

// takeRiskSignals takes an agent's risk_signals ([{type, score, action}],
// the shape agentic checkout protocols use) out of a charge body, checked:
// type a short token (letters, digits, '_', '-', '.', ':'), score a number
// from 0 to 100, action allow, review or block. They travel to the fraud
// signals in the request context and into the policy input, where they can
// only ask for review or deny: "allow" is recorded and changes nothing.
func takeRiskSignals(r *http.Request) (*http.Request, error) {
	raw, err := readBody(r)
	if err != nil || len(bytes.TrimSpace(raw)) == 0 {
		return r, err
	}
	var doc map[string]json.RawMessage
	if !json.Valid(raw) || bytes.TrimSpace(raw)[0] != '{' {
		return r, nil // not an object: the handler's strict decoding says why
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		return r, BadRequest(apierr.ParameterInvalid, "", "The request body is not a JSON object.")
	}
	rs, ok := doc["risk_signals"]
	if !ok {
		return r, nil
	}
	var in []json.RawMessage
	if err := json.Unmarshal(rs, &in); err != nil {
		return r, BadRequest(apierr.ParameterInvalid, "risk_signals", "risk_signals must be an array of {type, score, action}.")
	}
	if len(in) > maxRiskSignals {
		return r, BadRequest(apierr.ParameterInvalid, "risk_signals", "At most %d risk signals may be sent.", maxRiskSignals)
	}
	out := make([]policies.RiskSignal, 0, len(in))
	for i, e := range in {
		param := "risk_signals[" + itoa(i) + "]"
		var s struct {
			Type   string   `json:"type"`
			Score  *float64 `json:"score"`
			Action string   `json:"action"`
		}
		dec := json.NewDecoder(bytes.NewReader(e))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&s); err != nil {
			return r, BadRequest(apierr.ParameterInvalid, param, "%s must be an object with type, score and action only.", param)
		}
		if !signalToken(s.Type) || hasPAN(s.Type) {
			return r, BadRequest(apierr.ParameterInvalid, param+".type", "%s.type must be 1 to 64 letters, digits, '_', '-', '.' or ':'.", param)
		}
		if s.Score == nil || math.IsNaN(*s.Score) || *s.Score < 0 || *s.Score > 100 {
			return r, BadRequest(apierr.ParameterInvalid, param+".score", "%s.score must be a number from 0 to 100.", param)
		}
		if !slices.Contains([]string{"allow", "review", "block"}, s.Action) {
			return r, BadRequest(apierr.ParameterInvalid, param+".action", "%s.action must be allow, review or block.", param)
		}
		out = append(out, policies.RiskSignal{Type: s.Type, Score: *s.Score, Action: s.Action})
	}
	delete(doc, "risk_signals")
	b, err := json.Marshal(doc)
	if err != nil {
		return r, err
	}
	r = r.WithContext(fraud.WithRiskSignals(r.Context(), out))
	r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(b)), int64(len(b))
	return r, nil
}

func signalToken(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.' || c == ':') {
			return false
		}
	}
	return true
}

func itoa(i int) string {
	b, _ := json.Marshal(i)
	return string(b)
}

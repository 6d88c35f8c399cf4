package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"

	"github.com/perfectpay/perfectpay/fraud"
	"github.com/perfectpay/perfectpay/internal/apierr"
	"github.com/perfectpay/perfectpay/policies"
)

// acceptRiskSignals takes the caller's risk signals out of a charge
// request (POST /v1/charges, an agent's or a merchant's) before anything
// else reads the body.
func acceptRiskSignals(method, path string, next handlerFunc) handlerFunc {
	if method != http.MethodPost || path != "/v1/charges" {
		return next
	}
	return func(w http.ResponseWriter, r *http.Request) error {
		if PrincipalFrom(r) == nil {
			return next(w, r)
		}
		r, err := takeRiskSignals(r)
		if err != nil {
			return err
		}
		return next(w, r)
	}
}

var riskSignalsMember = []byte(`"risk_signals"`)

// takeRiskSignals takes risk_signals ([{type, score, action}]) out of a
// charge body, checked (fraud.CheckRiskSignals). They travel in the
// request context: into the policy input of an agent charge, where they
// can only ask for review or deny ("allow" is recorded and changes
// nothing), and into the audit entry of a merchant's charge. A body that
// does not name the member is left as it is without being parsed (a
// member name spelled with escapes is then an unknown field to the
// handler's strict decoding).
func takeRiskSignals(r *http.Request) (*http.Request, error) {
	raw, err := readBody(r)
	if err != nil || !bytes.Contains(raw, riskSignalsMember) {
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
	if len(in) > fraud.MaxRiskSignals {
		return r, BadRequest(apierr.ParameterInvalid, "risk_signals", "At most %d risk signals may be sent.", fraud.MaxRiskSignals)
	}
	out := make([]policies.RiskSignal, 0, len(in))
	for i, e := range in {
		param := "risk_signals[" + strconv.Itoa(i) + "]"
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
		if s.Score == nil {
			return r, BadRequest(apierr.ParameterInvalid, param+".score", "%s.score must be a number from 0 to 100.", param)
		}
		out = append(out, policies.RiskSignal{Type: s.Type, Score: *s.Score, Action: s.Action})
	}
	if err := fraud.CheckRiskSignals(out); err != nil {
		var re *fraud.RiskSignalError
		if errors.As(err, &re) {
			return r, BadRequest(apierr.ParameterInvalid, re.Param, "%s", re.Message)
		}
		return r, err
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

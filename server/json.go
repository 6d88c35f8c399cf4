package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"mime"
	"net/http"
	"slices"
	"strings"

	"github.com/perfectpay/perfectpay/internal/apierr"
	"github.com/perfectpay/perfectpay/internal/logging"
)

// MaxBodyBytes is the largest request body accepted.
const MaxBodyBytes = 1 << 20

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

// WriteJSON writes v as the response body with status.
func WriteJSON(w http.ResponseWriter, status int, v any) { writeJSON(w, status, v) }

// readBody reads the (already size-limited) body once, mapping an
// oversized body to 413.
func readBody(r *http.Request) ([]byte, error) {
	if r.Body == nil {
		return nil, nil
	}
	b, err := io.ReadAll(r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, Errorf(http.StatusRequestEntityTooLarge, TypeInvalidRequest, "body_too_large", "",
				"The request body exceeds %d bytes.", MaxBodyBytes)
		}
		return nil, BadRequest("body_unreadable", "", "The request body could not be read.")
	}
	r.Body = io.NopCloser(bytes.NewReader(b))
	return b, nil
}

// DecodeJSON decodes the request body into v strictly: JSON content type,
// no unknown fields, one value, at most MaxBodyBytes, no card number in any
// string or member name (see panIn). An empty body leaves v as it is (for
// endpoints whose fields are all optional).
func DecodeJSON(r *http.Request, v any) error { return decodeJSON(r, v, false) }

// decodeCardBody is DecodeJSON for the one body that carries a card
// number by design: the tokenization request.
func decodeCardBody(r *http.Request, v any) error { return decodeJSON(r, v, true) }

func decodeJSON(r *http.Request, v any, cardBody bool) error {
	b, err := readBody(r)
	if err != nil {
		return err
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return nil
	}
	ct := r.Header.Get("Content-Type")
	mt, _, perr := mime.ParseMediaType(ct)
	if perr != nil || mt != "application/json" {
		return Errorf(http.StatusUnsupportedMediaType, TypeInvalidRequest, "unsupported_media_type", "",
			"Content-Type must be application/json (got %q).", ct)
	}
	// Before decoding, so that no error (an unknown member's name) echoes a
	// card number, and no handler sees one.
	if !cardBody {
		if param, ok := panString(b); ok {
			return panRefused(param)
		}
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if dec.More() {
		return BadRequest("invalid_json", "", "The request body must hold exactly one JSON value.")
	}
	if param, ok := nulString(b); ok {
		return BadRequest(apierr.ParameterInvalid, param, "%s holds a NUL character (\\u0000).", orBody(param))
	}
	return nil
}

// nulString finds a member name or string value holding NUL (\u0000, the
// only way JSON spells it), which no store holds (PostgreSQL's text cannot),
// and returns its param ("metadata.order", "line_items[0].name").
func nulString(b []byte) (string, bool) {
	if !bytes.Contains(b, []byte(`\u0000`)) {
		return "", false
	}
	var v any
	if json.Unmarshal(b, &v) != nil {
		return "", false
	}
	return nulIn(v, "")
}

func nulIn(v any, param string) (string, bool) {
	switch x := v.(type) {
	case string:
		return param, strings.IndexByte(x, 0) >= 0
	case []any:
		for i, e := range x {
			if p, ok := nulIn(e, fmt.Sprintf("%s[%d]", param, i)); ok {
				return p, true
			}
		}
	case map[string]any:
		for k, e := range x {
			p := k
			if param != "" {
				p = param + "." + k
			}
			if strings.IndexByte(k, 0) >= 0 {
				return strings.ReplaceAll(p, "\x00", ""), true
			}
			if p, ok := nulIn(e, p); ok {
				return p, true
			}
		}
	}
	return "", false
}

// A card number is accepted only by tokenization (POST /v1/tokens): in any
// other field it would be stored, logged or sent on in clear. The one
// detector is the log redactor's (internal/logging): a Luhn-valid run of
// 13–19 digits, plain, spaced or dashed.
func hasPAN(s string) bool { return logging.RedactPAN(s) != s }

// panRefused is the answer to a card number in param; param never holds
// the number itself.
func panRefused(param string) error {
	return BadRequest(apierr.ParameterInvalid, param,
		"%s holds what looks like a card number. Card numbers are accepted only by POST /v1/tokens; send the token instead.", orBody(param))
}

// panString finds a string value or member name of the JSON body b that
// holds a card number and returns its param ("metadata.order",
// "line_items[0].name"). Bodies with no run of 13 digits and no \u escape
// (by which digits could hide) are not parsed again.
func panString(b []byte) (string, bool) {
	if !bytes.Contains(b, []byte(`\u`)) && !hasPAN(string(b)) {
		return "", false
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if dec.Decode(&v) != nil {
		return "", false
	}
	return panIn(v, "")
}

func panIn(v any, param string) (string, bool) {
	switch x := v.(type) {
	case string:
		return param, hasPAN(x)
	case []any:
		for i, e := range x {
			if p, ok := panIn(e, fmt.Sprintf("%s[%d]", param, i)); ok {
				return p, true
			}
		}
	case map[string]any:
		for _, k := range slices.Sorted(maps.Keys(x)) {
			e := x[k]
			p := k
			if param != "" {
				p = param + "." + k
			}
			if hasPAN(k) {
				// A member name: name the object holding it, never the
				// name itself.
				return param, true
			}
			if p, ok := panIn(e, p); ok {
				return p, true
			}
		}
	}
	return "", false
}

func jsonError(err error) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return BadRequest("invalid_json", "", "The request body is not valid JSON (at byte %d).", se.Offset)
	case errors.As(err, &te):
		field := te.Field
		return BadRequest("invalid_type", field, "Invalid type for %s: expected %s.", orBody(field), te.Type.String())
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return BadRequest("unknown_parameter", name, "Received unknown parameter: %s.", name)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return BadRequest("invalid_json", "", "The request body is truncated JSON.")
	}
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return BadRequest("invalid_json", "", "The request body could not be decoded: %s.", err.Error())
}

func orBody(field string) string {
	if field == "" {
		return "the body"
	}
	return field
}

package verify

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// FuzzVerify: the webhook-id, webhook-timestamp and webhook-signature
// headers and the body come from whoever calls the receiver. Verify never
// panics, and accepts only a message whose timestamp is within the
// tolerance and whose signature header carries the HMAC of exactly
// "{id}.{timestamp}.{body}" under the key. With sign set, the test puts the
// right signature (among whatever else the header holds), so the fuzzer
// also explores the timestamp window and the header's parsing.
func FuzzVerify(f *testing.F) {
	key := []byte("fuzz-key-0123456789abcdef")
	now := time.Unix(1_780_000_000, 0)
	ts := strconv.FormatInt(now.Unix(), 10)
	f.Add([]byte(`{"type":"charge.succeeded"}`), "msg_1", ts, "", true)
	f.Add([]byte(`{}`), "msg_1", ts, "v1,AAAA v2,xyz", true)
	f.Add([]byte(`{}`), "msg_1", " "+ts+" ", "", true)
	f.Add([]byte(`{}`), "msg_1", strconv.FormatInt(now.Unix()-301, 10), "", true)
	f.Add([]byte(`{}`), "msg_1", "-9223372036854775808", "", true)
	f.Add([]byte(`{}`), "msg_1", "9223372036854775807", "", true)
	f.Add([]byte(`{}`), "msg_1", ts, "v1,"+base64.StdEncoding.EncodeToString(make([]byte, 32)), false)
	f.Add([]byte(``), "", "", "", false)
	f.Add([]byte(`x`), "a.b", "1.5", "v1,", true)
	v := NewRaw(key)
	v.Now = func() time.Time { return now }
	f.Fuzz(func(t *testing.T, body []byte, id, tsHeader, sigHeader string, sign bool) {
		mac := func(id, ts string) string {
			m := hmac.New(sha256.New, key)
			m.Write([]byte(id + "." + ts + "."))
			m.Write(body)
			return base64.StdEncoding.EncodeToString(m.Sum(nil))
		}
		if sign {
			sigHeader = strings.TrimSpace(sigHeader + " v1," + mac(id, strings.TrimSpace(tsHeader)))
		}
		h := http.Header{}
		h.Set(HeaderID, id)
		h.Set(HeaderTimestamp, tsHeader)
		h.Set(HeaderSignature, sigHeader)
		if err := v.Verify(body, h); err != nil {
			return
		}
		// Accepted: check why, from what the headers hold after HTTP's
		// own normalization.
		id, tsHeader, sigHeader = h.Get(HeaderID), h.Get(HeaderTimestamp), h.Get(HeaderSignature)
		sec, err := strconv.ParseInt(strings.TrimSpace(tsHeader), 10, 64)
		if err != nil {
			t.Fatalf("accepted a timestamp that is not a number: %q", tsHeader)
		}
		if d := sec - now.Unix(); d > 300 || d < -300 {
			t.Fatalf("accepted a timestamp %d s from now", d)
		}
		want := "v1," + mac(id, strings.TrimSpace(tsHeader))
		found := false
		for _, s := range strings.Fields(sigHeader) {
			if s == want {
				found = true
			}
		}
		if !found {
			t.Fatalf("accepted signature header %q, which lacks %q", sigHeader, want)
		}
	})
}

package country

import "testing"

func TestValid(t *testing.T) {
	if n := len(codes); n != 249 {
		t.Fatalf("expected the 249 assigned codes, got %d", n)
	}
	for _, c := range []string{"US", "DE", "JP", "GB"} {
		if !Valid(c) {
			t.Errorf("%s should be valid", c)
		}
	}
	for _, c := range []string{"us", "UK", "XX", "USA", ""} {
		if Valid(c) {
			t.Errorf("%q should be invalid", c)
		}
	}
}

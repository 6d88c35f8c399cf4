package luhn

import "testing"

func TestValid(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want bool
	}{
		{"4242424242424242", true}, {"4242424242424241", false}, {"378282246310005", true},
		{"5555555555554444", true}, {"0", true}, {"1", false}, {"79927398713", true},
	} {
		if got := Valid(tc.in); got != tc.want {
			t.Errorf("Valid(%q) = %v, want %v", tc.in, got, tc.want)
		}
		if got := Valid([]byte(tc.in)); got != tc.want {
			t.Errorf("Valid([]byte(%q)) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

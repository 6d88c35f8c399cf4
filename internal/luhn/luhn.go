// Package luhn is the Luhn (mod 10) check digit test card numbers carry.
package luhn

// Valid reports whether the ASCII digits d pass the Luhn check. The caller
// makes sure d holds only digits.
func Valid[T ~string | ~[]byte](d T) bool {
	sum, double := 0, false
	for i := len(d) - 1; i >= 0; i-- {
		n := int(d[i] - '0')
		if double {
			n *= 2
			if n > 9 {
				n -= 9
			}
		}
		sum += n
		double = !double
	}
	return sum%10 == 0
}

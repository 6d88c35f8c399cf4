package authz

// IssuanceQueued is how many issued tokens wait for their batch, for
// tests that line up a batch before letting it commit.
func IssuanceQueued(i *Issuer) int {
	i.issued.mu.Lock()
	defer i.issued.mu.Unlock()
	return len(i.issued.queue)
}

// SetIssuanceInFlight sets how many issuance batches may commit at once,
// before the issuer has issued anything.
func SetIssuanceInFlight(i *Issuer, n int) { i.issued.inFlight = n }

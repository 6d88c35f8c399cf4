package webhooks

import "github.com/perfectpay/perfectpay/internal/egress"

// Policy is the destination policy of endpoint URLs and deliveries.
type Policy = egress.Policy

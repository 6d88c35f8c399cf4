package e2e

import "testing"

func testRevocation(t *testing.T, c *cluster) {}

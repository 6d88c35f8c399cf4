// Package e2e holds end-to-end tests and benchmarks of the agent charge
// pipeline (DESIGN.md §3.4, §3.6, §4) against real `perfectpay serve`
// processes sharing one PostgreSQL database: budgets under a 1,000-charge
// race across three nodes, instant revocation across nodes and the cache
// invalidation behind introspection, and authorizations per second next to
// pgbench running the same SQL. Everything is in _test.go files.
package e2e

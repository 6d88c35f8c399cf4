package charging

import "context"

// SetGroupHooks sets what runs as a group's leader takes its batch and
// before a group transaction of two or more members commits (nil: none).
// Set before the service takes charges.
func SetGroupHooks(s *Service, beforeBatch func(key string), beforeCommit func(ctx context.Context, tx Tx) error) {
	s.groups.beforeBatch, s.groups.beforeCommit = beforeBatch, beforeCommit
}

// GroupWaiting is the number of charge transactions queued on the chain
// key, its leader's included until it takes its batch.
func GroupWaiting(s *Service, key string) int {
	s.groups.mu.Lock()
	defer s.groups.mu.Unlock()
	if q := s.groups.queues[key]; q != nil {
		return len(q.waiting)
	}
	return 0
}

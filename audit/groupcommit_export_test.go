package audit

// GroupQueued is how many writes wait for the next batch of g.
func GroupQueued[X any](g *Group[X]) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.queue)
}

package web

// SetTimelinePageSize makes the timeline's pages n entries long (tests).
func (p *Pages) SetTimelinePageSize(n int) { p.timelinePage = n }

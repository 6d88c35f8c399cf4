package app

import (
	"github.com/perfectpay/perfectpay/compliance"
	"github.com/perfectpay/perfectpay/server"
)

// complianceHandlers serve auditors: the audit trail and its checkpoints,
// mandate timelines.
func complianceHandlers(a *App) []server.Mounter {
	return []server.Mounter{
		&server.AuditHandlers{Audit: a.Audit},
		&server.TimelineHandlers{Timelines: &compliance.Timelines{Mandates: a.Mandates, Audit: a.Audit}},
	}
}

package web

import (
	"html/template"
	"strings"
	"time"

	"github.com/perfectpay/perfectpay/internal/money"
)

var funcs = template.FuncMap{
	"list":  func(s ...string) []string { return s },
	"money": money.Format,
	"date": func(t time.Time) string {
		return t.UTC().Format("2 Jan 2006 15:04 UTC")
	},
	"datep": func(t *time.Time) string {
		if t == nil {
			return ""
		}
		return t.UTC().Format("2 Jan 2006 15:04 UTC")
	},
	// dataURL lets a data:image/png URI made by the server (the TOTP QR
	// code) through html/template, which would otherwise blank it.
	"dataURL": func(s string) template.URL {
		if strings.HasPrefix(s, "data:image/png;base64,") {
			return template.URL(s)
		}
		return ""
	},
}

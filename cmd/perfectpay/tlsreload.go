package main

import (
	"crypto/tls"
	"log/slog"
	"os"
	"sync"
	"time"
)

// certReloader serves the certificate of certFile and keyFile, loading
// them again when either file changes (looked at most once a second), so
// a renewed certificate is served without a restart. A pair that does not
// load (a renewal half written) keeps the previous one, and is logged.
type certReloader struct {
	certFile, keyFile string
	log               *slog.Logger
	now               func() time.Time

	mu       sync.Mutex
	cert     *tls.Certificate
	certMod  time.Time
	keyMod   time.Time
	lookedAt time.Time
}

// newCertReloader loads the pair once; it must load.
func newCertReloader(certFile, keyFile string, log *slog.Logger) (*certReloader, error) {
	r := &certReloader{certFile: certFile, keyFile: keyFile, log: log, now: time.Now}
	cm, km, err := r.mods()
	if err != nil {
		return nil, err
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	r.cert, r.certMod, r.keyMod, r.lookedAt = &cert, cm, km, r.now()
	return r, nil
}

func (r *certReloader) mods() (time.Time, time.Time, error) {
	ci, err := os.Stat(r.certFile)
	if err != nil {
		return time.Time{}, time.Time{}, err
	}
	ki, err := os.Stat(r.keyFile)
	if err != nil {
		return time.Time{}, time.Time{}, err
	}
	return ci.ModTime(), ki.ModTime(), nil
}

// GetCertificate is tls.Config.GetCertificate.
func (r *certReloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if now := r.now(); now.Sub(r.lookedAt) >= time.Second {
		r.lookedAt = now
		cm, km, err := r.mods()
		if err == nil && (!cm.Equal(r.certMod) || !km.Equal(r.keyMod)) {
			cert, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
			if err != nil {
				r.log.Error("TLS certificate changed but does not load; serving the previous one", "err", err)
			} else {
				r.cert, r.certMod, r.keyMod = &cert, cm, km
				r.log.Info("TLS certificate reloaded", "file", r.certFile)
			}
		}
	}
	return r.cert, nil
}

// Package tlsutil holds what kubeseed's own TLS servers share: the
// hardened defaults and a serving certificate that follows renewals.
package tlsutil

import (
	"crypto/tls"
	"fmt"
	"os"
	"slices"
	"sync"
	"time"
)

// ServingCert re-reads the serving certificate when its files change, so a
// renewed certificate (kept key, new .crt) is served without a restart. The
// files are checked at most once a second, on a handshake.
type ServingCert struct {
	certFile, keyFile string

	mu      sync.Mutex
	cert    *tls.Certificate
	stamp   string // size and mtime of both files at the last load
	checked time.Time
}

// NewServingCert loads the pair once, so a bad pair fails at start.
func NewServingCert(certFile, keyFile string) (*ServingCert, error) {
	s := &ServingCert{certFile: certFile, keyFile: keyFile}
	if _, err := s.get(time.Now()); err != nil {
		return nil, err
	}
	return s, nil
}

// get returns the current certificate, reloading it if the files changed.
// A pair that does not load (say, caught between two renames) keeps the
// last good one.
func (s *ServingCert) get(now time.Time) (*tls.Certificate, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cert != nil && now.Sub(s.checked) < time.Second {
		return s.cert, nil
	}
	s.checked = now
	stamp, err := fileStamp(s.certFile, s.keyFile)
	if err != nil {
		if s.cert != nil {
			return s.cert, nil
		}
		return nil, err
	}
	if s.cert != nil && stamp == s.stamp {
		return s.cert, nil
	}
	c, err := tls.LoadX509KeyPair(s.certFile, s.keyFile)
	if err != nil {
		if s.cert != nil {
			return s.cert, nil
		}
		return nil, fmt.Errorf("load %s: %w", s.certFile, err)
	}
	s.cert, s.stamp = &c, stamp
	return s.cert, nil
}

// GetCertificate is for tls.Config.GetCertificate.
func (s *ServingCert) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return s.get(time.Now())
}

func fileStamp(paths ...string) (string, error) {
	var stamp string
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return "", err
		}
		stamp += fmt.Sprintf("%s:%d:%d;", p, st.Size(), st.ModTime().UnixNano())
	}
	return stamp, nil
}

// CipherSuites maps IANA suite names to Go's IDs; unknown names (none in
// kubeseed's list) are left out.
func CipherSuites(names []string) []uint16 {
	var ids []uint16
	for _, c := range tls.CipherSuites() {
		if slices.Contains(names, c.Name) {
			ids = append(ids, c.ID)
		}
	}
	return ids
}

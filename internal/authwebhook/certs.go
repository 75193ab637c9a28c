package authwebhook

import (
	"crypto/tls"
	"fmt"
	"os"
	"sync"
	"time"
)

// servingCert re-reads the serving certificate when its files change, so a
// renewed certificate (kept key, new .crt) is served without a restart. The
// files are checked at most once a second, on a handshake.
type servingCert struct {
	certFile, keyFile string

	mu      sync.Mutex
	cert    *tls.Certificate
	stamp   string // size and mtime of both files at the last load
	checked time.Time
}

func newServingCert(certFile, keyFile string) (*servingCert, error) {
	s := &servingCert{certFile: certFile, keyFile: keyFile}
	if _, err := s.get(time.Now()); err != nil {
		return nil, err
	}
	return s, nil
}

// get returns the current certificate, reloading it if the files changed.
// A pair that does not load (say, caught between two renames) keeps the
// last good one.
func (s *servingCert) get(now time.Time) (*tls.Certificate, error) {
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

func (s *servingCert) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
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

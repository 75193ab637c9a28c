// Package health probes kubeseed's HTTPS endpoints.
package health

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"
)

// Check does one GET and returns nil on HTTP 200.
func Check(ctx context.Context, url string, tlsCfg *tls.Config) error {
	_, err := Get(ctx, url, tlsCfg)
	return err
}

// Get does one GET and returns the start of the body on HTTP 200.
func Get(ctx context.Context, url string, tlsCfg *tls.Config) (string, error) {
	client := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsCfg}}
	defer client.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: HTTP %d: %.512s", url, resp.StatusCode, body)
	}
	return string(body), nil
}

// startPoll is how often start-up probes retry: each probe is one local
// request, and every poll saved shortens the start.
const startPoll = 50 * time.Millisecond

// Wait polls url until it answers 200 or ctx ends.
func Wait(ctx context.Context, url string, tlsCfg *tls.Config) error {
	return WaitFor(ctx, url, tlsCfg, "", func(string) bool { return true })
}

// WaitFor polls url until it answers 200 with a body for which done holds,
// or ctx ends; waitingFor says what done waits for, in errors.
func WaitFor(ctx context.Context, url string, tlsCfg *tls.Config, waitingFor string, done func(body string) bool) error {
	var last error
	for {
		body, err := Get(ctx, url, tlsCfg)
		if err == nil && done(body) {
			return nil
		}
		last = err
		if err == nil {
			last = fmt.Errorf("%s: %s", url, waitingFor)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %v)", ctx.Err(), last)
		case <-time.After(startPoll):
		}
	}
}

// ClientTLS trusts caFile and, when certFile is set, presents that client
// certificate.
func ClientTLS(caFile, certFile, keyFile string) (*tls.Config, error) {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s: no certificate", caFile)
	}
	cfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	if certFile != "" {
		c, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("load %s: %w", certFile, err)
		}
		cfg.Certificates = []tls.Certificate{c}
	}
	return cfg, nil
}

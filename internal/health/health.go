// Package health probes kubeseed's endpoints and polls until they serve.
package health

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
)

// Check does one GET and returns nil on HTTP 200.
func Check(ctx context.Context, url string, tlsCfg *tls.Config) error {
	_, err := Get(ctx, url, tlsCfg)
	return err
}

// FindLine does one GET and returns the first line of the body, read to
// its end, that starts with prefix: metrics pages exceed what Get keeps.
func FindLine(ctx context.Context, url string, tlsCfg *tls.Config, prefix string) (string, bool, error) {
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsCfg}}
	defer client.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", false, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", false, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", false, fmt.Errorf("%s: HTTP %d", url, resp.StatusCode)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if line := sc.Text(); strings.HasPrefix(line, prefix) {
			return line, true, nil
		}
	}
	return "", false, sc.Err()
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

// StartPoll is how often start-up probes retry: each probe is one local
// request, and every poll saved shortens the start.
const StartPoll = 50 * time.Millisecond

// Wait polls url until it answers 200 or ctx ends.
func Wait(ctx context.Context, url string, tlsCfg *tls.Config) error {
	return WaitFor(ctx, url, tlsCfg, "", func(string) bool { return true })
}

// WaitFor polls url until it answers 200 with a body for which done holds,
// or ctx ends; waitingFor says what done waits for, in errors.
func WaitFor(ctx context.Context, url string, tlsCfg *tls.Config, waitingFor string, done func(body string) bool) error {
	return Poll(ctx, StartPoll, func(ctx context.Context) error {
		body, err := Get(ctx, url, tlsCfg)
		if err == nil && !done(body) {
			err = fmt.Errorf("%s: %s", url, waitingFor)
		}
		return err
	})
}

// Poll calls probe every interval until it returns nil or ctx ends. The
// error then wraps ctx's and ends with probe's last failure; one caused by
// ctx ending mid-probe is not kept, as it says nothing about what failed.
func Poll(ctx context.Context, interval time.Duration, probe func(context.Context) error) error {
	var last error
	err := wait.PollUntilContextCancel(ctx, interval, true, func(ctx context.Context) (bool, error) {
		err := probe(ctx)
		if err != nil && ctx.Err() == nil {
			last = err
		}
		return err == nil, nil
	})
	if err != nil && last != nil {
		return fmt.Errorf("%w (last: %v)", err, last)
	}
	return err
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

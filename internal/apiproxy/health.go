package apiproxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// check probes one apiserver: TCP, a TLS handshake verified against the
// cluster CA (ServerName is the host, so an IP host is matched against the
// certificate's IP SANs), and an anonymous GET /readyz that must answer 200.
// It uses its own connection each time so a pooled one cannot hide a dead
// server.
func (p *Proxy) check(ctx context.Context, addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	// Dial, then handshake and request, each get a dial timeout.
	ctx, cancel := context.WithTimeout(ctx, 2*p.cfg.DialTimeout)
	defer cancel()
	d := net.Dialer{Timeout: p.cfg.DialTimeout}
	raw, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer raw.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = raw.SetDeadline(dl)
	}
	conn := tls.Client(raw, &tls.Config{
		RootCAs:    p.cfg.CA,
		ServerName: host,
		NextProtos: []string{"http/1.1"},
		MinVersion: tls.VersionTLS12,
	})
	if err := conn.HandshakeContext(ctx); err != nil {
		return fmt.Errorf("TLS handshake with %s: %w", addr, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+addr+"/readyz", nil)
	if err != nil {
		return err
	}
	req.Close = true
	req.Header.Set("User-Agent", "kubeseed-apiproxy")
	if err := req.Write(conn); err != nil {
		return fmt.Errorf("GET https://%s/readyz: %w", addr, err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		return fmt.Errorf("GET https://%s/readyz: %w", addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		return fmt.Errorf("GET https://%s/readyz: HTTP %d%s", addr, resp.StatusCode, failedChecks(body))
	}
	return nil
}

// failedChecks shortens a /readyz body to its failing lines ("[-]etcd
// failed: …"), which is what an operator needs in `kubeseed status`.
func failedChecks(body []byte) string {
	var failed []string
	for line := range bytes.Lines(body) {
		if l := strings.TrimSpace(string(line)); strings.HasPrefix(l, "[-]") {
			failed = append(failed, l)
		}
	}
	s := strings.Join(failed, "; ")
	if s == "" {
		s = strings.Join(strings.Fields(string(body)), " ")
	}
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	if s == "" {
		return ""
	}
	return ": " + s
}

// healthLoop checks s now and then every HealthInterval until ctx ends.
func (p *Proxy) healthLoop(ctx context.Context, s *server) {
	t := time.NewTicker(p.cfg.HealthInterval)
	defer t.Stop()
	for {
		err := p.check(ctx, s.addr)
		if ctx.Err() != nil {
			return
		}
		p.report(s, err)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// report records a health result. A failed server's connections are closed
// when another server is usable, so their clients reconnect there
// (k3s#7193); with nowhere better to go they are left alone.
func (p *Proxy) report(s *server, err error) {
	p.mu.Lock()
	if p.servers[s.addr] != s {
		p.mu.Unlock()
		return
	}
	was, first := s.healthy, !s.checked
	s.checked = true
	s.lastCheck = time.Now()
	var toClose []*proxyConn
	if err == nil {
		s.healthy, s.dialFailed, s.lastErr = true, false, nil
		if !was {
			p.log.Info("Apiserver is healthy", "server", s.addr)
		}
	} else {
		s.healthy, s.lastErr = false, err
		if was || first {
			p.log.Info("Apiserver is unhealthy", "server", s.addr, "err", err)
		}
		other := false
		for _, o := range p.servers {
			other = other || (o != s && o.usable())
		}
		if other && len(s.conns) > 0 {
			toClose = s.takeConns()
			p.log.Info("Closing connections to an unhealthy apiserver", "server", s.addr, "connections", len(toClose))
		}
	}
	p.pickCurrentLocked()
	p.notifyLocked()
	p.mu.Unlock()
	closeConns(toClose)
}

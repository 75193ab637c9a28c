package certrenew

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/kubeseed/kubeseed/internal/datadir"
	"github.com/kubeseed/kubeseed/internal/health"
	"github.com/kubeseed/kubeseed/internal/services"
)

// ServedCert is the leaf certificate a TLS service presents on loopback.
func ServedCert(ctx context.Context, l datadir.Layout, s services.Service, port int) (*x509.Certificate, error) {
	certFile, keyFile := "", ""
	if s.ClientCert != "" {
		certFile, keyFile = l.Cert(s.ClientCert), l.Key(s.ClientCert)
	}
	cfg, err := health.ClientTLS(l.Cert(s.TrustCA), certFile, keyFile)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	d := tls.Dialer{Config: cfg}
	conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	certs := conn.(*tls.Conn).ConnectionState().PeerCertificates
	if len(certs) == 0 {
		return nil, fmt.Errorf("%s presented no certificate", s.Name)
	}
	return certs[0], nil
}

// WaitServed waits until every service that served one of the old
// certificates serves its replacement. before and after are keyed by
// certificate name; progress gets a line every few seconds.
func WaitServed(ctx context.Context, l datadir.Layout, before, after map[string]*x509.Certificate, timeout time.Duration, progress func(string)) (time.Duration, error) {
	ports, err := services.Ports(l)
	if err != nil {
		return 0, err
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	type waiting struct {
		svc  services.Service
		name string
	}
	var pending []waiting
	served, err := services.ServedIn(l)
	if err != nil {
		return 0, err
	}
	for _, s := range served {
		if !s.TLS {
			continue
		}
		c, err := ServedCert(ctx, l, s, ports[s.Name])
		if err != nil {
			continue // not serving: nothing to wait for
		}
		for name, o := range before {
			if c.Equal(o) || c.Equal(after[name]) {
				pending = append(pending, waiting{s, name})
			}
		}
	}
	lastNote := time.Now()
	var names []string
	err = wait.PollUntilContextCancel(ctx, 50*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		var still []waiting
		for _, w := range pending {
			c, err := ServedCert(ctx, l, w.svc, ports[w.svc.Name])
			if err != nil || !c.Equal(after[w.name]) {
				still = append(still, w)
			}
		}
		pending = still
		if len(pending) == 0 {
			return true, nil
		}
		names = names[:0]
		for _, w := range pending {
			names = append(names, w.svc.Name+" ("+w.name+".crt)")
		}
		if time.Since(lastNote) > 3*time.Second {
			progress(fmt.Sprintf("still waiting for %s to serve the new certificate (%s)", strings.Join(names, ", "), time.Since(start).Round(time.Second)))
			lastNote = time.Now()
		}
		return false, nil
	})
	if err != nil {
		return time.Since(start), fmt.Errorf("%s still serve the old certificate after %s; the new files are in place and are re-read within a minute, see the kubeseed log", strings.Join(names, ", "), timeout)
	}
	return time.Since(start), nil
}

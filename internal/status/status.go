// Package status reports on a node: whether it runs, each service's
// health, the authorization mode and each certificate's days left.
package status

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/kubeseed/kubeseed/internal/args"
	"github.com/kubeseed/kubeseed/internal/certrenew"
	"github.com/kubeseed/kubeseed/internal/datadir"
	"github.com/kubeseed/kubeseed/internal/defaults"
	"github.com/kubeseed/kubeseed/internal/health"
	"github.com/kubeseed/kubeseed/internal/pki"
	"github.com/kubeseed/kubeseed/internal/services"
)

// Service is one served port's state.
type Service struct {
	Name    string
	Port    int
	Bind    string
	Healthy bool
	Err     error
}

// Cert is one certificate's expiry.
type Cert struct {
	Name     string
	NotAfter time.Time
	DaysLeft int
	Err      error
}

// Report is the whole status.
type Report struct {
	PID           int
	Authorization string
	Services      []Service
	Certs         []Cert
	// Renewal is the running node's certificate renewal state (nil when
	// not running).
	Renewal *certrenew.State
}

// Ready reports whether every service is healthy.
func (r *Report) Ready() bool {
	if r.PID == 0 || len(r.Services) == 0 {
		return false
	}
	for _, s := range r.Services {
		if !s.Healthy {
			return false
		}
	}
	return true
}

// Collect probes the node described by l; pid is the running process (0:
// not running, and services are not probed).
func Collect(ctx context.Context, l datadir.Layout, pid int, now time.Time) (*Report, error) {
	r := &Report{PID: pid}
	if f, err := args.Load(l.Args(defaults.APIServerComponent)); err == nil {
		r.Authorization, _ = f.Get("authorization-mode")
	}
	ports, err := services.Ports(l)
	if err != nil {
		return nil, err
	}
	for _, s := range services.Served() {
		st := Service{Name: s.Name, Port: ports[s.Name], Bind: s.Bind.Address()}
		if pid != 0 {
			st.Err = probe(ctx, l, s, ports[s.Name])
			st.Healthy = st.Err == nil
		}
		r.Services = append(r.Services, st)
	}
	store := pki.Store{Dir: l.CertsDir()}
	for _, spec := range pki.Table {
		if spec.KeyOnly {
			continue
		}
		c := Cert{Name: spec.Name + ".crt"}
		cert, err := pki.LoadCert(store.CertPath(spec.Name))
		if err != nil {
			c.Err = err
		} else {
			c.NotAfter = cert.NotAfter
			c.DaysLeft = int(cert.NotAfter.Sub(now).Hours() / 24)
		}
		r.Certs = append(r.Certs, c)
	}
	if pid != 0 {
		st, err := certrenew.ReadState(l.CertRenewalState())
		if err == nil && st != nil && st.PID == pid {
			r.Renewal = st
		}
	}
	return r, nil
}

func probe(ctx context.Context, l datadir.Layout, s services.Service, port int) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	if s.Plain && s.HealthPath == "" {
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		return conn.Close()
	}
	if s.Plain {
		return health.Check(ctx, fmt.Sprintf("http://%s%s", addr, s.HealthPath), nil)
	}
	certFile, keyFile := "", ""
	if s.ClientCert != "" {
		certFile, keyFile = l.Cert(s.ClientCert), l.Key(s.ClientCert)
	}
	tlsCfg, err := health.ClientTLS(l.Cert(s.TrustCA), certFile, keyFile)
	if err != nil {
		return err
	}
	if s.HealthPath == "" {
		d := tls.Dialer{Config: tlsCfg}
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		return conn.Close()
	}
	return health.Check(ctx, fmt.Sprintf("https://%s%s", addr, s.HealthPath), tlsCfg)
}

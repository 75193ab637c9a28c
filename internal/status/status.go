// Package status reports on a node: whether it runs, each service's
// health, the authorization mode and each certificate's days left.
package status

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/kubeseed/kubeseed/internal/args"
	"github.com/kubeseed/kubeseed/internal/authz"
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
	r := &Report{PID: pid, Authorization: Authorization(l)}
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
	return r, nil
}

// Authorization describes kube-apiserver's authorization as its args file
// and --authorization-config say, e.g. "AlwaysAllow" or "Node,RBAC".
func Authorization(l datadir.Layout) string {
	f, err := args.Load(l.Args(defaults.APIServerComponent))
	if err != nil {
		return "unknown (" + err.Error() + ")"
	}
	path, _, ok, err := f.Lookup("authorization-config", l.Vars())
	if err != nil {
		return "unknown (" + err.Error() + ")"
	}
	if !ok {
		if mode, ok := f.Get("authorization-mode"); ok {
			return mode
		}
		return "AlwaysAllow" // kube-apiserver's default
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return "unknown (" + err.Error() + ")"
	}
	chain, err := authz.Parse(path, data)
	if err != nil {
		return "unknown (" + err.Error() + ")"
	}
	return chain.Effective()
}

func probe(ctx context.Context, l datadir.Layout, s services.Service, port int) error {
	certFile, keyFile := "", ""
	if s.ClientCert != "" {
		certFile, keyFile = l.Cert(s.ClientCert), l.Key(s.ClientCert)
	}
	tlsCfg, err := health.ClientTLS(l.Cert(s.TrustCA), certFile, keyFile)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
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

package node

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"github.com/spf13/pflag"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"

	"github.com/kubeseed/kubeseed/internal/apiproxy"
	"github.com/kubeseed/kubeseed/internal/args"
	"github.com/kubeseed/kubeseed/internal/cluster"
	"github.com/kubeseed/kubeseed/internal/datadir"
	"github.com/kubeseed/kubeseed/internal/defaults"
	"github.com/kubeseed/kubeseed/internal/supervisor"
)

// endpointsInterval is how often a worker re-reads the apiservers' list.
const endpointsInterval = 30 * time.Second

// APIServerProxy runs a worker's load balancer to the cluster's
// apiservers, and keeps its server list current from the kubernetes
// Service's endpoints.
type APIServerProxy struct {
	layout datadir.Layout
	proxy  *apiproxy.Proxy
	run    *supervisor.Runner
}

// NewAPIServerProxy returns the component; it reads args/apiserver-proxy
// and var/cluster.json at Init.
func NewAPIServerProxy(l datadir.Layout) *APIServerProxy {
	return &APIServerProxy{layout: l, run: supervisor.NewRunner(defaults.APIServerProxyComponent, 0)}
}

func (p *APIServerProxy) Name() string         { return defaults.APIServerProxyComponent }
func (p *APIServerProxy) Exited() <-chan error { return p.run.Exited() }

// Init parses the args file and the join record.
func (p *APIServerProxy) Init(ctx context.Context) error {
	f, err := args.Load(p.layout.Args(defaults.APIServerProxyComponent))
	if err != nil {
		return err
	}
	var listen, caFile, stateFile string
	var interval time.Duration
	fs := pflag.NewFlagSet(defaults.APIServerProxyComponent, pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&listen, "listen", "", "loopback host:port to listen on")
	fs.StringVar(&caFile, "ca-file", "", "the cluster CA")
	fs.StringVar(&stateFile, "state-file", "", "where the current server list is kept")
	fs.DurationVar(&interval, "health-interval", 5*time.Second, "how often each apiserver is checked")
	if err := f.Apply(p.layout.Vars(), func(name, value string, _ bool) error {
		if fs.Lookup(name) == nil {
			return errors.New("unknown flag for apiserver-proxy (it takes --listen, --ca-file, --state-file, --health-interval)")
		}
		return fs.Set(name, value)
	}); err != nil {
		return err
	}
	if host, _, err := net.SplitHostPort(listen); err != nil || !net.ParseIP(host).IsLoopback() {
		return fmt.Errorf("%s: --listen=%q: must be a loopback host:port; the proxy serves this node only", f.Path, listen)
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return fmt.Errorf("%s: --ca-file: %w", f.Path, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return fmt.Errorf("%s: --ca-file %s holds no certificate", f.Path, caFile)
	}
	st, err := cluster.Load(p.layout)
	if err != nil {
		return err
	}
	proxy, err := apiproxy.New(apiproxy.Config{Listen: listen, Servers: st.APIServers, CA: pool, StateFile: stateFile, HealthInterval: interval})
	if err != nil {
		return fmt.Errorf("%s: %w", f.Path, err)
	}
	p.proxy = proxy
	return nil
}

// Start serves and follows the apiservers' endpoints.
func (p *APIServerProxy) Start(ctx context.Context) error {
	go p.followEndpoints(p.run.Context(ctx))
	p.run.Start(ctx, p.proxy.Run)
	return nil
}

// followEndpoints feeds the proxy the kubernetes Service's endpoints, read
// through the proxy itself with kube-proxy's credentials (which may list
// EndpointSlices under RBAC too).
func (p *APIServerProxy) followEndpoints(ctx context.Context) {
	log := klog.FromContext(ctx)
	rest, err := clientcmd.BuildConfigFromFlags("", p.layout.Credential("proxy.config"))
	if err != nil {
		log.Error(err, "The apiserver list stays as joined: no kube-proxy kubeconfig")
		return
	}
	kube, err := kubernetes.NewForConfig(rest)
	if err != nil {
		log.Error(err, "The apiserver list stays as joined")
		return
	}
	t := time.NewTicker(endpointsInterval)
	defer t.Stop()
	for {
		reqCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		servers, err := cluster.APIServers(reqCtx, kube)
		cancel()
		if err == nil {
			p.proxy.SetServers(servers)
		} else if ctx.Err() == nil {
			log.V(1).Info("Could not read the apiservers' endpoints; keeping the list", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Ready waits until the proxy has a healthy apiserver.
func (p *APIServerProxy) Ready(ctx context.Context) error { return p.proxy.Ready(ctx) }

// Stop ends the proxy; the kubelet and kube-proxy have stopped.
func (p *APIServerProxy) Stop(ctx context.Context) error { return p.run.Stop(ctx) }

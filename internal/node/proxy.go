package node

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/spf13/pflag"
	utilfeature "k8s.io/apiserver/pkg/util/feature"
	cliflag "k8s.io/component-base/cli/flag"
	proxyapp "k8s.io/kubernetes/cmd/kube-proxy/app"

	"github.com/kubeseed/kubeseed/internal/args"
	"github.com/kubeseed/kubeseed/internal/datadir"
	"github.com/kubeseed/kubeseed/internal/defaults"
	"github.com/kubeseed/kubeseed/internal/health"
	"github.com/kubeseed/kubeseed/internal/services"
	"github.com/kubeseed/kubeseed/internal/supervisor"
)

// KubeProxy runs kube-proxy in-process.
type KubeProxy struct {
	layout datadir.Layout
	opts   *proxyapp.Options
	health string
	run    *supervisor.Runner
}

// NewKubeProxy returns the component; it reads args/kube-proxy at Init.
func NewKubeProxy(l datadir.Layout) *KubeProxy {
	return &KubeProxy{layout: l, run: supervisor.NewRunner(defaults.KubeProxyComponent, 3*time.Second)}
}

func (p *KubeProxy) Name() string { return defaults.KubeProxyComponent }

// ReadyBefore: nothing else waits for kube-proxy's first sync.
func (p *KubeProxy) ReadyBefore() string  { return supervisor.NodeReady }
func (p *KubeProxy) Exited() <-chan error { return p.run.Exited() }

// Init parses and validates args/kube-proxy.
func (p *KubeProxy) Init(ctx context.Context) error {
	o := proxyapp.NewOptions()
	fs := pflag.NewFlagSet(defaults.KubeProxyComponent, pflag.ContinueOnError)
	fs.SetNormalizeFunc(cliflag.WordSepNormalizeFunc)
	o.AddFlags(fs)
	path := p.layout.Args(defaults.KubeProxyComponent)
	if err := args.ApplyPFlags(path, p.layout.Vars(), defaults.KubeProxyComponent, fs, args.RefuseProcessWide(defaults.APIServerComponent)); err != nil {
		return err
	}
	// Complete loads --config, whose featureGates it applies to the
	// process's gates: check them first.
	if o.ConfigFile != "" {
		data, err := os.ReadFile(o.ConfigFile)
		if err != nil {
			return fmt.Errorf("%s: --config: %w", path, err)
		}
		if err := checkProcessWide(o.ConfigFile, data, utilfeature.DefaultMutableFeatureGate); err != nil {
			return err
		}
	}
	if err := o.Complete(fs); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := o.Validate(); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	f, err := args.Load(path)
	if err != nil {
		return err
	}
	addr, ok := f.Get(services.MustLookup("kube-proxy-healthz").Flag)
	if !ok {
		return fmt.Errorf("%s: --healthz-bind-address is not set", path)
	}
	p.opts, p.health = o, "http://"+addr+"/healthz"
	return nil
}

// Start runs kube-proxy until Stop.
func (p *KubeProxy) Start(ctx context.Context) error {
	p.run.Start(ctx, p.opts.Run)
	return nil
}

// Ready waits for kube-proxy's healthz, which answers once its rules are
// synced.
func (p *KubeProxy) Ready(ctx context.Context) error {
	return health.Wait(ctx, p.health, nil)
}

// Stop cancels kube-proxy. Its iptables rules stay until `kubeseed reset`,
// so Services keep working for pods across a restart.
func (p *KubeProxy) Stop(ctx context.Context) error { return p.run.Stop(ctx) }

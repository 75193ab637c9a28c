package agent

import (
	"context"
	"fmt"
	clientv3 "go.etcd.io/etcd/client/v3"
	"net"
	"strconv"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/component-base/version"

	"github.com/kubeseed/kubeseed/internal/args"
	"github.com/kubeseed/kubeseed/internal/cluster"
	"github.com/kubeseed/kubeseed/internal/datadir"
	"github.com/kubeseed/kubeseed/internal/defaults"
	"github.com/kubeseed/kubeseed/internal/health"
	"github.com/kubeseed/kubeseed/internal/jointoken"
	"github.com/kubeseed/kubeseed/internal/netconf"
	"github.com/kubeseed/kubeseed/internal/pki"
	"github.com/kubeseed/kubeseed/internal/services"
	"github.com/kubeseed/kubeseed/internal/supervisor"
)

// Agent runs the cluster agent as a supervised component.
type Agent struct {
	layout datadir.Layout
	opts   *Options
	run    *supervisor.Runner
}

// NewAgent returns the component; it reads args/cluster-agent at Init.
func NewAgent(l datadir.Layout) *Agent {
	return &Agent{layout: l, run: supervisor.NewRunner(Component, 0)}
}

func (a *Agent) Name() string         { return Component }
func (a *Agent) Exited() <-chan error { return a.run.Exited() }

// LoadOptions reads and validates the data dir's args/cluster-agent.
func LoadOptions(l datadir.Layout) (*Options, error) {
	f, err := args.Load(l.Args(Component))
	if err != nil {
		return nil, err
	}
	return ParseArgs(f, l.Vars())
}

// Init parses the args file.
func (a *Agent) Init(ctx context.Context) error {
	o, err := LoadOptions(a.layout)
	if err != nil {
		return err
	}
	a.opts = o
	return nil
}

// OpenTokens connects to etcd, where the join tokens are, as o says. The
// returned func closes the connection.
func OpenTokens(o *Options) (*jointoken.Store, func(), error) {
	cli, err := openEtcd(o)
	if err != nil {
		return nil, nil, err
	}
	return jointoken.NewStore(cli, time.Now), func() { _ = cli.Close() }, nil
}

// etcdOf connects to etcd as the data dir's args/cluster-agent says.
func etcdOf(l datadir.Layout) (*clientv3.Client, *Options, error) {
	o, err := LoadOptions(l)
	if err != nil {
		return nil, nil, err
	}
	cli, err := openEtcd(o)
	return cli, o, err
}

func openEtcd(o *Options) (*clientv3.Client, error) {
	cli, err := cluster.DialEtcd(o.EtcdServers, o.EtcdCAFile, o.EtcdCertFile, o.EtcdKeyFile)
	if err != nil {
		return nil, fmt.Errorf("etcd of args/%s: %w", Component, err)
	}
	return cli, nil
}

// Start connects to etcd and the apiserver and serves.
func (a *Agent) Start(ctx context.Context) error {
	o := a.opts
	ca, err := pki.LoadPair(o.CACertFile, o.CAKeyFile)
	if err != nil {
		return fmt.Errorf("%s: the cluster CA: %w", a.layout.Args(Component), err)
	}
	rest, err := clientcmd.BuildConfigFromFlags("", o.Kubeconfig)
	if err != nil {
		return fmt.Errorf("%s: --kubeconfig: %w", a.layout.Args(Component), err)
	}
	kube, err := kubernetes.NewForConfig(rest)
	if err != nil {
		return err
	}
	netw, err := netconf.Read(a.layout)
	if err != nil {
		return err
	}
	clusterCIDR, err := clusterCIDR(a.layout)
	if err != nil {
		return err
	}
	cli, err := openEtcd(o)
	if err != nil {
		return err
	}
	tokens, closeTokens := jointoken.NewStore(cli, time.Now), func() { _ = cli.Close() }
	peerPort, err := etcdHAPort(a.layout)
	if err != nil {
		closeTokens()
		return err
	}
	membership := &Membership{
		Etcd:     cli,
		PeerURL:  func(ip string) string { return "https://" + net.JoinHostPort(ip, strconv.Itoa(peerPort)) },
		CertsDir: a.layout.CertsDir(),
		AuthorizationMode: func() (string, error) {
			m, err := AuthorizationMode(a.layout)
			return string(m), err
		},
	}
	srv, err := New(Config{
		Membership: membership,
		Addr:       o.Addr(), CertFile: o.TLSCertFile, KeyFile: o.TLSKeyFile,
		CA: ca, Tokens: tokens, Removed: cluster.NewRemovedNodes(cli), Kube: kube,
		Cluster: Cluster{ClusterCIDR: clusterCIDR, ServiceCIDR: netw.ServiceCIDR.String(),
			ClusterDNS: netw.ClusterDNS.String(), ClusterDomain: netw.ClusterDomain},
		Version:            version.Get().GitVersion,
		WorkerCertLifetime: o.WorkerCertLifetime,
		MaxFailures:        o.MaxFailures,
	})
	if err == nil {
		err = srv.Listen()
	}
	if err != nil {
		closeTokens()
		return fmt.Errorf("%s: %w", a.layout.Args(Component), err)
	}
	self, err := NodeName(a.layout)
	if err != nil {
		closeTokens()
		return err
	}
	a.run.Start(ctx, func(ctx context.Context) error {
		defer closeTokens()
		go func() { _ = labelSelf(ctx, kube, self, 2*time.Second) }()
		go membership.ManageLearners(ctx, time.Second)
		go (&authorizationSync{layout: a.layout, settings: cluster.NewSettings(cli), kube: kube}).run(ctx)
		return srv.Serve(ctx)
	})
	return nil
}

// etcdHAPort is the port of this member's etcd-ha peer listener.
func etcdHAPort(l datadir.Layout) (int, error) {
	f, err := args.Load(l.Args(defaults.EtcdComponent))
	if err != nil {
		return 0, err
	}
	return services.MustLookup("etcd-ha").PortIn(f)
}

// clusterCIDR is the controller manager's --cluster-cidr.
func clusterCIDR(l datadir.Layout) (string, error) {
	f, err := args.Load(l.Args(defaults.ControllerManagerComponent))
	if err != nil {
		return "", err
	}
	v, ok := f.Get("cluster-cidr")
	if !ok || v == "" {
		return "", fmt.Errorf("%s: no --cluster-cidr: workers need the cluster's pod range", f.Path)
	}
	return v, nil
}

// Ready waits for the health endpoint.
func (a *Agent) Ready(ctx context.Context) error {
	tlsCfg, err := health.ClientTLS(a.opts.CACertFile, "", "")
	if err != nil {
		return err
	}
	return health.Wait(ctx, a.opts.LocalURL()+HealthPath, tlsCfg)
}

// Stop ends serving.
func (a *Agent) Stop(ctx context.Context) error { return a.run.Stop(ctx) }

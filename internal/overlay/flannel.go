package overlay

import (
	"context"
	"fmt"
	"net"
	"os"
	"sync"

	"github.com/flannel-io/flannel/pkg/backend"
	"github.com/flannel-io/flannel/pkg/backend/vxlan"
	flannelip "github.com/flannel-io/flannel/pkg/ip"
	"github.com/flannel-io/flannel/pkg/subnet"
	"github.com/flannel-io/flannel/pkg/subnet/kube"
	flanneliptables "github.com/flannel-io/flannel/pkg/trafficmngr/iptables"
	"github.com/vishvananda/netlink"
)

const (
	// annotationPrefix is flannel's default, so flannel tooling and the
	// addresses other nodes announce read the same.
	annotationPrefix = "flannel.alpha.coreos.com"
	// nodeNameEnv is where flannel's kube subnet manager takes the node
	// name from; it has no parameter for it.
	nodeNameEnv = "NODE_NAME"
	// iptablesResync is how often (seconds) flannel re-checks its masquerade
	// and forward rules; flanneld's 5 s costs ~2 iptables execs a second.
	iptablesResync = 30
)

// flannelNet is a registered flannel network: the device exists, the lease
// is published, the iptables rules are in place.
type flannelNet struct {
	network backend.Network
	wg      sync.WaitGroup // RegisterNetwork's and CompleteLease's goroutines
}

// startFlannel does what flanneld's main does for the kube subnet manager,
// the vxlan backend and the iptables traffic manager, minus its flags, files
// and os.Exit calls. Everything it starts stops with ctx. A panic in these
// synchronous flannel calls becomes an error (see ensureAnnotated); one in
// flannel's own goroutines cannot be caught.
func (o *Overlay) startFlannel(ctx context.Context) (fn *flannelNet, err error) {
	defer func() {
		if r := recover(); r != nil {
			fn, err = nil, fmt.Errorf("flannel panicked while starting: %v", r)
		}
	}()
	ext, err := externalInterface(o.nodeIP)
	if err != nil {
		return nil, err
	}
	conf, err := renderNetConf(o.cluster, o.cfg.Port, o.cfg.VNI)
	if err != nil {
		return nil, fmt.Errorf("render flannel net-conf: %w", err)
	}
	sm, err := newSubnetManager(ctx, o.cfg.Kubeconfig, o.cfg.NodeName, conf)
	if err != nil {
		return nil, err
	}
	sc, err := sm.GetNetworkConfig(ctx)
	if err != nil {
		return nil, fmt.Errorf("flannel network config: %w", err)
	}
	be, err := vxlan.New(sm, ext)
	if err != nil {
		return nil, fmt.Errorf("flannel vxlan backend: %w", err)
	}
	fn = &flannelNet{}
	// RegisterNetwork creates flannel.<VNI>, publishes the node's lease as
	// annotations and puts <podCIDR network>/32 on the device.
	fn.network, err = be.RegisterNetwork(ctx, &fn.wg, sc)
	if err != nil {
		return nil, fmt.Errorf("flannel register network on %s (%s): %w", ext.IfaceName, o.nodeIP, err)
	}
	lease := fn.network.Lease()
	tm := &flanneliptables.IPTablesManager{}
	if err := tm.Init(ctx); err != nil {
		return nil, fmt.Errorf("flannel iptables: %w", err)
	}
	// prev* equal to the current values: flannel then only flushes and
	// refills its chain, which also drops rules of an earlier podCIDR.
	if err := tm.SetupAndEnsureMasqRules(ctx, sc.Network, lease.Subnet, sc.Network,
		flannelip.IP6Net{}, flannelip.IP6Net{}, flannelip.IP6Net{}, lease, iptablesResync, false); err != nil {
		return nil, fmt.Errorf("flannel masquerade rules: %w", err)
	}
	tm.SetupAndEnsureForwardRules(ctx, sc.Network, flannelip.IP6Net{}, iptablesResync)
	// Without setNodeNetworkUnavailable and ClusterCIDR objects this is a
	// no-op today; called so a flannel upgrade that adds work gets it.
	if err := sm.CompleteLease(ctx, lease, &fn.wg); err != nil {
		return nil, fmt.Errorf("flannel complete lease: %w", err)
	}
	return fn, nil
}

// newSubnetManager builds flannel's kube subnet manager for nodeName. It
// lists and watches Nodes until ctx ends and returns once its cache synced.
func newSubnetManager(ctx context.Context, kubeconfig, nodeName string, conf []byte) (subnet.Manager, error) {
	// flannel reads the net-conf from a path, once, inside NewSubnetManager.
	f, err := os.CreateTemp("", "kubeseed-flannel-net-conf-*.json")
	if err != nil {
		return nil, fmt.Errorf("flannel net-conf: %w", err)
	}
	defer func() { _ = os.Remove(f.Name()) }()
	if _, err := f.Write(conf); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("flannel net-conf %s: %w", f.Name(), err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("flannel net-conf %s: %w", f.Name(), err)
	}
	var sm subnet.Manager
	err = withEnv(nodeNameEnv, nodeName, func() error {
		var err error
		sm, err = kube.NewSubnetManager(ctx, "", kubeconfig, annotationPrefix, f.Name(), false)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("flannel kube subnet manager for node %s: %w", nodeName, err)
	}
	// Name carries the node name flannel took; a concurrent withEnv for
	// another node in this process would show here.
	if got, want := sm.Name(), "Kubernetes Subnet Manager - "+nodeName; got != want {
		return nil, fmt.Errorf("flannel kube subnet manager: %q, want %q (%s changed meanwhile)", got, want, nodeNameEnv)
	}
	return sm, nil
}

// withEnv runs fn with key=value in the process environment, then restores
// the absence of key. A different value already there is an error rather
// than overwritten: something else in the process relies on it.
func withEnv(key, value string, fn func() error) error {
	prev, had := os.LookupEnv(key)
	switch {
	case had && prev == value:
		return fn()
	case had:
		return fmt.Errorf("%s=%q is set in kubeseed's environment, but this node is %q", key, prev, value)
	}
	if err := os.Setenv(key, value); err != nil {
		return fmt.Errorf("set %s: %w", key, err)
	}
	defer func() { _ = os.Unsetenv(key) }()
	return fn()
}

// ifaceAddrs is an interface with its addresses, so the choice is testable.
type ifaceAddrs struct {
	iface net.Interface
	addrs []net.IP
}

// externalInterface is flannel's view of the interface holding nodeIP.
func externalInterface(nodeIP net.IP) (*backend.ExternalInterface, error) {
	ifaces, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("list interfaces: %w", err)
	}
	all := make([]ifaceAddrs, 0, len(ifaces))
	for _, ifc := range ifaces {
		addrs, err := ifc.Addrs()
		if err != nil {
			return nil, fmt.Errorf("addresses of %s: %w", ifc.Name, err)
		}
		ia := ifaceAddrs{iface: ifc}
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok {
				ia.addrs = append(ia.addrs, n.IP)
			}
		}
		all = append(all, ia)
	}
	ifc, err := pickInterface(all, nodeIP)
	if err != nil {
		return nil, err
	}
	return &backend.ExternalInterface{
		Iface:     &ifc,
		IfaceName: ifc.Name,
		IfaceAddr: nodeIP,
		ExtAddr:   nodeIP,
	}, nil
}

// pickInterface returns the interface holding ip. The node's VXLAN must
// leave where its InternalIP lives: that address is what peers admit.
func pickInterface(all []ifaceAddrs, ip net.IP) (net.Interface, error) {
	for _, ia := range all {
		for _, a := range ia.addrs {
			if !a.Equal(ip) {
				continue
			}
			switch {
			case ia.iface.Flags&net.FlagLoopback != 0:
				return net.Interface{}, fmt.Errorf("NodeIP %s is on loopback interface %s", ip, ia.iface.Name)
			case ia.iface.Flags&net.FlagUp == 0:
				return net.Interface{}, fmt.Errorf("NodeIP %s is on interface %s, which is down", ip, ia.iface.Name)
			case ia.iface.MTU <= encapOverhead:
				return net.Interface{}, fmt.Errorf("NodeIP %s is on interface %s with MTU %d, too small for VXLAN", ip, ia.iface.Name, ia.iface.MTU)
			}
			return ia.iface, nil
		}
	}
	return net.Interface{}, fmt.Errorf("NodeIP %s is on no interface of this host", ip)
}

// probeLinkSubscribe opens and closes a netlink link subscription.
// flannel's device watcher calls klog.Fatalf (os.Exit) if its own
// subscription fails; failing here first turns that into an error.
func probeLinkSubscribe() error {
	ch := make(chan netlink.LinkUpdate)
	done := make(chan struct{})
	if err := netlink.LinkSubscribe(ch, done); err != nil {
		return fmt.Errorf("netlink link subscription (flannel's device watcher needs one): %w", err)
	}
	close(done)
	go func() {
		for range ch { // let the receiver goroutine exit
		}
	}()
	return nil
}

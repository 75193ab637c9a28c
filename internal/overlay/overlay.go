package overlay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"time"

	"github.com/vishvananda/netlink"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"
)

const (
	// filterResync re-checks the set and the INPUT rule between Node
	// events, so a flushed firewall heals.
	filterResync = 30 * time.Second
	// stopGrace bounds the wait for flannel's goroutines after ctx ends;
	// its lease watcher can block on a send nobody reads any more.
	stopGrace = 5 * time.Second
)

// Overlay runs one node's share of the pod network.
type Overlay struct {
	cfg     Config
	cluster *net.IPNet
	nodeIP  net.IP

	started atomic.Bool
	stage   atomic.Value  // string: what Run is doing, for Ready's errors
	ready   chan struct{} // closed once flannel and the filter are up
	done    chan struct{} // closed when Run returns
	runErr  error         // Run's result; read only after done
	podCIDR *net.IPNet    // the node's range; read only after ready
	client  kubernetes.Interface
}

// New validates cfg; nothing is touched until Run.
func New(cfg Config) (*Overlay, error) {
	cluster, nodeIP, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	o := &Overlay{
		cfg:     cfg,
		cluster: cluster,
		nodeIP:  nodeIP,
		ready:   make(chan struct{}),
		done:    make(chan struct{}),
	}
	o.stage.Store("not started")
	return o, nil
}

var errRunTwice = errors.New("overlay: Run called twice")

// Run sets the VXLAN filter up, waits for the node's spec.podCIDR, starts
// flannel, and keeps the filter's set equal to the nodes' InternalIPs until
// ctx ends. It returns nil once ctx ended and an error if start-up failed or
// flannel stopped on its own. The device, routes, rules and set stay after
// it returns: pods keep their network across a restart, and the filter
// keeps guarding a device that still decapsulates; CleanUp removes them.
func (o *Overlay) Run(parent context.Context) (err error) {
	if !o.started.CompareAndSwap(false, true) {
		return errRunTwice
	}
	defer func() {
		// parent's, not ctx's: the deferred cancel below has ended ctx.
		if parent.Err() != nil {
			err = nil // asked to stop: not a failure, whatever was cut short
		}
		o.runErr = err
		close(o.done)
	}()
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	log := klog.FromContext(ctx).WithName("overlay")

	cs, err := newClient(o.cfg.Kubeconfig)
	if err != nil {
		return err
	}
	o.client = cs

	// Before touching the host: a misconfigured identity fails clean.
	o.stage.Store("listing Nodes")
	if err := probeNodeList(ctx, cs, o.cfg.NodeName); err != nil {
		return err
	}

	// The filter comes before flannel: the VXLAN socket must never be open
	// to everyone, not even for the first seconds.
	o.stage.Store("setting up the UDP " + fmt.Sprint(o.cfg.Port) + " filter")
	f, err := newFilter(o.cfg.Port)
	if err != nil {
		return fmt.Errorf("overlay filter: %w", err)
	}
	if err := f.ensure(); err != nil {
		return fmt.Errorf("overlay filter: %w", err)
	}

	o.stage.Store("syncing the Node informer")
	factory := informers.NewSharedInformerFactory(cs, 0)
	nodes := factory.Core().V1().Nodes()
	kick := make(chan struct{}, 1)
	poke := func() {
		select {
		case kick <- struct{}{}:
		default:
		}
	}
	if _, err := nodes.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { poke() },
		UpdateFunc: func(old, cur any) { poke() },
		DeleteFunc: func(any) { poke() },
	}); err != nil {
		return fmt.Errorf("overlay node informer: %w", err)
	}
	factory.Start(ctx.Done())
	// cancel first: the informer's and the loop's goroutines end with ctx.
	defer func() { cancel(); factory.Shutdown() }()
	if !cache.WaitForCacheSync(ctx.Done(), nodes.Informer().HasSynced) {
		return fmt.Errorf("overlay node informer did not sync: %w", ctx.Err())
	}

	syncFilter := func() error {
		list, err := nodes.Lister().List(labels.Everything())
		if err != nil {
			return fmt.Errorf("list nodes: %w", err)
		}
		if err := f.ensure(); err != nil {
			return err
		}
		added, removed, err := f.sync(nodeInternalIPv4s(list))
		if len(added)+len(removed) > 0 {
			log.Info("VXLAN peers changed", "set", IPSetName, "added", added, "removed", removed)
		}
		return err
	}
	if err := syncFilter(); err != nil {
		return fmt.Errorf("overlay filter: %w", err)
	}
	filterDone := make(chan struct{})
	go func() {
		defer close(filterDone)
		t := time.NewTicker(filterResync)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-kick:
			case <-t.C:
			}
			if err := syncFilter(); err != nil {
				log.Error(err, "VXLAN filter sync failed; retrying")
			}
		}
	}()
	defer func() { cancel(); <-filterDone }()

	o.stage.Store("waiting for Node " + o.cfg.NodeName + " spec.podCIDR")
	podCIDR, err := waitPodCIDR(ctx, nodes.Lister(), o.cfg.NodeName, o.cluster)
	if err != nil {
		return err
	}
	o.podCIDR = podCIDR
	if o.nodeIP == nil {
		o.stage.Store("waiting for Node " + o.cfg.NodeName + " InternalIP")
		if o.nodeIP, err = waitNodeIP(ctx, nodes.Lister(), o.cfg.NodeName, o.cluster); err != nil {
			return err
		}
	}

	o.stage.Store("starting flannel")
	if err := ensureAnnotated(ctx, cs, nodes.Lister(), o.cfg.NodeName); err != nil {
		return err
	}
	fn, err := o.startFlannel(ctx)
	if err != nil {
		return err
	}
	if err := probeLinkSubscribe(); err != nil {
		return err
	}
	netDone := make(chan struct{})
	go func() {
		defer close(netDone)
		fn.network.Run(ctx)
	}()
	o.stage.Store("running")
	close(o.ready)
	log.Info("overlay up", "device", DeviceName(o.cfg.VNI), "port", o.cfg.Port, "podCIDR", podCIDR, "mtu", fn.network.MTU())

	select {
	case <-ctx.Done():
	case <-netDone:
		return errors.New("overlay: flannel's network stopped on its own")
	}
	for name, ch := range map[string]<-chan struct{}{"network": netDone, "lease": waitChan(fn.wg.Wait)} {
		select {
		case <-ch:
		case <-time.After(stopGrace):
			log.Info("flannel still stopping; leaving it", "part", name)
		}
	}
	return nil
}

// PodCIDR is the node's pod range; valid once Ready returned nil.
func (o *Overlay) PodCIDR() *net.IPNet { return o.podCIDR }

// Ready waits until Run is up, the VXLAN device exists as configured and
// the node's flannel annotations announce it, or ctx ends.
func (o *Overlay) Ready(ctx context.Context) error {
	select {
	case <-o.ready:
	case <-o.done:
		return o.ended()
	case <-ctx.Done():
		return fmt.Errorf("overlay not ready (%s): %w", o.stage.Load(), ctx.Err())
	}
	var last error
	err := wait.PollUntilContextCancel(ctx, time.Second, true, func(ctx context.Context) (bool, error) {
		select {
		case <-o.done:
			return false, o.ended()
		default:
		}
		last = o.check(ctx)
		return last == nil, nil
	})
	if err != nil {
		return fmt.Errorf("overlay not ready: %w (last check: %v)", err, last)
	}
	return nil
}

func (o *Overlay) ended() error {
	if o.runErr != nil {
		return fmt.Errorf("overlay stopped: %w", o.runErr)
	}
	return errors.New("overlay stopped")
}

// check is one readiness probe: device first, then what peers see.
func (o *Overlay) check(ctx context.Context) error {
	name := DeviceName(o.cfg.VNI)
	link, err := netlink.LinkByName(name)
	if err != nil {
		return fmt.Errorf("device %s: %w", name, err)
	}
	if err := checkDevice(link, o.cfg.VNI, o.cfg.Port, o.nodeIP); err != nil {
		return err
	}
	node, err := o.client.CoreV1().Nodes().Get(ctx, o.cfg.NodeName, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("get node %s: %w", o.cfg.NodeName, err)
	}
	if err := checkPublished(node.Annotations, o.nodeIP, o.cfg.VNI, link.Attrs().HardwareAddr); err != nil {
		return fmt.Errorf("node %s: %w", o.cfg.NodeName, err)
	}
	return nil
}

// checkDevice says whether link is the VXLAN device flannel should have made.
func checkDevice(link netlink.Link, vni, port int, nodeIP net.IP) error {
	name := link.Attrs().Name
	vx, ok := link.(*netlink.Vxlan)
	switch {
	case !ok:
		return fmt.Errorf("device %s is %s, not vxlan", name, link.Type())
	case vx.VxlanId != vni:
		return fmt.Errorf("device %s has VNI %d, want %d", name, vx.VxlanId, vni)
	case vx.Port != port:
		return fmt.Errorf("device %s uses UDP port %d, want %d", name, vx.Port, port)
	case !vx.SrcAddr.Equal(nodeIP):
		return fmt.Errorf("device %s sends from %s, want %s", name, vx.SrcAddr, nodeIP)
	case vx.Flags&net.FlagUp == 0:
		return fmt.Errorf("device %s is down", name)
	}
	return nil
}

// checkPublished says whether a node's annotations announce this node's
// VTEP the way peers' flannel reads it.
func checkPublished(ann map[string]string, nodeIP net.IP, vni int, mac net.HardwareAddr) error {
	get := func(k string) string { return ann[annotationPrefix+"/"+k] }
	if v := get("kube-subnet-manager"); v != "true" {
		return fmt.Errorf("annotation %s/kube-subnet-manager is %q, want \"true\"", annotationPrefix, v)
	}
	if v := get("backend-type"); v != "vxlan" {
		return fmt.Errorf("annotation %s/backend-type is %q, want \"vxlan\"", annotationPrefix, v)
	}
	if v := get("public-ip"); v != nodeIP.String() {
		// Peers send from what they announce; the filter admits InternalIPs.
		return fmt.Errorf("annotation %s/public-ip is %q, want the NodeIP %s", annotationPrefix, v, nodeIP)
	}
	var bd struct {
		VNI     int
		VtepMAC string
	}
	raw := get("backend-data")
	if err := json.Unmarshal([]byte(raw), &bd); err != nil {
		return fmt.Errorf("annotation %s/backend-data %q: %w", annotationPrefix, raw, err)
	}
	if bd.VNI != vni {
		return fmt.Errorf("annotation %s/backend-data has VNI %d, want %d", annotationPrefix, bd.VNI, vni)
	}
	if got, err := net.ParseMAC(bd.VtepMAC); err != nil || got.String() != mac.String() {
		return fmt.Errorf("annotation %s/backend-data has VtepMAC %q, the device has %s", annotationPrefix, bd.VtepMAC, mac)
	}
	return nil
}

// errPodCIDRPending: the controller manager has not allocated one yet.
var errPodCIDRPending = errors.New("no IPv4 spec.podCIDR yet")

// waitPodCIDR waits until the node has an IPv4 podCIDR; flannel's own wait
// is 30 s and then fails.
func waitPodCIDR(ctx context.Context, nodes corelisters.NodeLister, name string, cluster *net.IPNet) (*net.IPNet, error) {
	var cidr *net.IPNet
	last := errors.New("node not registered yet")
	err := wait.PollUntilContextCancel(ctx, time.Second, true, func(context.Context) (bool, error) {
		n, err := nodes.Get(name)
		if err != nil {
			last = err
			return false, nil
		}
		cidr, err = nodePodCIDR(n, cluster)
		if errors.Is(err, errPodCIDRPending) {
			last = err
			return false, nil
		}
		return err == nil, err
	})
	if err != nil {
		return nil, fmt.Errorf("node %s podCIDR: %w (last: %v)", name, err, last)
	}
	return cidr, nil
}

// waitNodeIP waits until the node reports an IPv4 InternalIP, the address
// flannel announces and peers admit, and checks it.
func waitNodeIP(ctx context.Context, nodes corelisters.NodeLister, name string, cluster *net.IPNet) (net.IP, error) {
	var ip net.IP
	err := wait.PollUntilContextCancel(ctx, time.Second, true, func(context.Context) (bool, error) {
		n, err := nodes.Get(name)
		if err != nil {
			return false, nil
		}
		ips := nodeInternalIPv4s([]*corev1.Node{n})
		if len(ips) == 0 {
			return false, nil
		}
		ip, err = checkNodeIP(net.ParseIP(ips[0]), cluster)
		return true, err
	})
	if err != nil {
		return nil, fmt.Errorf("node %s InternalIP for the overlay: %w", name, err)
	}
	return ip, nil
}

// nodePodCIDR is n's IPv4 pod range; it must lie inside cluster, or the
// controller manager and the overlay disagree on the cluster CIDR.
func nodePodCIDR(n *corev1.Node, cluster *net.IPNet) (*net.IPNet, error) {
	cidrs := n.Spec.PodCIDRs
	if len(cidrs) == 0 && n.Spec.PodCIDR != "" {
		cidrs = []string{n.Spec.PodCIDR}
	}
	for _, s := range cidrs {
		ip, c, err := net.ParseCIDR(s)
		if err != nil {
			return nil, fmt.Errorf("spec.podCIDRs %q: %w", s, err)
		}
		if ip.To4() == nil {
			continue
		}
		cOnes, _ := c.Mask.Size()
		clOnes, _ := cluster.Mask.Size()
		if !cluster.Contains(c.IP) || cOnes < clOnes {
			return nil, fmt.Errorf("spec.podCIDR %s is outside ClusterCIDR %s (controller manager --cluster-cidr differs?)", c, cluster)
		}
		return c, nil
	}
	return nil, errPodCIDRPending
}

// probeNodeList waits until the identity may list all Nodes, as flannel's
// subnet manager and the filter's informer do. Under Node,RBAC the Node
// authorizer lets a node read only its own Node object, and both would
// otherwise wait silently (flannel for 10 minutes); a Forbidden fails at once.
func probeNodeList(ctx context.Context, cs kubernetes.Interface, name string) error {
	var last error
	err := wait.PollUntilContextCancel(ctx, 2*time.Second, true, func(ctx context.Context) (bool, error) {
		_, last = cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{Limit: 1})
		if apierrors.IsForbidden(last) {
			return false, fmt.Errorf("the overlay lists and watches all Nodes, and system:node:%s may not: "+
				"bind a ClusterRole with get/list/watch on nodes to it (or to group system:nodes): %w", name, last)
		}
		return last == nil, nil
	})
	if err != nil && last != nil && !apierrors.IsForbidden(last) {
		return fmt.Errorf("list nodes: %w (last: %v)", err, last)
	}
	return err
}

// ensureAnnotated gives the node an annotation if it has none: flannel
// v0.28.10's AcquireLease writes into Node.Annotations without making the
// map, and panics on a node that has none. The key is flannel's own, which
// flannel overwrites and peers ignore until kube-subnet-manager is "true".
// It goes through the status subresource, as flannel's own patch does.
func ensureAnnotated(ctx context.Context, cs kubernetes.Interface, nodes corelisters.NodeLister, name string) error {
	n, err := nodes.Get(name)
	if err != nil {
		return fmt.Errorf("node %s: %w", name, err)
	}
	if len(n.Annotations) > 0 {
		return nil
	}
	patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:"vxlan"}}}`, annotationPrefix+"/backend-type")
	if _, err := cs.CoreV1().Nodes().Patch(ctx, name, types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{}, "status"); err != nil {
		return fmt.Errorf("annotate node %s for flannel: %w", name, err)
	}
	return nil
}

func newClient(kubeconfig string) (kubernetes.Interface, error) {
	rc, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("overlay kubeconfig %s: %w", kubeconfig, err)
	}
	rc.UserAgent = "kubeseed-overlay"
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("overlay client from %s: %w", kubeconfig, err)
	}
	return cs, nil
}

// waitChan closes the returned channel once wait returns.
func waitChan(wait func()) <-chan struct{} {
	ch := make(chan struct{})
	go func() {
		wait()
		close(ch)
	}()
	return ch
}

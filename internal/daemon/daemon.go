// Package daemon is `kubeseed start`: it takes the data dir's lock,
// prepares the data dir, checks ports, and supervises the components.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/klog/v2"

	"github.com/kubeseed/kubeseed/internal/agent"
	"github.com/kubeseed/kubeseed/internal/bootstrap"
	"github.com/kubeseed/kubeseed/internal/certrenew"
	"github.com/kubeseed/kubeseed/internal/cluster"
	"github.com/kubeseed/kubeseed/internal/containerruntime"
	"github.com/kubeseed/kubeseed/internal/controlplane"
	"github.com/kubeseed/kubeseed/internal/datadir"
	"github.com/kubeseed/kubeseed/internal/datastore"
	"github.com/kubeseed/kubeseed/internal/defaults"
	"github.com/kubeseed/kubeseed/internal/fsutil"
	"github.com/kubeseed/kubeseed/internal/hostclaim"
	"github.com/kubeseed/kubeseed/internal/hostinfo"
	"github.com/kubeseed/kubeseed/internal/node"
	"github.com/kubeseed/kubeseed/internal/pki"
	"github.com/kubeseed/kubeseed/internal/services"
	"github.com/kubeseed/kubeseed/internal/supervisor"
)

// Options configure a start.
type Options struct {
	Bootstrap bootstrap.Options
	// Progress receives one-line updates for the user.
	Progress func(msg string)
	// Ready is called once every component is ready.
	Ready func()
	// Renewal configures the automatic certificate renewal.
	Renewal certrenew.Options
	// AfterOp is the certificate transactions' fault-injection hook.
	AfterOp func() error
}

// Run starts the node and blocks until ctx ends or a component fails.
func Run(ctx context.Context, l datadir.Layout, o Options) error {
	progress := o.Progress
	if progress == nil {
		progress = func(string) {}
	}
	if err := fsutil.MakeDir(l.Root, 0o755); err != nil {
		return err
	}
	if err := fsutil.EnsureDir(l.RunDir(), 0o755); err != nil {
		return err
	}
	unlock, err := Lock(ctx, l)
	if err != nil {
		return err
	}
	defer unlock()
	claims, err := claimHost(l)
	if err != nil {
		return err
	}
	defer claims.Release()

	o.Renewal = o.Renewal.WithDefaults()
	if err := o.Renewal.Validate(); err != nil {
		return err
	}
	res, err := prepare(ctx, l, o, progress)
	if err != nil {
		return err
	}
	if res.FirstStart {
		progress(fmt.Sprintf("bootstrapped %s: %d certificates, %d files", l.Root, len(res.Issued), len(res.Created)))
	} else if len(res.Issued)+len(res.Created) > 0 {
		progress(fmt.Sprintf("re-created missing files: %v %v", res.Issued, res.Created))
	}
	for _, n := range res.Notices {
		progress(n)
	}
	if err := CheckPorts(l, progress); err != nil {
		return err
	}
	adapt, err := hostinfo.Detect()
	if err != nil {
		return err
	}
	for _, a := range adapt.Describe() {
		progress("host adaptation: " + a)
	}
	if err := prepareHost(ctx); err != nil {
		return err
	}
	st, err := cluster.Load(l)
	if err != nil {
		return err
	}
	var components []supervisor.Component
	if st.Role == cluster.Worker {
		// A worker runs no control plane: its kubelet and kube-proxy reach
		// the cluster's apiservers through the local load balancer.
		components = []supervisor.Component{
			containerruntime.New(l, adapt),
			node.NewAPIServerProxy(l),
			node.NewKubelet(l, adapt),
			node.NewKubeProxy(l),
			node.NewOverlay(l),
			agent.NewJoinCompleter(l),
			agent.NewWorkerRenewer(l, o.Renewal),
		}
	} else {
		components = []supervisor.Component{
			containerruntime.New(l, adapt),
			datastore.NewEtcd(l),
			controlplane.NewAuthWebhook(l),
			controlplane.NewAPIServer(l),
			controlplane.NewControllerManager(l),
			controlplane.NewScheduler(l),
			node.NewKubelet(l, adapt),
			node.NewKubeProxy(l),
			certrenew.New(pki.Manager{
				Layout:  l,
				Vars:    bootstrap.TemplateVars(res.Network),
				Now:     o.Bootstrap.Now,
				HostIPs: hostinfo.HostIPs,
				AfterOp: o.AfterOp,
			}, o.Renewal),
			controlplane.NewClusterObjects(l),
			// After the cluster objects: under RBAC they let the node
			// identity list the Nodes the overlay follows.
			node.NewOverlay(l),
			agent.NewAgent(l),
			// A joined control plane reports its join, once Ready.
			agent.NewJoinCompleter(l),
		}
	}
	sup := supervisor.New(components...)
	sup.Progress = progress
	err = sup.Run(ctx, o.Ready)
	// Volumes the kubelet mounted for pods outlive it; the pods are gone.
	if n, uerr := node.UnmountUnder(l.Root); uerr != nil {
		klog.FromContext(ctx).Error(uerr, "could not unmount everything under the data dir")
	} else if n > 0 {
		progress(fmt.Sprintf("unmounted %d pod volumes", n))
	}
	if _, serr := node.RemoveSockets(l.Root); serr != nil {
		klog.FromContext(ctx).Error(serr, "could not remove stale sockets under the data dir")
	}
	klog.Flush()
	return err
}

// claimHost takes what this node must not share with another live node on
// the host, before anything is written: one pod network per network
// namespace, and its own cgroup root, CNI network and pod log directory.
func claimHost(l datadir.Layout) (*hostclaim.Set, error) {
	names, err := node.HostNamesOf(l)
	if err != nil {
		return nil, err
	}
	claims, err := node.Claims(names)
	if err != nil {
		return nil, err
	}
	set, err := hostclaim.Acquire(hostclaim.Dir, l.Root, claims)
	var inUse *hostclaim.InUseError
	if errors.As(err, &inUse) {
		if inUse.Claim.Kind == node.ClaimPodNetwork {
			return nil, fmt.Errorf("%w: two nodes in one network namespace would share and remove each other's pod bridge and iptables rules. Stop that node (`kubeseed --data-dir %s stop`), or run this one in a network namespace of its own (`ip netns add NAME`, then `nsenter --net=/run/netns/NAME kubeseed start`)", err, inUse.Holder.DataDir)
		}
		return nil, fmt.Errorf("%w; give this node its own in %s (or %s), or stop that node", err, l.Args(defaults.KubeletConfigFile), l.Args(defaults.CNITemplateFile))
	}
	return set, err
}

// prepare finishes or discards a certificate refresh a crash interrupted,
// then bootstraps, holding the certificate lock so a concurrent
// `kubeseed refresh-certs` waits.
func prepare(ctx context.Context, l datadir.Layout, o Options, progress func(string)) (*bootstrap.Result, error) {
	unlock, err := fsutil.Lock(ctx, l.CertsLock())
	if err != nil {
		return nil, err
	}
	defer unlock()
	what, err := fsutil.Txn{Root: l.Root, AfterOp: o.AfterOp}.Recover()
	if err != nil {
		return nil, err
	}
	if what != "" {
		progress("an interrupted certificate refresh was " + what)
	}
	return bootstrap.Prepare(ctx, l, o.Bootstrap)
}

// CheckPorts fails, naming the port and its service, if any served port is
// taken. It runs before anything starts, so a clash changes nothing. It warns
// of ports in the kernel's ephemeral range, which an outgoing connection may
// take at any time.
func CheckPorts(l datadir.Layout, warn func(string)) error {
	ports, err := services.Ports(l)
	if err != nil {
		return err
	}
	served, err := services.ServedIn(l)
	if err != nil {
		return err
	}
	lo, hi, rangeErr := hostinfo.EphemeralRange()
	for _, s := range served {
		if ports[s.Name] == 0 {
			continue // an optional port turned off
		}
		if s.Protocol == "udp" {
			// The VXLAN device's kernel socket outlives the process, so
			// the port is ours after a restart; the overlay names it if the
			// device cannot be made.
			continue
		}
		if p := ports[s.Name]; rangeErr == nil && p >= lo && p <= hi {
			warn(fmt.Sprintf("warning: port %d (%s, --%s in %s) is in the kernel's ephemeral range %d-%d (%s); an outgoing connection can take it and make the service fail to listen. Pick a port outside that range",
				p, s.Name, s.Flag, l.Args(s.Component), lo, hi, hostinfo.EphemeralPortsFile))
		}
		addr := net.JoinHostPort(s.Bind.Address(), strconv.Itoa(ports[s.Name]))
		ln, err := net.Listen(s.Protocol, addr)
		if err != nil {
			return fmt.Errorf("port %d (%s, set by --%s in %s) is not free on %s: %w; stop whatever uses it (`ss -ltnp 'sport = :%d'`) or change the port in that args file",
				ports[s.Name], s.Name, s.Flag, l.Args(s.Component), s.Bind.Address(), err, ports[s.Name])
		}
		ln.Close()
	}
	return nil
}

// Lock takes the data dir's exclusive lock and records our PID in it; the
// lock is released when the process ends, however it ends.
func Lock(ctx context.Context, l datadir.Layout) (unlock func(), err error) {
	f, err := os.OpenFile(l.PIDFile(), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", l.PIDFile(), err)
	}
	// `kubeseed status` probes the lock with a brief shared lock, so a
	// refusal may be a probe in flight: retry for a moment.
	lockCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := fsutil.FlockWait(lockCtx, f); err != nil {
		f.Close()
		if wait.Interrupted(err) {
			pid, _ := RunningPID(l)
			return nil, fmt.Errorf("kubeseed is already running on %s (pid %d); stop it with `kubeseed stop`", l.Root, pid)
		}
		return nil, fmt.Errorf("lock %s: %w", l.PIDFile(), err)
	}
	// A file left by an older kubeseed may be wider; the mode given to
	// OpenFile applies only to a new one.
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return nil, fmt.Errorf("chmod %s: %w", l.PIDFile(), err)
	}
	if err := f.Truncate(0); err != nil {
		f.Close()
		return nil, fmt.Errorf("write %s: %w", l.PIDFile(), err)
	}
	if _, err := f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0); err != nil {
		f.Close()
		return nil, fmt.Errorf("write %s: %w", l.PIDFile(), err)
	}
	return func() {
		_ = f.Truncate(0)
		f.Close()
	}, nil
}

// RunningPID returns the PID of the kubeseed holding the data dir's lock,
// or 0 if none runs.
func RunningPID(l datadir.Layout) (int, error) {
	f, err := os.Open(l.PIDFile())
	if os.IsNotExist(err) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB); err == nil {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		return 0, nil // nobody holds it
	}
	data := make([]byte, 32)
	n, _ := f.Read(data)
	pid, err := strconv.Atoi(strings.TrimSpace(string(data[:n])))
	if err != nil {
		return 0, fmt.Errorf("%s: no PID in a locked file", l.PIDFile())
	}
	return pid, nil
}

package controlplane

import (
	"context"
	"fmt"
	"strings"
	"time"

	utilfeature "k8s.io/apiserver/pkg/util/feature"
	cmfeatures "k8s.io/controller-manager/pkg/features"
	cmapp "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	cmoptions "k8s.io/kubernetes/cmd/kube-controller-manager/app/options"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"
	// Upstream's commands install client-go's leader-election metrics in
	// their main packages; the standby probe reads them.
	_ "k8s.io/component-base/metrics/prometheus/clientgo/leaderelection"

	"github.com/kubeseed/kubeseed/internal/args"
	"github.com/kubeseed/kubeseed/internal/datadir"
	"github.com/kubeseed/kubeseed/internal/defaults"
	"github.com/kubeseed/kubeseed/internal/health"
	"github.com/kubeseed/kubeseed/internal/supervisor"
)

// ControllerManager runs kube-controller-manager in-process.
//
// With leader election, upstream exits the process when the controller
// manager's context ends or its lease is lost, unless the gate
// ControllerManagerReleaseLeaderElectionLockOnExit is on; kubeseed turns
// it on (unless args/kube-apiserver's --feature-gates names it), so Stop
// hands the lease on at once and the next start, here or on another
// control plane, need not wait for it to expire. With the gate off and
// leader election on, the controllers end with the process.
type ControllerManager struct {
	layout datadir.Layout
	opts   *cmoptions.KubeControllerManagerOptions
	run    *supervisor.Runner
	// stoppable: Stop may cancel the controllers without upstream
	// exiting the process.
	stoppable bool
	// standby tells whether another control plane's controller manager
	// leads; nil without leader election.
	standby *standbyProbe
}

// stopGrace bounds the wait for the controllers to end; upstream's own
// bound, --controller-shutdown-timeout, would spend the whole node's.
const stopGrace = 3 * time.Second

// NewControllerManager returns the component; it reads its args file at Init.
func NewControllerManager(l datadir.Layout) *ControllerManager {
	return &ControllerManager{layout: l, run: supervisor.NewRunner(defaults.ControllerManagerComponent, stopGrace)}
}

// releaseLockGate is the upstream gate that makes a cancelled controller
// manager release its lease instead of exiting the process.
var releaseLockGate = cmfeatures.ControllerManagerReleaseLeaderElectionLockOnExit

// enableReleaseLock turns releaseLockGate on unless the user's gates in
// args/kube-apiserver name it, and reports whether it is on.
func (c *ControllerManager) enableReleaseLock() (bool, error) {
	f, err := args.Load(c.layout.Args(defaults.APIServerComponent))
	if err != nil {
		return false, err
	}
	if gates, _ := f.Get("feature-gates"); !strings.Contains(gates, string(releaseLockGate)) {
		if err := utilfeature.DefaultMutableFeatureGate.SetFromMap(map[string]bool{string(releaseLockGate): true}); err != nil {
			return false, fmt.Errorf("enable %s: %w", releaseLockGate, err)
		}
	}
	return utilfeature.DefaultFeatureGate.Enabled(releaseLockGate), nil
}

func (c *ControllerManager) Name() string         { return defaults.ControllerManagerComponent }
func (c *ControllerManager) Exited() <-chan error { return c.run.Exited() }

// Init parses and validates args/kube-controller-manager.
func (c *ControllerManager) Init(ctx context.Context) error {
	s, err := cmoptions.NewKubeControllerManagerOptions()
	if err != nil {
		return err
	}
	fs := flagSet(defaults.ControllerManagerComponent, s.Flags(cmapp.KnownControllers(), cmapp.ControllersDisabledByDefault(), cmapp.ControllerAliases()))
	if err := applyArgs(c.layout, defaults.ControllerManagerComponent, fs); err != nil {
		return err
	}
	if err := s.Validate(cmapp.KnownControllers(), cmapp.ControllersDisabledByDefault(), cmapp.ControllerAliases()); err != nil {
		return fmt.Errorf("%s: %w", c.layout.Args(defaults.ControllerManagerComponent), err)
	}
	c.opts = s
	return nil
}

// Start builds the config (which binds the secure port) and runs.
func (c *ControllerManager) Start(ctx context.Context) error {
	// Not ComponentGlobalsRegistry.Set(), as upstream's command does: the
	// registry is the process's, and the apiserver's Init set it.
	path := c.layout.Args(defaults.ControllerManagerComponent)
	releases, err := c.enableReleaseLock()
	if err != nil {
		return err
	}
	cfg, err := c.opts.Config(c.run.Context(ctx), cmapp.KnownControllers(), cmapp.ControllersDisabledByDefault(), cmapp.ControllerAliases())
	if err != nil {
		_ = c.run.Stop(ctx)
		return fmt.Errorf("%s: %w", path, err)
	}
	cfg.Authentication.Authenticator = rejectAnonymous{cfg.Authentication.Authenticator}
	c.stoppable = !cfg.ComponentConfig.Generic.LeaderElection.LeaderElect || releases
	if le := cfg.ComponentConfig.Generic.LeaderElection; le.LeaderElect {
		c.standby = &standbyProbe{client: cfg.Client, namespace: le.ResourceNamespace, name: le.ResourceName}
	}
	completed := cfg.Complete()
	// With leader election it returns once the lease is lost: the
	// supervisor then stops the node, in order.
	c.run.Start(ctx, func(ctx context.Context) error { return cmapp.Run(ctx, completed) })
	return nil
}

// Ready waits until /healthz lists the controllers' checks, which upstream
// registers once every controller is built. Building the volume controllers
// initialises their volume plugins, and the CSI plugin keeps its node-info
// manager in a package variable: whoever initialises it last wins. The
// kubelet, which runs in this process too and needs its own node name
// there, must therefore start only after the controllers are built.
// Requests use the admin certificate since anonymous ones are refused.
//
// A standby, whose lease another control plane holds, builds no
// controllers until it leads: it is ready once that leader is seen alive.
func (c *ControllerManager) Ready(ctx context.Context) error {
	tlsCfg, err := health.ClientTLS(c.layout.Cert("ca"), c.layout.Cert("admin"), c.layout.Key("admin"))
	if err != nil {
		return err
	}
	base := fmt.Sprintf("https://127.0.0.1:%d", c.opts.SecureServing.BindPort)
	var lastLeaseCheck time.Time
	return health.Poll(ctx, health.StartPoll, func(ctx context.Context) error {
		body, err := health.Get(ctx, base+"/healthz?verbose", tlsCfg)
		if err != nil || controllersBuilt(body) {
			return err
		}
		if c.standby != nil && time.Since(lastLeaseCheck) >= standbyPoll {
			lastLeaseCheck = time.Now()
			gauge := `leader_election_master_status{name="` + c.standby.name + `"}`
			if line, ok, err := health.FindLine(ctx, base+"/metrics", tlsCfg, gauge); err == nil && ok && c.standby.observe(ctx, line == gauge+" 0") {
				klog.FromContext(ctx).Info("Another control plane's controller manager leads; this one stands by", "leader", c.standby.holder)
				return nil
			}
		}
		return fmt.Errorf("%s/healthz: no controller checks yet: the controllers are still being built", base)
	})
}

// standbyPoll is how often Ready reads the lease while it waits.
const standbyPoll = 500 * time.Millisecond

// standbyProbe decides that this controller manager is a standby: its
// leader-election metric says it does not lead, and the lease's holder
// renewed it while Ready watched (a holder that died, this node's own
// before a restart among them, does not renew, and this one then takes
// over and builds its controllers).
type standbyProbe struct {
	client          kubernetes.Interface
	namespace, name string
	holder          string
	renewed         time.Time
}

// observe takes whether the leader-election gauge says this one does not
// lead, and reads the lease.
func (p *standbyProbe) observe(ctx context.Context, notLeading bool) bool {
	if !notLeading {
		return false
	}
	lease, err := p.client.CoordinationV1().Leases(p.namespace).Get(ctx, p.name, metav1.GetOptions{})
	if err != nil || lease.Spec.HolderIdentity == nil || lease.Spec.RenewTime == nil {
		return false
	}
	holder, renewed := *lease.Spec.HolderIdentity, lease.Spec.RenewTime.Time
	if holder != p.holder {
		p.holder, p.renewed = holder, renewed
		return false
	}
	return holder != "" && renewed.After(p.renewed)
}

// controllersBuilt reports whether a verbose healthz body lists a
// controller's check ("[+]namespace-controller ok").
func controllersBuilt(body string) bool {
	for _, line := range strings.Split(body, "\n") {
		if name, ok := strings.CutPrefix(line, "[+]"); ok && strings.HasSuffix(strings.Fields(name + " ")[0], "-controller") {
			return true
		}
	}
	return false
}

// Stop ends the controllers and releases their lease, unless upstream
// would then exit the process (see the type).
func (c *ControllerManager) Stop(ctx context.Context) error {
	if !c.stoppable {
		return nil
	}
	return c.run.Stop(ctx)
}

func adminHealth(ctx context.Context, l datadir.Layout, port int) error {
	tlsCfg, err := health.ClientTLS(l.Cert("ca"), l.Cert("admin"), l.Key("admin"))
	if err != nil {
		return err
	}
	return health.Wait(ctx, fmt.Sprintf("https://127.0.0.1:%d/healthz", port), tlsCfg)
}

package controlplane

import (
	"context"
	"fmt"
	"strings"
	"time"

	cmapp "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	cmoptions "k8s.io/kubernetes/cmd/kube-controller-manager/app/options"

	"github.com/kubeseed/kubeseed/internal/datadir"
	"github.com/kubeseed/kubeseed/internal/defaults"
	"github.com/kubeseed/kubeseed/internal/health"
	"github.com/kubeseed/kubeseed/internal/supervisor"
)

// ControllerManager runs kube-controller-manager in-process.
type ControllerManager struct {
	layout datadir.Layout
	opts   *cmoptions.KubeControllerManagerOptions
	run    *supervisor.Runner
	// leaderElect: upstream then exits the process when the controllers'
	// context ends (and when it loses the lease), so Stop must not cancel
	// it; the controllers end with the process, after etcd has closed.
	leaderElect bool
}

// stopGrace bounds the wait for the controllers to end; upstream's own
// bound, --controller-shutdown-timeout, would spend the whole node's.
const stopGrace = 3 * time.Second

// NewControllerManager returns the component; it reads its args file at Init.
func NewControllerManager(l datadir.Layout) *ControllerManager {
	return &ControllerManager{layout: l, run: supervisor.NewRunner(defaults.ControllerManagerComponent, stopGrace)}
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
	cfg, err := c.opts.Config(c.run.Context(ctx), cmapp.KnownControllers(), cmapp.ControllersDisabledByDefault(), cmapp.ControllerAliases())
	if err != nil {
		_ = c.run.Stop(ctx)
		return fmt.Errorf("%s: %w", path, err)
	}
	cfg.Authentication.Authenticator = rejectAnonymous{cfg.Authentication.Authenticator}
	c.leaderElect = cfg.ComponentConfig.Generic.LeaderElection.LeaderElect
	completed := cfg.Complete()
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
func (c *ControllerManager) Ready(ctx context.Context) error {
	tlsCfg, err := health.ClientTLS(c.layout.Cert("ca"), c.layout.Cert("admin"), c.layout.Key("admin"))
	if err != nil {
		return err
	}
	url := fmt.Sprintf("https://127.0.0.1:%d/healthz?verbose", c.opts.SecureServing.BindPort)
	return health.WaitFor(ctx, url, tlsCfg, "no controller checks yet: the controllers are still being built", controllersBuilt)
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

// Stop ends the controllers, unless leader election is on (see the type).
func (c *ControllerManager) Stop(ctx context.Context) error {
	if c.leaderElect {
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

package controlplane

import (
	"context"
	"errors"
	"fmt"
	"strings"

	cmapp "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	cmoptions "k8s.io/kubernetes/cmd/kube-controller-manager/app/options"

	"github.com/kubeseed/kubeseed/internal/datadir"
	"github.com/kubeseed/kubeseed/internal/defaults"
	"github.com/kubeseed/kubeseed/internal/health"
)

// ControllerManager runs kube-controller-manager in-process.
//
// Upstream exits the process when the controller manager's context ends or
// it loses its leader lease, so it is not stopped on its own: it stops with
// the process, after the apiserver and etcd have shut down cleanly.
type ControllerManager struct {
	layout datadir.Layout
	opts   *cmoptions.KubeControllerManagerOptions
	exited chan error
}

// NewControllerManager returns the component; it reads its args file at Init.
func NewControllerManager(l datadir.Layout) *ControllerManager {
	return &ControllerManager{layout: l, exited: make(chan error, 1)}
}

func (c *ControllerManager) Name() string         { return defaults.ControllerManagerComponent }
func (c *ControllerManager) Exited() <-chan error { return c.exited }

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
	runCtx := context.WithoutCancel(ctx)
	if err := c.opts.ComponentGlobalsRegistry.Set(); err != nil {
		return err
	}
	cfg, err := c.opts.Config(runCtx, cmapp.KnownControllers(), cmapp.ControllersDisabledByDefault(), cmapp.ControllerAliases())
	if err != nil {
		return err
	}
	cfg.Authentication.Authenticator = rejectAnonymous{cfg.Authentication.Authenticator}
	go func() {
		err := cmapp.Run(runCtx, cfg.Complete())
		if err == nil {
			err = errors.New("returned unexpectedly")
		}
		c.exited <- err
	}()
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

// Stop is a no-op: see the type's comment.
func (c *ControllerManager) Stop(ctx context.Context) error { return nil }

func adminHealth(ctx context.Context, l datadir.Layout, port int) error {
	tlsCfg, err := health.ClientTLS(l.Cert("ca"), l.Cert("admin"), l.Key("admin"))
	if err != nil {
		return err
	}
	return health.Wait(ctx, fmt.Sprintf("https://127.0.0.1:%d/healthz", port), tlsCfg)
}

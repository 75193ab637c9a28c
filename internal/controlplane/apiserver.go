package controlplane

import (
	"context"
	"fmt"
	"time"

	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/client-go/rest"
	basecompatibility "k8s.io/component-base/compatibility"
	logsapi "k8s.io/component-base/logs/api/v1"
	apiserverapp "k8s.io/kubernetes/cmd/kube-apiserver/app"
	apiserveroptions "k8s.io/kubernetes/cmd/kube-apiserver/app/options"

	"github.com/kubeseed/kubeseed/internal/datadir"
	"github.com/kubeseed/kubeseed/internal/defaults"
	"github.com/kubeseed/kubeseed/internal/health"
	"github.com/kubeseed/kubeseed/internal/supervisor"
)

// APIServer runs kube-apiserver in-process. Upstream's NewAPIServerCommand
// installs a process-wide signal handler, so we drive its options and Run
// directly and keep signals to ourselves.
type APIServer struct {
	layout    datadir.Layout
	completed apiserveroptions.CompletedOptions
	port      int
	run       *supervisor.Runner
}

// NewAPIServer returns the component; it reads args/kube-apiserver at Init.
func NewAPIServer(l datadir.Layout) *APIServer {
	return &APIServer{layout: l, run: supervisor.NewRunner(defaults.APIServerComponent, drainGrace)}
}

func (a *APIServer) Name() string         { return defaults.APIServerComponent }
func (a *APIServer) Exited() <-chan error { return a.run.Exited() }

// Init parses the args file into upstream's options and validates them.
func (a *APIServer) Init(ctx context.Context) error {
	s := apiserveroptions.NewServerRunOptions()
	fs := flagSet(defaults.APIServerComponent, s.Flags())
	if err := applyArgs(a.layout, defaults.APIServerComponent, fs); err != nil {
		return err
	}
	registry := s.GenericServerRunOptions.ComponentGlobalsRegistry
	if err := registry.Set(); err != nil {
		return fmt.Errorf("%s: %w", a.layout.Args(defaults.APIServerComponent), err)
	}
	// Logging is process-wide and may be applied once: the apiserver's
	// args file owns it (-v, --log-*).
	if err := logsapi.ValidateAndApply(s.Logs, registry.FeatureGateFor(basecompatibility.DefaultKubeComponent)); err != nil {
		return fmt.Errorf("%s: %w", a.layout.Args(defaults.APIServerComponent), err)
	}
	// Loopback clients should not log their own deprecation warnings.
	rest.SetDefaultWarningHandler(rest.NoWarnings{})
	completed, err := s.Complete(ctx)
	if err != nil {
		return fmt.Errorf("%s: %w", a.layout.Args(defaults.APIServerComponent), err)
	}
	if errs := completed.Validate(); len(errs) != 0 {
		return fmt.Errorf("%s: %w", a.layout.Args(defaults.APIServerComponent), utilerrors.NewAggregate(errs))
	}
	a.completed, a.port = completed, s.SecureServing.BindPort
	return nil
}

// Start runs the apiserver until Stop.
func (a *APIServer) Start(ctx context.Context) error {
	a.run.Start(ctx, func(ctx context.Context) error { return apiserverapp.Run(ctx, a.completed) })
	return nil
}

// Ready waits for /readyz, which anonymous clients may read.
func (a *APIServer) Ready(ctx context.Context) error {
	tlsCfg, err := health.ClientTLS(a.layout.Cert("ca"), "", "")
	if err != nil {
		return err
	}
	return health.Wait(ctx, fmt.Sprintf("https://127.0.0.1:%d/readyz", a.port), tlsCfg)
}

// drainGrace bounds the wait for the apiserver's HTTP server to finish
// after cancellation. Upstream waits for every connection to close, and an
// in-process client still winding down (or one never stopped, see
// ControllerManager) can hold a watch open for the full timeout; by the
// time we stop waiting, the listener is closed and short requests have
// drained.
const drainGrace = 3 * time.Second

// Stop shuts the apiserver down: it stops listening, drains short requests
// and then no longer touches etcd.
func (a *APIServer) Stop(ctx context.Context) error { return a.run.Stop(ctx) }

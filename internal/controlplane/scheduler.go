package controlplane

import (
	"context"
	"errors"
	"fmt"
	"io/fs"

	"k8s.io/client-go/tools/leaderelection/resourcelock"
	schedapp "k8s.io/kubernetes/cmd/kube-scheduler/app"
	schedoptions "k8s.io/kubernetes/cmd/kube-scheduler/app/options"

	"github.com/kubeseed/kubeseed/internal/args"
	"github.com/kubeseed/kubeseed/internal/datadir"
	"github.com/kubeseed/kubeseed/internal/defaults"
	"github.com/kubeseed/kubeseed/internal/hostinfo"
)

// Scheduler runs kube-scheduler in-process. With leader election upstream
// exits the process when its context ends, so it stops with the process.
// Its lease identity is the node's name, stable across restarts, so a
// restarted node takes its own unexpired lease back at once instead of
// waiting for it to expire.
type Scheduler struct {
	layout datadir.Layout
	opts   *schedoptions.Options
	exited chan error
}

// NewScheduler returns the component; it reads its args file at Init.
func NewScheduler(l datadir.Layout) *Scheduler {
	return &Scheduler{layout: l, exited: make(chan error, 1)}
}

func (s *Scheduler) Name() string         { return defaults.SchedulerComponent }
func (s *Scheduler) Exited() <-chan error { return s.exited }

// Init parses args/kube-scheduler.
func (s *Scheduler) Init(ctx context.Context) error {
	opts := schedoptions.NewOptions()
	fs := flagSet(defaults.SchedulerComponent, *opts.Flags)
	if err := applyArgs(s.layout, defaults.SchedulerComponent, fs); err != nil {
		return err
	}
	var errs []error
	errs = append(errs, opts.SecureServing.Validate()...)
	errs = append(errs, opts.Authentication.Validate()...)
	errs = append(errs, opts.Authorization.Validate()...)
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%s: %w", s.layout.Args(defaults.SchedulerComponent), err)
	}
	s.opts = opts
	return nil
}

// Start validates, binds the secure port and runs.
func (s *Scheduler) Start(ctx context.Context) error {
	runCtx := context.WithoutCancel(ctx)
	if err := s.opts.ComponentGlobalsRegistry.Set(); err != nil {
		return err
	}
	cc, sched, err := schedapp.Setup(runCtx, s.opts)
	if err != nil {
		return fmt.Errorf("%s: %w", s.layout.Args(defaults.SchedulerComponent), err)
	}
	cc.Authentication.Authenticator = rejectAnonymous{cc.Authentication.Authenticator}
	if cc.LeaderElection != nil {
		lock, ok := cc.LeaderElection.Lock.(*resourcelock.LeaseLock)
		if !ok {
			return fmt.Errorf("%s: kubeseed supports only Lease locks for leader election (--leader-elect-resource-lock=leases)", s.layout.Args(defaults.SchedulerComponent))
		}
		id, err := leaseIdentity(s.layout)
		if err != nil {
			return err
		}
		lock.LockConfig.Identity = id
	}
	go func() {
		err := schedapp.Run(runCtx, cc, sched)
		if err == nil {
			err = errors.New("returned unexpectedly")
		}
		s.exited <- err
	}()
	return nil
}

// Ready waits for /healthz with the admin certificate.
func (s *Scheduler) Ready(ctx context.Context) error {
	return adminHealth(ctx, s.layout, s.opts.SecureServing.BindPort)
}

// Stop is a no-op: see the type's comment.
func (s *Scheduler) Stop(ctx context.Context) error { return nil }

// leaseIdentity names this node in leader election: its kubelet's
// --hostname-override, which is unique in a cluster, else the host name.
func leaseIdentity(l datadir.Layout) (string, error) {
	f, err := args.Load(l.Args(defaults.KubeletComponent))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	if f != nil {
		if name, ok := f.Get("hostname-override"); ok && name != "" {
			return name, nil
		}
	}
	return hostinfo.NodeName()
}

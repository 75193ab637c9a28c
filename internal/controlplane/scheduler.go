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
	"github.com/kubeseed/kubeseed/internal/supervisor"
)

// Scheduler runs kube-scheduler in-process. With leader election upstream
// exits the process when its context ends, so it then stops with the
// process. Its lease identity is the node's name, stable across restarts,
// so a restarted node takes its own unexpired lease back at once instead
// of waiting for it to expire.
type Scheduler struct {
	layout datadir.Layout
	opts   *schedoptions.Options
	run    *supervisor.Runner
	// leaderElect: as for the controller manager, upstream then exits the
	// process when the scheduler's context ends, so Stop must not cancel it.
	leaderElect bool
}

// NewScheduler returns the component; it reads its args file at Init.
func NewScheduler(l datadir.Layout) *Scheduler {
	return &Scheduler{layout: l, run: supervisor.NewRunner(defaults.SchedulerComponent, stopGrace)}
}

func (s *Scheduler) Name() string         { return defaults.SchedulerComponent }
func (s *Scheduler) Exited() <-chan error { return s.run.Exited() }

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

// Start validates, binds the secure port and runs. The feature gates were
// set by the apiserver's Init, as for the controller manager.
func (s *Scheduler) Start(ctx context.Context) error {
	cc, sched, err := schedapp.Setup(s.run.Context(ctx), s.opts)
	if err != nil {
		_ = s.run.Stop(ctx)
		return fmt.Errorf("%s: %w", s.layout.Args(defaults.SchedulerComponent), err)
	}
	cc.Authentication.Authenticator = rejectAnonymous{cc.Authentication.Authenticator}
	if cc.LeaderElection != nil {
		lock, ok := cc.LeaderElection.Lock.(*resourcelock.LeaseLock)
		if !ok {
			_ = s.run.Stop(ctx)
			return fmt.Errorf("%s: kubeseed supports only Lease locks for leader election (--leader-elect-resource-lock=leases)", s.layout.Args(defaults.SchedulerComponent))
		}
		id, err := leaseIdentity(s.layout)
		if err != nil {
			_ = s.run.Stop(ctx)
			return err
		}
		lock.LockConfig.Identity = id
	}
	s.leaderElect = cc.LeaderElection != nil
	s.run.Start(ctx, func(ctx context.Context) error { return schedapp.Run(ctx, cc, sched) })
	return nil
}

// Ready waits for /healthz with the admin certificate.
func (s *Scheduler) Ready(ctx context.Context) error {
	return adminHealth(ctx, s.layout, s.opts.SecureServing.BindPort)
}

// Stop ends the scheduler, unless leader election is on (see the type).
func (s *Scheduler) Stop(ctx context.Context) error {
	if s.leaderElect {
		return nil
	}
	return s.run.Stop(ctx)
}

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

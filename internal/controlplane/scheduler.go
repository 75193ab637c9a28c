package controlplane

import (
	"context"
	"errors"
	"fmt"

	schedapp "k8s.io/kubernetes/cmd/kube-scheduler/app"
	schedoptions "k8s.io/kubernetes/cmd/kube-scheduler/app/options"

	"github.com/kubeseed/kubeseed/internal/datadir"
	"github.com/kubeseed/kubeseed/internal/defaults"
	"github.com/kubeseed/kubeseed/internal/supervisor"
)

// Scheduler runs kube-scheduler in-process.
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

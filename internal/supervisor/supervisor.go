// Package supervisor runs components in order and stops them in reverse.
package supervisor

import (
	"context"
	"errors"
	"fmt"
	"time"

	"k8s.io/klog/v2"
)

// Component is the lifecycle every supervised part implements.
type Component interface {
	Name() string
	// Init validates configuration; nothing listens yet. Every component
	// is initialised before any starts, so bad input stops the node early.
	Init(ctx context.Context) error
	// Start launches the component and returns without waiting.
	Start(ctx context.Context) error
	// Ready blocks until the component serves, or ctx ends.
	Ready(ctx context.Context) error
	// Stop ends the component; ctx bounds how long it may take.
	Stop(ctx context.Context) error
	// Exited delivers the error of a component that ended on its own.
	Exited() <-chan error
}

// Overlapped is implemented by a component whose readiness the components
// after it need not wait for. The supervisor awaits it just before starting
// the component named by ReadyBefore, or, for "", before reporting the node
// ready; start-up work of independent components then overlaps.
type Overlapped interface {
	ReadyBefore() string
}

// pendingReady is an Overlapped component's readiness, still being awaited.
type pendingReady struct {
	c     Component
	done  chan error
	start time.Time
}

// Supervisor owns an ordered list of components.
type Supervisor struct {
	components  []Component
	StopTimeout time.Duration
	// Progress, if set, is told what the supervisor is waiting for.
	Progress func(msg string)
}

// New returns a supervisor for components, started in the given order.
func New(components ...Component) *Supervisor {
	return &Supervisor{components: components, StopTimeout: 30 * time.Second}
}

// Run initialises and starts every component, calls ready once all are
// ready, then waits until ctx ends or a component exits, and stops the
// started components in reverse order. A nil return means a clean stop
// requested through ctx.
func (s *Supervisor) Run(ctx context.Context, ready func()) error {
	for _, c := range s.components {
		if err := c.Init(ctx); err != nil {
			return fmt.Errorf("%s: %w", c.Name(), err)
		}
	}
	var started []Component
	stopAll := func() error {
		stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.StopTimeout)
		defer cancel()
		var errs []error
		for i := len(started) - 1; i >= 0; i-- {
			c := started[i]
			s.progress("stopping " + c.Name())
			if err := c.Stop(stopCtx); err != nil {
				errs = append(errs, fmt.Errorf("stop %s: %w", c.Name(), err))
			}
		}
		return errors.Join(errs...)
	}

	exited := make(chan error, len(s.components))
	readyCtx, cancelReady := context.WithCancel(ctx)
	defer cancelReady()
	pending := map[string][]pendingReady{} // by the component that needs them
	awaitPending := func(before string) error {
		for _, p := range pending[before] {
			if err := s.await(p, exited); err != nil {
				return err
			}
		}
		delete(pending, before)
		return nil
	}
	for _, c := range s.components {
		if err := awaitPending(c.Name()); err != nil {
			return errors.Join(err, stopAll())
		}
		s.progress("starting " + c.Name())
		if err := c.Start(ctx); err != nil {
			return errors.Join(fmt.Errorf("start %s: %w", c.Name(), err), stopAll())
		}
		started = append(started, c)
		go func(c Component) {
			if err := <-c.Exited(); err != nil {
				exited <- fmt.Errorf("%s exited: %w", c.Name(), err)
			} else {
				exited <- fmt.Errorf("%s exited", c.Name())
			}
		}(c)
		p := pendingReady{c: c, done: make(chan error, 1), start: time.Now()}
		go func() { p.done <- c.Ready(readyCtx) }()
		if o, ok := c.(Overlapped); ok {
			pending[o.ReadyBefore()] = append(pending[o.ReadyBefore()], p)
			continue
		}
		if err := s.await(p, exited); err != nil {
			return errors.Join(err, stopAll())
		}
	}
	for before := range pending {
		if err := awaitPending(before); err != nil {
			return errors.Join(err, stopAll())
		}
	}
	if ready != nil {
		ready()
	}
	select {
	case <-ctx.Done():
		return stopAll()
	case err := <-exited:
		klog.FromContext(ctx).Error(err, "component failed, stopping the node")
		return errors.Join(err, stopAll())
	}
}

// await waits for a started component's readiness, reporting progress, and
// fails early if any component exits meanwhile.
func (s *Supervisor) await(p pendingReady, exited <-chan error) error {
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	for {
		select {
		case err := <-p.done:
			if err != nil {
				return fmt.Errorf("%s not ready: %w", p.c.Name(), err)
			}
			s.progress(fmt.Sprintf("%s ready after %s", p.c.Name(), time.Since(p.start).Round(time.Millisecond)))
			return nil
		case err := <-exited:
			return err
		case <-tick.C:
			s.progress(fmt.Sprintf("still waiting for %s (%s)", p.c.Name(), time.Since(p.start).Round(time.Second)))
		}
	}
}

func (s *Supervisor) progress(msg string) {
	if s.Progress != nil {
		s.Progress(msg)
	}
}

// Package supervisor runs a node's components in order and stops them in
// reverse.
//
// A component's life: every component is initialised (Init) before any
// starts, so bad input stops the node before anything listens. Then each
// is started (Start) and, if it is a Readier, awaited (Ready) before the
// next starts, unless it is Overlapped. Once all are ready the node runs
// until the context ends or an Exiter exits; every started component is
// then stopped (Stop) in reverse order, also when the start failed half way.
package supervisor

import (
	"context"
	"errors"
	"fmt"
	"time"

	"k8s.io/klog/v2"
)

// Component is what every supervised part implements.
type Component interface {
	Name() string
	// Init validates configuration; nothing listens yet.
	Init(ctx context.Context) error
	// Start launches the component and returns without waiting for it.
	Start(ctx context.Context) error
	// Stop ends a started component; ctx bounds how long it may take.
	// It is called once, for started components only.
	Stop(ctx context.Context) error
}

// Readier is a component that serves some time after Start returns.
type Readier interface {
	// Ready blocks until the component serves, or ctx ends.
	Ready(ctx context.Context) error
}

// Exiter is a component that can end on its own. Exited delivers why; the
// supervisor then stops the node.
type Exiter interface {
	Exited() <-chan error
}

// Overlapped is a Readier whose readiness the components after it need not
// wait for. The supervisor awaits it just before starting the component
// named by ReadyBefore, which must come later in the list, or, for
// NodeReady, before reporting the node ready; start-up work of independent
// components then overlaps.
type Overlapped interface {
	Readier
	ReadyBefore() string
}

// NodeReady, returned by ReadyBefore, means only the node as a whole needs
// the component ready. It cannot be a component's name (names have no
// spaces or parentheses).
const NodeReady = "(node ready)"

// pendingReady is a started component's readiness, still being awaited.
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

// checkOrder rejects a list Run cannot honour: two components of one name,
// or a ReadyBefore that names no later component (a typo would otherwise
// quietly wait until the end).
func checkOrder(components []Component) error {
	pos := make(map[string]int, len(components))
	for i, c := range components {
		if _, dup := pos[c.Name()]; dup {
			return fmt.Errorf("component %q is listed twice", c.Name())
		}
		pos[c.Name()] = i
	}
	for i, c := range components {
		o, ok := c.(Overlapped)
		if !ok || o.ReadyBefore() == NodeReady {
			continue
		}
		before := o.ReadyBefore()
		j, found := pos[before]
		switch {
		case !found:
			return fmt.Errorf("%s must be ready before %q, which is not supervised (supervisor.NodeReady defers it to the node's readiness)", c.Name(), before)
		case j <= i:
			return fmt.Errorf("%s must be ready before %s, which does not start after it", c.Name(), before)
		}
	}
	return nil
}

// Run initialises and starts every component, calls ready once all are
// ready, then waits until ctx ends or a component exits, and stops the
// started components in reverse order. A nil return means a clean stop
// requested through ctx.
func (s *Supervisor) Run(ctx context.Context, ready func()) error {
	if err := checkOrder(s.components); err != nil {
		return fmt.Errorf("supervisor: %w", err)
	}
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
		if e, ok := c.(Exiter); ok {
			go func() {
				if err := <-e.Exited(); err != nil {
					exited <- fmt.Errorf("%s exited: %w", c.Name(), err)
				} else {
					exited <- fmt.Errorf("%s exited", c.Name())
				}
			}()
		}
		r, ok := c.(Readier)
		if !ok {
			continue
		}
		p := pendingReady{c: c, done: make(chan error, 1), start: time.Now()}
		go func() { p.done <- r.Ready(readyCtx) }()
		if o, ok := c.(Overlapped); ok {
			pending[o.ReadyBefore()] = append(pending[o.ReadyBefore()], p)
			continue
		}
		if err := s.await(p, exited); err != nil {
			return errors.Join(err, stopAll())
		}
	}
	// checkOrder leaves only NodeReady waiters at this point.
	if err := awaitPending(NodeReady); err != nil {
		return errors.Join(err, stopAll())
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

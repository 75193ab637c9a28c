package supervisor

import (
	"context"
	"errors"
	"fmt"
	"time"

	"k8s.io/klog/v2"
)

// Runner runs a component's long-lived function in a goroutine: the shape
// every in-process upstream component shares. Use it from one goroutine
// (the supervisor's): Context and Start, then Stop.
type Runner struct {
	name   string
	grace  time.Duration
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{} // closed when the function returns; nil until Start
	exited chan error
}

// NewRunner returns a runner for the component called name. A grace of
// zero makes Stop wait until its ctx ends. Otherwise Stop waits at most
// grace and then returns, leaving the function to end with the process:
// upstream servers can wait minutes for long-running requests to close.
func NewRunner(name string, grace time.Duration) *Runner {
	return &Runner{name: name, grace: grace, exited: make(chan error, 1)}
}

// Context is the context the function runs on: it keeps parent's values
// but ends only with Stop, since the supervisor stops components in order
// rather than all at once when the node's context ends. Set-up that must
// end with the function (the kubelet's dependencies) uses it before Start.
func (r *Runner) Context(parent context.Context) context.Context {
	if r.ctx == nil {
		r.ctx, r.cancel = context.WithCancel(context.WithoutCancel(parent))
	}
	return r.ctx
}

// Start runs run on Context(ctx) in a goroutine.
func (r *Runner) Start(ctx context.Context, run func(context.Context) error) {
	runCtx := r.Context(ctx)
	r.done = make(chan struct{})
	go func() {
		defer close(r.done)
		err := run(runCtx)
		if runCtx.Err() != nil {
			return // ended by Stop
		}
		if err == nil {
			err = errors.New("returned unexpectedly")
		}
		r.exited <- err
	}()
}

// Exited delivers the function's error if it returns before Stop: a
// component that ends on its own has failed, even without an error.
func (r *Runner) Exited() <-chan error { return r.exited }

// Stop cancels the function's context and waits for it to return, for at
// most the grace, or until ctx ends. A runner never started only releases
// its context.
func (r *Runner) Stop(ctx context.Context) error {
	if r.cancel == nil {
		return nil
	}
	r.cancel()
	if r.done == nil {
		return nil
	}
	var grace <-chan time.Time
	if r.grace > 0 {
		t := time.NewTimer(r.grace)
		defer t.Stop()
		grace = t.C
	}
	select {
	case <-r.done:
		return nil
	case <-grace:
		klog.FromContext(ctx).Info("Component still stopping; continuing shutdown", "component", r.name, "waited", r.grace)
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%s did not stop in time: %w", r.name, ctx.Err())
	}
}

package supervisor

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestRunnerExit(t *testing.T) {
	for _, tt := range []struct {
		name string
		ret  error
		want string
	}{
		{"error", errors.New("bind: address in use"), "bind: address in use"},
		{"nil is a failure too", nil, "returned unexpectedly"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := NewRunner("x", 0)
			r.Start(context.Background(), func(context.Context) error { return tt.ret })
			select {
			case err := <-r.Exited():
				if err == nil || err.Error() != tt.want {
					t.Fatalf("Exited delivered %v, want %q", err, tt.want)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("no exit delivered")
			}
			if err := r.Stop(context.Background()); err != nil {
				t.Fatalf("Stop after an exit: %v", err)
			}
		})
	}
}

func TestRunnerStop(t *testing.T) {
	// The node's context ends first, as on SIGTERM: the function must keep
	// running until Stop, then its return is not an exit.
	nodeCtx, endNode := context.WithCancel(context.Background())
	r := NewRunner("x", 0)
	started := make(chan struct{})
	r.Start(nodeCtx, func(ctx context.Context) error {
		close(started)
		<-ctx.Done()
		return errors.New("finished without leader elect")
	})
	<-started
	endNode()
	select {
	case err := <-r.Exited():
		t.Fatalf("ended with the node's context: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	if err := r.Stop(context.Background()); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	select {
	case err := <-r.Exited():
		t.Fatalf("a return after Stop was reported as an exit: %v", err)
	default:
	}
}

func TestRunnerStopBounds(t *testing.T) {
	stuck := func(ctx context.Context) error { select {} }
	t.Run("ctx", func(t *testing.T) {
		r := NewRunner("stuck", 0)
		r.Start(context.Background(), stuck)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		err := r.Stop(ctx)
		if err == nil || !strings.Contains(err.Error(), "stuck did not stop in time") {
			t.Fatalf("Stop = %v", err)
		}
	})
	t.Run("grace", func(t *testing.T) {
		r := NewRunner("stuck", 20*time.Millisecond)
		r.Start(context.Background(), stuck)
		if err := r.Stop(context.Background()); err != nil {
			t.Fatalf("Stop after the grace = %v, want nil", err)
		}
	})
}

func TestRunnerStopWithoutStart(t *testing.T) {
	r := NewRunner("x", 0)
	if err := r.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx := r.Context(context.Background())
	if err := r.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if ctx.Err() == nil {
		t.Error("Stop did not release the context of a runner never started")
	}
}

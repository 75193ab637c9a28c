package containerruntime

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kubeseed/kubeseed/internal/datadir"
	"github.com/kubeseed/kubeseed/internal/hostinfo"
)

// A containerd that crashes while the node stops must not be restarted:
// Stop comes during the restart's wait, which used to end in a spawn after
// Stop had returned, leaving a containerd behind.
func TestNoRestartAfterStop(t *testing.T) {
	dir := t.TempDir()
	c := New(datadir.Layout{Root: dir}, hostinfo.Adaptations{})
	c.opts.Address = filepath.Join(dir, "containerd.sock")
	c.restartDelay = 200 * time.Millisecond
	devNull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer devNull.Close()
	c.logOut = devNull
	var spawns atomic.Int32
	var stopReturned, late atomic.Bool
	c.command = func() *exec.Cmd {
		spawns.Add(1)
		if stopReturned.Load() {
			late.Store(true)
		}
		return exec.Command(os.Args[0], "-test.run=^$") // exits at once: a crash
	}
	ctx := context.Background()
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	// Once the exit is recorded, the watcher has decided to restart and
	// waits restartDelay.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		c.mu.Lock()
		n := len(c.restarts)
		c.mu.Unlock()
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the first process never exited")
		}
	}
	if err := c.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	stopReturned.Store(true)
	// Time-boxed negative check: the restart was due within restartDelay.
	time.Sleep(3 * c.restartDelay)
	if late.Load() || spawns.Load() != 1 {
		t.Fatalf("containerd spawned %d times (after Stop returned: %v), want once", spawns.Load(), late.Load())
	}
}

package fsutil

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
)

// Lock takes an exclusive flock on path (created if missing), waiting until
// it is free or ctx ends. The kernel releases it if the process dies.
func Lock(ctx context.Context, path string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	if err := FlockWait(ctx, f); err != nil {
		f.Close()
		if wait.Interrupted(err) {
			return nil, fmt.Errorf("lock %s: another certificate refresh holds it: %w", path, err)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return func() { f.Close() }, nil
}

// FlockWait takes an exclusive flock on f, retrying while another holds it
// until ctx ends; wait.Interrupted reports that case.
func FlockWait(ctx context.Context, f *os.File) error {
	return wait.PollUntilContextCancel(ctx, 50*time.Millisecond, true, func(context.Context) (bool, error) {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return false, nil
		}
		return err == nil, err
	})
}

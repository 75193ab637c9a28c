package fsutil

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestLockWaitsForTheHolder(t *testing.T) {
	path := filepath.Join(t.TempDir(), "certs.lock")
	holder, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(holder.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	if _, err := Lock(ctx, path); err == nil || !strings.Contains(err.Error(), "another certificate refresh holds it: context deadline exceeded") {
		t.Fatalf("Lock on a held file = %v", err)
	}

	time.AfterFunc(100*time.Millisecond, func() { holder.Close() })
	unlock, err := Lock(t.Context(), path)
	if err != nil {
		t.Fatalf("Lock once the holder let go: %v", err)
	}
	unlock()
}

package daemon

import (
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kubeseed/kubeseed/internal/datadir"
)

// TestLockPIDFileMode checks that run/kubeseed.pid is 0600 whether Lock
// creates it or finds it with a wider mode.
func TestLockPIDFileMode(t *testing.T) {
	cases := []struct {
		name     string
		existing os.FileMode // 0: no file yet
	}{
		{"new file", 0},
		{"existing 0644", 0o644},
		{"existing 0666", 0o666},
		{"existing 0600", 0o600},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			l := datadir.Layout{Root: t.TempDir()}
			if err := os.MkdirAll(l.RunDir(), 0o755); err != nil {
				t.Fatal(err)
			}
			if c.existing != 0 {
				if err := os.WriteFile(l.PIDFile(), []byte("1\n"), c.existing); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(l.PIDFile(), c.existing); err != nil { // past the umask
					t.Fatal(err)
				}
			}
			unlock, err := Lock(t.Context(), l)
			if err != nil {
				t.Fatal(err)
			}
			defer unlock()
			st, err := os.Stat(l.PIDFile())
			if err != nil {
				t.Fatal(err)
			}
			if st.Mode().Perm() != 0o600 {
				t.Errorf("%s is %o, want 600", l.PIDFile(), st.Mode().Perm())
			}
			data, err := os.ReadFile(l.PIDFile())
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.TrimSpace(string(data)); got != strconv.Itoa(os.Getpid()) {
				t.Errorf("%s holds %q, want our pid %d", l.PIDFile(), got, os.Getpid())
			}
		})
	}
}

// A second start finds the lock held. It retries for 2 s in case the
// holder is a status probe, but gives up at once when its context ends.
func TestLockHeld(t *testing.T) {
	l := datadir.Layout{Root: t.TempDir()}
	if err := os.MkdirAll(l.RunDir(), 0o755); err != nil {
		t.Fatal(err)
	}
	unlock, err := Lock(t.Context(), l)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	for _, tt := range []struct {
		name    string
		timeout time.Duration
		within  time.Duration
	}{
		{"retries, then refuses", time.Minute, 5 * time.Second},
		{"ctx ends first", 50 * time.Millisecond, time.Second},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), tt.timeout)
			defer cancel()
			start := time.Now()
			_, err := Lock(ctx, l)
			if err == nil || !strings.Contains(err.Error(), "kubeseed is already running on "+l.Root+" (pid "+strconv.Itoa(os.Getpid())+")") {
				t.Fatalf("second Lock = %v", err)
			}
			if d := time.Since(start); d > tt.within {
				t.Errorf("took %s, want under %s", d, tt.within)
			}
		})
	}
}

package hostclaim

import (
	"errors"
	"os"
	"strings"
	"testing"
)

func TestAcquireIsExclusiveAndAllOrNothing(t *testing.T) {
	dir := t.TempDir()
	a := []Claim{{"cgroup root", "/kubeseed"}, {"CNI network", "kubeseed"}}
	set, err := Acquire(dir, "/data/a", a)
	if err != nil {
		t.Fatal(err)
	}
	h, held, err := HeldBy(dir, a[1])
	if err != nil || !held || h.DataDir != "/data/a" || h.PID != os.Getpid() {
		t.Fatalf("HeldBy = %+v, %v, %v", h, held, err)
	}
	// flock is per open file, so a second Acquire in this process
	// conflicts just as another process would.
	b := []Claim{{"pod log directory", "/var/log/pods"}, {"CNI network", "kubeseed"}}
	_, err = Acquire(dir, "/data/b", b)
	var inUse *InUseError
	if !errors.As(err, &inUse) || inUse.Holder.DataDir != "/data/a" || inUse.Claim != b[1] {
		t.Fatalf("second Acquire: %v", err)
	}
	for _, w := range []string{"CNI network kubeseed", "/data/a", "pid"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q lacks %q", err, w)
		}
	}
	// b got none of its claims, not even the free one.
	if _, held, _ := HeldBy(dir, b[0]); held {
		t.Error("a failed Acquire kept a claim")
	}
	set.Release()
	for _, c := range a {
		if _, held, _ := HeldBy(dir, c); held {
			t.Errorf("%v still held after Release", c)
		}
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("Release left %d claim files", len(left))
	}
	set2, err := Acquire(dir, "/data/b", b)
	if err != nil {
		t.Fatalf("Acquire after Release: %v", err)
	}
	set2.Release()
}

func TestHeldByWithoutFile(t *testing.T) {
	if _, held, err := HeldBy(t.TempDir(), Claim{"x", "y"}); held || err != nil {
		t.Fatalf("HeldBy on no file: %v %v", held, err)
	}
}

func TestNetnsID(t *testing.T) {
	id, err := NetnsID()
	if err != nil || !strings.HasPrefix(id, "net:[") {
		t.Fatalf("NetnsID = %q, %v", id, err)
	}
}

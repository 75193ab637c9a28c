// Package e2e boots real kubeseed nodes (etcd, kube-apiserver,
// controller-manager, scheduler on real sockets) and checks them from the
// outside with curl, openssl-free Go TLS dials and the stock kubectl.
package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

// kubeseedBin is the binary under test, built once per test run.
var kubeseedBin string

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	kubeseedBin = os.Getenv("KUBESEED_BIN")
	if kubeseedBin == "" {
		_, file, _, _ := runtime.Caller(0)
		root := filepath.Join(filepath.Dir(file), "..", "..")
		dir, err := os.MkdirTemp("", "kubeseed-e2e-bin-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		kubeseedBin = filepath.Join(dir, "kubeseed")
		build := exec.Command("make", "-C", root, "build", "BIN="+kubeseedBin)
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "build kubeseed:", err)
			return 1
		}
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "e2e tests need root (they run a real node)")
		return 1
	}
	return m.Run()
}

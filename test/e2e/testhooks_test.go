package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestTestHooksNeedTheFlag checks that a test-hook variable without the
// hidden --test-hooks flag fails the command that would honour it, with a
// clear error, before anything is written. No node is needed.
func TestTestHooksNeedTheFlag(t *testing.T) {
	cases := []struct {
		name string
		env  string
		args []string
	}{
		{"fault hook on refresh-certs", "KUBESEED_FAULT_AFTER_WRITES=1", []string{"refresh-certs", "--cert", "ca.crt"}},
		{"fault hook on start", "KUBESEED_FAULT_AFTER_WRITES=1", []string{"start"}},
		{"clock on refresh-certs --check", "KUBESEED_TEST_NOW=2030-01-01T00:00:00Z", []string{"refresh-certs", "--check"}},
		{"clock on status", "KUBESEED_TEST_NOW=2030-01-01T00:00:00Z", []string{"status"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "data")
			cmd := exec.Command(kubeseedBin, c.args...)
			cmd.Env = append(os.Environ(), "KUBESEED_DATA_DIR="+dir, c.env)
			out, err := cmd.CombinedOutput()
			name, _, _ := strings.Cut(c.env, "=")
			want := name + " is set, but it is a test hook honoured only with --test-hooks"
			if err == nil || !strings.Contains(string(out), want) {
				t.Errorf("kubeseed %s with %s: %v, want an error containing %q\n%s", strings.Join(c.args, " "), c.env, err, want, out)
			}
			if _, err := os.Stat(dir); !os.IsNotExist(err) {
				t.Errorf("the refused command created %s (%v)", dir, err)
			}
		})
	}
}

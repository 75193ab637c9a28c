package procfs

import (
	"os"
	"os/exec"
	"slices"
	"testing"
)

func TestParseParent(t *testing.T) {
	tests := []struct {
		stat string
		ppid int
		ok   bool
	}{
		{"42 (sleep) S 7 42 42 0 -1", 7, true},
		{"42 (a) b) (c) R 9 1", 9, true},
		{"42 (sleep)", 0, false},
		{"garbage", 0, false},
		{"42 (x) S notanumber", 0, false},
	}
	for _, tt := range tests {
		ppid, ok := parseParent(tt.stat)
		if ppid != tt.ppid || ok != tt.ok {
			t.Errorf("parseParent(%q) = %d, %v; want %d, %v", tt.stat, ppid, ok, tt.ppid, tt.ok)
		}
	}
}

func TestDescendantsFindsChild(t *testing.T) {
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Skip("no sleep:", err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	got := Descendants(os.Getpid())
	if got[0] != os.Getpid() || !slices.Contains(got, cmd.Process.Pid) {
		t.Fatalf("Descendants(self) = %v, want self first and child %d", got, cmd.Process.Pid)
	}
	exe, err := Exe(cmd.Process.Pid)
	if err != nil || exe == "" {
		t.Fatalf("Exe(child) = %q, %v", exe, err)
	}
}

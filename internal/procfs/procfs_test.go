package procfs

import (
	"os"
	"os/exec"
	"slices"
	"testing"
	"time"
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

func TestParseCPUTime(t *testing.T) {
	tests := []struct {
		stat string
		cpu  CPU
		ok   bool
	}{
		// utime 150, stime 50, cutime 7, cstime 3 ticks.
		{"42 (kube seed) S 1 42 42 0 -1 4194560 100 0 0 0 150 50 7 3 20 0 12", CPU{Self: 2000 * time.Millisecond, Reaped: 100 * time.Millisecond}, true},
		{"42 (a) b) R 1 42 42 0 -1 0 0 0 0 0 1 1 0 0", CPU{Self: 20 * time.Millisecond}, true},
		{"42 (short) S 1 42", CPU{}, false},
		{"42 (x) S 1 42 42 0 -1 0 0 0 0 0 x 1 0 0", CPU{}, false},
		{"garbage", CPU{}, false},
	}
	for _, tt := range tests {
		cpu, ok := parseCPUTime(tt.stat)
		if cpu != tt.cpu || ok != tt.ok {
			t.Errorf("parseCPUTime(%q) = %v, %v; want %v, %v", tt.stat, cpu, ok, tt.cpu, tt.ok)
		}
	}
}

func TestCPUTimeOfSelf(t *testing.T) {
	// Burn a little CPU so the figure cannot be zero.
	for deadline := time.Now().Add(50 * time.Millisecond); time.Now().Before(deadline); {
	}
	if cpu, ok := CPUTime(os.Getpid()); !ok || cpu.Self <= 0 {
		t.Fatalf("CPUTime(self) = %v, %v; want > 0", cpu, ok)
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

package hostinfo

import (
	"slices"
	"strings"
	"testing"
)

func TestDescribe(t *testing.T) {
	// Each marker must appear on its own line, once, when its adaptation applies.
	const (
		noSystemd = "cgroupfs"
		cgroupV1  = "failCgroupV1=false"
		noSysRes  = "restrict_oom_score_adj=true"
	)
	tests := []struct {
		name string
		a    Adaptations
		want []string // markers, in order
	}{
		{"ideal host", Adaptations{Systemd: true, SysResource: true}, nil},
		{"no systemd", Adaptations{SysResource: true, Systemd: false}, []string{noSystemd}},
		{"cgroup v1", Adaptations{Systemd: true, CgroupV1: true, SysResource: true}, []string{cgroupV1}},
		{"no CAP_SYS_RESOURCE", Adaptations{Systemd: true}, []string{noSysRes}},
		{"everything", Adaptations{CgroupV1: true}, []string{noSystemd, cgroupV1, noSysRes}},
		{"v1 without systemd", Adaptations{CgroupV1: true, SysResource: true}, []string{noSystemd, cgroupV1}},
	}
	markers := []string{noSystemd, cgroupV1, noSysRes}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.a.Describe()
			if len(got) != len(tt.want) {
				t.Fatalf("Describe() = %q, want %d lines", got, len(tt.want))
			}
			for i, line := range got {
				if !strings.Contains(line, tt.want[i]) {
					t.Errorf("line %d %q lacks %q", i, line, tt.want[i])
				}
				for _, m := range markers {
					if m != tt.want[i] && strings.Contains(line, m) {
						t.Errorf("line %d %q also mentions %q", i, line, m)
					}
				}
			}
		})
	}
}

func TestCgroupDriver(t *testing.T) {
	for _, tt := range []struct {
		a    Adaptations
		want string
	}{
		{Adaptations{Systemd: true}, "systemd"},
		{Adaptations{Systemd: true, CgroupV1: true}, "systemd"},
		{Adaptations{}, "cgroupfs"},
		{Adaptations{CgroupV1: true, SysResource: true}, "cgroupfs"},
	} {
		if got := tt.a.CgroupDriver(); got != tt.want {
			t.Errorf("%+v: CgroupDriver() = %q, want %q", tt.a, got, tt.want)
		}
	}
	// The no-systemd line names the driver CgroupDriver returns.
	if d := (Adaptations{SysResource: true}).Describe(); !slices.ContainsFunc(d, func(s string) bool { return strings.Contains(s, "cgroupfs driver") }) {
		t.Errorf("Describe() = %q, want the cgroupfs driver named", d)
	}
}

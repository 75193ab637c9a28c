package hostinfo

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// capSysResource is CAP_SYS_RESOURCE's bit in the capability sets.
const capSysResource = 24

// Adaptations are the host facts the node's configuration adapts to.
type Adaptations struct {
	// Systemd is true when systemd is the init system; without it the
	// kubelet and containerd use the cgroupfs driver.
	Systemd bool
	// CgroupV1 is true on a v1 (or hybrid) cgroup hierarchy, which kubelet
	// 1.37 refuses unless failCgroupV1 is false.
	CgroupV1 bool
	// SysResource is true when we hold CAP_SYS_RESOURCE; without it
	// containerd must not raise oom_score_adj (restrict_oom_score_adj).
	SysResource bool
}

// Detect reads the adaptations from this host.
func Detect() (Adaptations, error) {
	var a Adaptations
	if st, err := os.Stat("/run/systemd/system"); err == nil && st.IsDir() {
		a.Systemd = true
	}
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); os.IsNotExist(err) {
		a.CgroupV1 = true
	}
	caps, err := effectiveCaps()
	if err != nil {
		return a, err
	}
	a.SysResource = caps&(1<<capSysResource) != 0
	return a, nil
}

// CgroupDriver is the driver the kubelet and containerd must agree on.
func (a Adaptations) CgroupDriver() string {
	if a.Systemd {
		return "systemd"
	}
	return "cgroupfs"
}

// Describe lists the adaptations in words, for logs and status.
func (a Adaptations) Describe() []string {
	var out []string
	if !a.Systemd {
		out = append(out, "no systemd: kubelet and containerd use the cgroupfs driver")
	}
	if a.CgroupV1 {
		out = append(out, "cgroup v1: kubelet runs with failCgroupV1=false (cgroup v1 is deprecated upstream; move to a cgroup v2 host when you can)")
	}
	if !a.SysResource {
		out = append(out, "no CAP_SYS_RESOURCE: containerd runs with restrict_oom_score_adj=true")
	}
	return out
}

func effectiveCaps() (uint64, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "CapEff:"); ok {
			return strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		}
	}
	return 0, fmt.Errorf("/proc/self/status: no CapEff line")
}

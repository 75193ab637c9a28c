// Package procfs finds processes through /proc: a node's process tree for
// memory figures and port audits, and leftover shims to kill at stop.
package procfs

import (
	"os"
	"strconv"
	"strings"
	"time"
)

// PIDs lists every process's ID.
func PIDs() []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		if p, err := strconv.Atoi(e.Name()); err == nil {
			pids = append(pids, p)
		}
	}
	return pids
}

// ParentPID reads a process's parent from /proc/PID/stat.
func ParentPID(pid int) (int, bool) {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	return parseParent(string(stat))
}

// statFields are the fields of /proc/PID/stat after the parenthesised
// command name, which may itself hold spaces and parentheses: f[0] is the
// state (field 3 in proc(5)).
func statFields(stat string) []string {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(stat[i+1:])
}

func parseParent(stat string) (int, bool) {
	f := statFields(stat)
	if len(f) < 2 {
		return 0, false
	}
	ppid, err := strconv.Atoi(f[1])
	return ppid, err == nil
}

// clockTick is USER_HZ, the unit of /proc's CPU times; Linux fixes it at
// 100 on every architecture kubeseed runs on.
const clockTick = 10 * time.Millisecond

// CPU is the CPU time a process has used, user and system.
type CPU struct {
	Self   time.Duration // its own threads
	Reaped time.Duration // children it has waited for (iptables, CNI plugins, runc)
}

// Total is Self and Reaped together.
func (c CPU) Total() time.Duration { return c.Self + c.Reaped }

// CPUTime reads a process's CPU times from /proc/PID/stat.
func CPUTime(pid int) (CPU, bool) {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return CPU{}, false
	}
	return parseCPUTime(string(stat))
}

// parseCPUTime reads utime, stime, cutime and cstime (fields 14 to 17).
func parseCPUTime(stat string) (CPU, bool) {
	f := statFields(stat)
	if len(f) < 15 {
		return CPU{}, false
	}
	var ticks [4]int64
	for i, s := range f[11:15] {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return CPU{}, false
		}
		ticks[i] = n
	}
	return CPU{
		Self:   time.Duration(ticks[0]+ticks[1]) * clockTick,
		Reaped: time.Duration(ticks[2]+ticks[3]) * clockTick,
	}, true
}

// Descendants returns pid followed by every process below it.
func Descendants(pid int) []int {
	children := map[int][]int{}
	for _, p := range PIDs() {
		if ppid, ok := ParentPID(p); ok {
			children[ppid] = append(children[ppid], p)
		}
	}
	out := []int{pid}
	for i := 0; i < len(out); i++ {
		out = append(out, children[out[i]]...)
	}
	return out
}

// Exe returns the path of a process's executable, without the " (deleted)"
// the kernel appends once the file is replaced.
func Exe(pid int) (string, error) {
	exe, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/exe")
	return strings.TrimSuffix(exe, " (deleted)"), err
}

// Package procfs finds processes through /proc: a node's process tree for
// memory figures and port audits, and leftover shims to kill at stop.
package procfs

import (
	"os"
	"strconv"
	"strings"
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

// parseParent takes the fields after the parenthesised command name, which
// may itself hold spaces and parentheses: state, then ppid.
func parseParent(stat string) (int, bool) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(stat[i+1:])
	if len(f) < 2 {
		return 0, false
	}
	ppid, err := strconv.Atoi(f[1])
	return ppid, err == nil
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

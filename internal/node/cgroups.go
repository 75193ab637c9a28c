package node

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const cgroupMount = "/sys/fs/cgroup"

// cgroupHierarchies lists the mounted cgroup hierarchies: each v1
// controller's directory, or the single v2 root.
func cgroupHierarchies() ([]string, error) {
	if _, err := os.Stat(filepath.Join(cgroupMount, "cgroup.controllers")); err == nil {
		return []string{cgroupMount}, nil
	}
	entries, err := os.ReadDir(cgroupMount)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", cgroupMount, err)
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() {
			out = append(out, filepath.Join(cgroupMount, e.Name()))
		}
	}
	return out, nil
}

// EnsureCgroupRoot creates the kubelet's cgroupRoot in every hierarchy, as
// the kubelet requires it to exist. On v1 the cpuset copy of the parent's
// CPUs and memory nodes is needed before any task can join.
func EnsureCgroupRoot(root string) error {
	if err := ValidCgroupRoot(root); err != nil {
		return fmt.Errorf("cgroupRoot %w", err)
	}
	hs, err := cgroupHierarchies()
	if err != nil {
		return err
	}
	for _, h := range hs {
		dir := filepath.Join(h, root)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("create cgroup %s: %w", dir, err)
		}
		if filepath.Base(h) == "cpuset" {
			for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
				cur, _ := os.ReadFile(filepath.Join(dir, f))
				if strings.TrimSpace(string(cur)) != "" {
					continue
				}
				parent, err := os.ReadFile(filepath.Join(filepath.Dir(dir), f))
				if err != nil {
					return fmt.Errorf("read %s: %w", filepath.Join(filepath.Dir(dir), f), err)
				}
				if err := os.WriteFile(filepath.Join(dir, f), parent, 0o644); err != nil {
					return fmt.Errorf("write %s: %w", filepath.Join(dir, f), err)
				}
			}
		}
	}
	return nil
}

// RemoveCgroupRoot removes the cgroupRoot tree from every hierarchy,
// deepest first. It fails on cgroups that still hold processes.
func RemoveCgroupRoot(root string) error {
	if err := ValidCgroupRoot(root); err != nil {
		return fmt.Errorf("refusing to remove cgroup root %w", err)
	}
	hs, err := cgroupHierarchies()
	if err != nil {
		return err
	}
	var errs []error
	for _, h := range hs {
		top := filepath.Join(h, root)
		var dirs []string
		_ = filepath.WalkDir(top, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			if err := os.Remove(dirs[i]); err != nil && !os.IsNotExist(err) {
				errs = append(errs, fmt.Errorf("remove cgroup %s: %w", dirs[i], err))
			}
		}
	}
	return errors.Join(errs...)
}

// KillCgroupProcesses SIGKILLs every process in the cgroup root's tree in
// every hierarchy and waits up to wait for the tree to be empty: a node
// that died without stopping its pods (upstream kube-proxy exits the whole
// process when its Node is deleted) leaves their processes running, and a
// cgroup with processes cannot be removed. It returns how many it killed.
func KillCgroupProcesses(root string, wait time.Duration) (int, error) {
	if err := ValidCgroupRoot(root); err != nil {
		return 0, fmt.Errorf("refusing to kill the processes of cgroup root %w", err)
	}
	hs, err := cgroupHierarchies()
	if err != nil {
		return 0, err
	}
	pids := func() map[int]bool {
		out := map[int]bool{}
		for _, h := range hs {
			_ = filepath.WalkDir(filepath.Join(h, root), func(p string, d os.DirEntry, err error) error {
				if err != nil || !d.IsDir() {
					return nil
				}
				data, _ := os.ReadFile(filepath.Join(p, "cgroup.procs"))
				for _, f := range strings.Fields(string(data)) {
					if pid, err := strconv.Atoi(f); err == nil && pid > 0 {
						out[pid] = true
					}
				}
				return nil
			})
		}
		return out
	}
	killed := map[int]bool{}
	for deadline := time.Now().Add(wait); ; time.Sleep(50 * time.Millisecond) {
		left := pids()
		if len(left) == 0 {
			return len(killed), nil
		}
		if time.Now().After(deadline) {
			return len(killed), fmt.Errorf("%d processes are still in cgroup %s after %s", len(left), root, wait)
		}
		for pid := range left {
			if syscall.Kill(pid, syscall.SIGKILL) == nil {
				killed[pid] = true
			}
		}
	}
}

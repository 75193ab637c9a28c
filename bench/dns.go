package main

import (
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/kubeseed/kubeseed/internal/images"
)

// dnsResult is what measureDNS reports.
type dnsResult struct {
	p50, p99 time.Duration
	queries  int
	rssKB    int
}

const benchClientImage = "kubeseed.local/dnsclient:bench"

// dnsQueries is the number of timed lookups.
const dnsQueries = 2000

// measureDNS starts a node, runs test/e2e/dnsclient in a pod to time
// lookups of a Service name through CoreDNS, and samples CoreDNS's RSS once
// it has idled.
func measureDNS(bin string, offset int) (dnsResult, error) {
	n, err := startNode(bin, offset, "kubeseed-bench-dns.log")
	if err != nil {
		return dnsResult{}, err
	}
	defer n.stop()
	archive, err := dnsClientImage(n.dir)
	if err != nil {
		return dnsResult{}, err
	}
	ks := func(args ...string) (string, error) { return n.run("", args...) }
	if _, err := ks("images", "import", archive); err != nil {
		return dnsResult{}, err
	}
	retry := func(args ...string) (string, error) {
		var out string
		var err error
		for deadline := time.Now().Add(3 * time.Minute); time.Now().Before(deadline); time.Sleep(time.Second) {
			if out, err = ks(args...); err == nil {
				return out, nil
			}
		}
		return out, err
	}
	if _, err := retry("kubectl", "run", "dnsclient", "--image="+benchClientImage, "--image-pull-policy=Never", "--restart=Never"); err != nil {
		return dnsResult{}, err
	}
	if _, err := retry("kubectl", "wait", "--for=condition=Ready", "pod/dnsclient", "--timeout=120s"); err != nil {
		return dnsResult{}, err
	}
	if _, err := retry("kubectl", "-n", "kube-system", "rollout", "status", "deployment/coredns", "--timeout=120s"); err != nil {
		return dnsResult{}, err
	}
	// Warm the cache and the connection tracking, then idle before the RSS sample.
	if _, err := retry("kubectl", "exec", "dnsclient", "--", "/bin/dnsclient", "kubernetes.default.svc.cluster.local."); err != nil {
		return dnsResult{}, err
	}
	time.Sleep(30 * time.Second)
	var res dnsResult
	uid, err := ks("kubectl", "-n", "kube-system", "get", "pods", "-l", "k8s-app=kube-dns", "-o", "jsonpath={.items[0].metadata.uid}")
	if err != nil {
		return dnsResult{}, err
	}
	if res.rssKB, err = podProcessRSS(strings.TrimSpace(uid), "coredns"); err != nil {
		return dnsResult{}, err
	}
	out, err := ks("kubectl", "exec", "dnsclient", "--", "/bin/dnsclient", "-bench", strconv.Itoa(dnsQueries), "kubernetes.default.svc.cluster.local.")
	if err != nil {
		return dnsResult{}, err
	}
	m := regexp.MustCompile(`p50_us=(\d+) p99_us=(\d+) n=(\d+)`).FindStringSubmatch(out)
	if m == nil {
		return dnsResult{}, fmt.Errorf("dnsclient -bench printed %q", out)
	}
	p50, _ := strconv.Atoi(m[1])
	p99, _ := strconv.Atoi(m[2])
	res.queries, _ = strconv.Atoi(m[3])
	res.p50, res.p99 = time.Duration(p50)*time.Microsecond, time.Duration(p99)*time.Microsecond
	return res, nil
}

// podProcessRSS finds the process named comm in the pod's cgroup (the
// kubelet's cgroupfs paths hold "pod<uid>") and returns its RSS.
func podProcessRSS(uid, comm string) (int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		c, err := os.ReadFile(filepath.Join("/proc", e.Name(), "comm"))
		if err != nil || strings.TrimSpace(string(c)) != comm {
			continue
		}
		cg, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cgroup"))
		if err != nil || !strings.Contains(string(cg), "pod"+uid) {
			continue
		}
		return rss(pid), nil
	}
	return 0, fmt.Errorf("no %s process in pod %s's cgroup", comm, uid)
}

// dnsClientImage builds test/e2e/dnsclient into an image with busybox's
// sleep as its command.
func dnsClientImage(dir string) (string, error) {
	bin := filepath.Join(dir, "dnsclient")
	build := exec.Command("go", "build", "-ldflags", "-s -w", "-o", bin, "./test/e2e/dnsclient")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build dnsclient: %v\n%s", err, out)
	}
	client, err := os.ReadFile(bin)
	if err != nil {
		return "", err
	}
	busybox, err := os.ReadFile("/bin/busybox")
	if err != nil {
		return "", fmt.Errorf("busybox-static is needed (apt-get install busybox-static): %w", err)
	}
	archive, err := images.BuildOCIArchive(images.Spec{Name: benchClientImage, Files: []images.File{
		{Path: "/bin/dnsclient", Mode: 0o755, Data: client},
		{Path: "/bin/busybox", Mode: 0o755, Data: busybox},
		{Path: "/bin/sleep", Mode: fs.ModeSymlink | 0o777, Linkname: "busybox"},
	}, Cmd: []string{"/bin/sleep", "3600"}})
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, "dnsclient.tar")
	return path, os.WriteFile(path, archive, 0o644)
}

package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kubeseed/kubeseed/internal/datadir"
	ksnode "github.com/kubeseed/kubeseed/internal/node"
)

// netnsNode is a node in a network namespace of its own, reached from the
// host over a veth pair: host side 198.18.<i>.1/24, node side "eth0" with
// 198.18.<i>.2/24 and its default route (198.18.0.0/15 is reserved for
// benchmarking, so nothing real uses it). It runs on the real default ports.
func netnsNode(t *testing.T, i int) *node {
	t.Helper()
	ns, hostIf := fmt.Sprintf("ks-e2e-%d", i), fmt.Sprintf("ksv%d", i)
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	_ = exec.Command("ip", "netns", "del", ns).Run() // a leftover of a killed run
	run("ip", "netns", "add", ns)
	// Registered before the node, so it runs after the node's own cleanup.
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
	in := func(args ...string) { run(append([]string{"ip", "netns", "exec", ns}, args...)...) }
	run("ip", "link", "add", hostIf, "type", "veth", "peer", "name", "eth0", "netns", ns)
	run("ip", "addr", "add", fmt.Sprintf("198.18.%d.1/24", i), "dev", hostIf)
	run("ip", "link", "set", hostIf, "up")
	in("ip", "link", "set", "lo", "up")
	in("ip", "addr", "add", fmt.Sprintf("198.18.%d.2/24", i), "dev", "eth0")
	in("ip", "link", "set", "eth0", "up")
	in("ip", "route", "add", "default", "via", fmt.Sprintf("198.18.%d.1", i))
	n := newNode(t, 0)
	n.netns = ns
	return n
}

// TestNodesSideBySide runs two nodes with pods on one host, one network
// namespace each, and checks that they keep their host state apart:
// resetting one leaves the other's cgroups, CNI state, bridge and pods alone.
func TestNodesSideBySide(t *testing.T) {
	a, b := netnsNode(t, 1), netnsNode(t, 2)
	a.start()
	b.start()
	la, _ := datadir.New(a.dir)
	lb, _ := datadir.New(b.dir)
	na, nb := ksnode.HostNamesOf(la), ksnode.HostNamesOf(lb)
	if na.CgroupRoot == nb.CgroupRoot || na.Network == nb.Network {
		t.Fatalf("two data dirs share host names: %+v %+v", na, nb)
	}
	const pod = `{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "steady"}, "spec": {"terminationGracePeriodSeconds": 0,
"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10", "imagePullPolicy": "Never"}]}}`
	for _, n := range []*node{a, b} {
		n.apply(pod)
	}
	podState := func(n *node) string {
		out, err := n.kubectl("get", "pod", "steady", "-o", "jsonpath={.status.podIP} {.status.containerStatuses[0].containerID} {.status.containerStatuses[0].restartCount}")
		if err != nil {
			t.Fatalf("pod state: %v %s", err, out)
		}
		return out
	}
	for _, n := range []*node{a, b} {
		n.waitFor("pod steady ready", "wait", "--for=condition=Ready", "pod/steady", "--timeout=120s")
		if ip := strings.Fields(podState(n))[0]; !strings.HasPrefix(ip, "10.1.") {
			t.Errorf("pod IP %s is not in 10.1.0.0/16", ip)
		}
	}
	before := podState(b)
	results := func(network string) int {
		m, _ := filepath.Glob(ksnode.CNIResultsDir + "/" + network + "-*")
		return len(m)
	}
	if results(nb.Network) == 0 || !cgroupExists(nb.CgroupRoot) {
		t.Fatalf("node b has no CNI results or cgroup to lose (%s, %s)", nb.Network, nb.CgroupRoot)
	}

	a.stop()
	if out, err := a.kubeseed("reset", "--yes"); err != nil {
		t.Fatalf("reset a: %v\n%s", err, out)
	}
	if cgroupExists(na.CgroupRoot) || results(na.Network) > 0 {
		t.Errorf("reset of a left its cgroup %s or CNI results %s", na.CgroupRoot, na.Network)
	}
	if !cgroupExists(nb.CgroupRoot) || results(nb.Network) == 0 {
		t.Errorf("reset of a removed b's cgroup %s or CNI results %s", nb.CgroupRoot, nb.Network)
	}
	if out, err := b.inNetns("ip", "link", "show", nb.Bridge).CombinedOutput(); err != nil {
		t.Errorf("b's bridge %s is gone: %v %s", nb.Bridge, err, out)
	}
	time.Sleep(2 * time.Second) // let b's kubelet notice anything amiss
	if after := podState(b); after != before {
		t.Errorf("b's pod changed when a was reset: %q before, %q after", before, after)
	}
	b.waitFor("b still Ready", "wait", "--for=condition=Ready", "node", "--all", "--timeout=30s")
}

func cgroupExists(root string) bool {
	_, err := os.Stat("/sys/fs/cgroup/memory" + root)
	if err != nil {
		_, err = os.Stat("/sys/fs/cgroup" + root + "/cgroup.procs")
	}
	return err == nil
}

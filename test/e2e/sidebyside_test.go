package e2e

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kubeseed/kubeseed/internal/datadir"
	ksnode "github.com/kubeseed/kubeseed/internal/node"
)

// TestNodesSideBySide runs two nodes with pods on one host, one network
// namespace each, and checks that they keep their host state apart:
// resetting one leaves the other's cgroups, CNI state, bridge and pods alone.
func TestNodesSideBySide(t *testing.T) {
	a, b := newNode(t), newNode(t)
	a.start()
	b.start()
	la, _ := datadir.New(a.dir)
	lb, _ := datadir.New(b.dir)
	na, err := ksnode.HostNamesOf(la)
	if err != nil {
		t.Fatal(err)
	}
	nb, err := ksnode.HostNamesOf(lb)
	if err != nil {
		t.Fatal(err)
	}
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
		// The pod's IP is in the node's own range, which the controller
		// manager allocated and containerd rendered the CNI config with.
		cidr, err := n.kubectl("get", "node", "-o", "jsonpath={.items[0].spec.podCIDR}")
		if err != nil {
			t.Fatalf("node podCIDR: %v %s", err, cidr)
		}
		_, ipnet, err := net.ParseCIDR(strings.TrimSpace(cidr))
		if err != nil || !strings.HasSuffix(ipnet.String(), "/24") {
			t.Fatalf("node podCIDR %q is not a /24: %v", cidr, err)
		}
		if ip := strings.Fields(podState(n))[0]; !ipnet.Contains(net.ParseIP(ip)) {
			t.Errorf("pod IP %s is not in the node's range %s", ip, ipnet)
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
	// b still makes pods (its bridge, CNI network and cgroups work), and
	// the one it had is as it was.
	b.apply(strings.Replace(pod, `"steady"`, `"after"`, 1))
	b.waitFor("b makes a pod after a's reset", "wait", "--for=condition=Ready", "pod/after", "--timeout=120s")
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

package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kubeseed/kubeseed/internal/datadir"
	"github.com/kubeseed/kubeseed/internal/hostclaim"
	ksnode "github.com/kubeseed/kubeseed/internal/node"
)

// hostNode is the node that owns the host's network namespace: the one the
// user runs (hack/setup.sh, then hack/test.sh, as the README says), or else
// one this test starts and removes.
func hostNode(t *testing.T) *node {
	t.Helper()
	netns, err := hostclaim.NetnsID()
	if err != nil {
		t.Fatal(err)
	}
	h, held, err := hostclaim.HeldBy(hostclaim.Dir, hostclaim.Claim{Kind: ksnode.ClaimPodNetwork, Key: netns})
	if err != nil {
		t.Fatal(err)
	}
	if held {
		t.Logf("checking the node the user runs on the host: %s (pid %d)", h.DataDir, h.PID)
		// Not ours: no cleanup may stop or reset it.
		return &node{t: t, dir: h.DataDir, log: filepath.Join(t.TempDir(), "none.log"), cache: t.TempDir()}
	}
	n := newHostNode(t, freeOffset(t))
	n.start()
	return n
}

// coreDNSState names the CoreDNS pods with their readiness and restarts.
func (n *node) coreDNSState() string {
	n.t.Helper()
	n.waitFor("CoreDNS Ready", "-n", "kube-system", "wait", "--for=condition=Ready", "pod", "-l", "k8s-app=kube-dns", "--timeout=120s")
	out, err := n.kubectl("-n", "kube-system", "get", "pods", "-l", "k8s-app=kube-dns", "-o",
		`jsonpath={range .items[*]}{.metadata.name} ready={.status.containerStatuses[0].ready} restarts={.status.containerStatuses[0].restartCount}{"\n"}{end}`)
	if err != nil || !strings.Contains(out, "ready=true") {
		n.t.Fatalf("CoreDNS pods: %v\n%s", err, out)
	}
	return out
}

// TestHostNodeIsNotDisturbed is the README's order of commands: a node runs
// on the host, then another node's whole life (start, a pod, stop, reset)
// goes by beside it, and a start and a reset in the host's network
// namespace are tried against it. The host node ends as it began: healthy,
// its CoreDNS Ready with no restarts, its bridge and pod logs in place.
func TestHostNodeIsNotDisturbed(t *testing.T) {
	host := hostNode(t)
	hl, err := datadir.New(host.dir)
	if err != nil {
		t.Fatal(err)
	}
	names, err := ksnode.HostNamesOf(hl)
	if err != nil {
		t.Fatal(err)
	}
	dnsBefore := host.coreDNSState()
	logsBefore, _ := filepath.Glob(filepath.Join(names.PodLogsDir, "kube-system_coredns-*"))
	if len(logsBefore) == 0 {
		t.Fatalf("no CoreDNS log directory in the host node's %s", names.PodLogsDir)
	}
	pid := strconv.Itoa(mustPID(t, host))

	t.Run("a second node in the host's network namespace is refused", func(t *testing.T) {
		second := newHostNode(t, freeOffset(t))
		second.startNoWait()
		log, err := second.waitExit(60 * time.Second)
		if err == nil {
			t.Fatal("a second node started in the host's network namespace")
		}
		for _, w := range []string{"pod network of network namespace", host.dir, "pid " + pid, "network namespace of its own"} {
			if !strings.Contains(log, w) {
				t.Errorf("the refusal lacks %q:\n%s", w, log)
			}
		}
		if ok, _ := filepath.Glob(filepath.Join(second.dir, "certs")); len(ok) > 0 {
			t.Error("the refused start bootstrapped its data dir")
		}
	})

	t.Run("another node's whole life in its own namespace", func(t *testing.T) {
		other := newNode(t)
		other.start()
		other.apply(`{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "visitor"}, "spec": {"terminationGracePeriodSeconds": 0,
"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10", "imagePullPolicy": "Never"}]}}`)
		other.waitFor("pod visitor ready", "wait", "--for=condition=Ready", "pod/visitor", "--timeout=120s")
		ol, _ := datadir.New(other.dir)
		on, err := ksnode.HostNamesOf(ol)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(on.PodLogsDir, other.dir+"/") {
			t.Errorf("the node's pod logs are outside its data dir: %s", on.PodLogsDir)
		}
		if m, _ := filepath.Glob(filepath.Join(on.PodLogsDir, "default_visitor_*")); len(m) != 1 {
			t.Errorf("no log directory for pod visitor in %s", on.PodLogsDir)
		}
		other.stop()

		// Its reset run from the host's namespace, where the host node
		// owns the pod network: the bridge and iptables rules stay.
		reset := exec.Command(kubeseedBin, "--data-dir", other.dir, "reset", "--yes")
		reset.Env = other.env()
		out, err := reset.CombinedOutput()
		if err != nil {
			t.Fatalf("reset from the host namespace: %v\n%s", err, out)
		}
		if !strings.Contains(string(out), "left alone: the pod network of network namespace") || !strings.Contains(string(out), host.dir) {
			t.Errorf("reset did not say it left the host node's pod network alone:\n%s", out)
		}
		if _, err := os.Stat(other.dir); !os.IsNotExist(err) {
			t.Errorf("reset kept the data dir: %v", err)
		}
	})

	t.Run("the host node is as it was", func(t *testing.T) {
		if out, err := host.kubeseed("status", "--wait-ready", "--timeout", "30s"); err != nil {
			t.Errorf("host node status: %v\n%s", err, out)
		}
		if out, err := exec.Command("ip", "link", "show", names.Bridge).CombinedOutput(); err != nil {
			t.Errorf("the host node's bridge %s is gone: %v %s", names.Bridge, err, out)
		}
		if out, err := exec.Command("iptables", "-t", "nat", "-S", "KUBE-SERVICES").CombinedOutput(); err != nil {
			t.Errorf("the host node's kube-proxy rules are gone: %v %s", err, out)
		}
		for _, d := range logsBefore {
			if _, err := os.Stat(d); err != nil {
				t.Errorf("a pod log directory of the host node is gone: %v", err)
			}
		}
		// CoreDNS answers over the pod network it depends on: a lost bridge
		// shows as failing probes, then restarts.
		if after := host.coreDNSState(); after != dnsBefore {
			t.Errorf("CoreDNS changed:\nbefore %s\nafter  %s", dnsBefore, after)
		}
	})
}

func mustPID(t *testing.T, n *node) int {
	t.Helper()
	l, err := datadir.New(n.dir)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(l.PIDFile())
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		t.Fatalf("%s: %v", l.PIDFile(), err)
	}
	return pid
}

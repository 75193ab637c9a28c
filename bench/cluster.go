package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// The cluster benchmark's segment: a bridge on the host and each node's
// namespace a port of it, so nodes reach each other directly (the host does
// not forward). 198.19.251.0/24 is past the single-node namespaces' range.
const (
	lanBridge  = "kb-lan0"
	lanGateway = "198.19.251.1"
	lanPrefix  = "198.19.251."
)

// clusterResult is what measureCluster reports.
type clusterResult struct {
	joins                  []time.Duration
	workerRSSKB, workerPss int
	same, cross            netResult
}

// netResult is one pod-to-pod path: TCP round trips and bulk rate.
type netResult struct {
	p50, p99 time.Duration
	mbit     float64
}

// measureCluster starts a control plane, joins `runs` workers one after the
// other (each timed from `kubeseed join` to its Node Ready, then removed
// but the last), samples the idle worker's memory, and times TCP between
// pods on one node and across the overlay.
func measureCluster(bin string, runs int) (clusterResult, error) {
	removeLAN, err := newLAN()
	if err != nil {
		return clusterResult{}, err
	}
	defer removeLAN()
	lanNode := func(i int, logName string, args ...string) (*benchNode, error) {
		return lanNodeOf(bin, i, logName, args...)
	}
	cp, err := lanNode(0, "kubeseed-bench-cp.log", "start")
	if err != nil {
		return clusterResult{}, err
	}
	defer cp.stop()
	if _, err := cp.run("", "status", "--wait-ready", "--timeout", "3m"); err != nil {
		return clusterResult{}, fmt.Errorf("control plane not ready (log: %s): %w", cp.log.Name(), err)
	}
	cs, err := adminClient(cp)
	if err != nil {
		return clusterResult{}, err
	}
	var res clusterResult
	var worker *benchNode
	for i := 1; i <= runs; i++ {
		out, err := cp.run("", "add-node", "--worker", "--format", "short")
		if err != nil {
			return clusterResult{}, err
		}
		line := regexp.MustCompile(regexp.QuoteMeta(cp.ns.ip) + `:\S+`).FindString(out)
		if line == "" {
			return clusterResult{}, fmt.Errorf("add-node printed no line for %s:\n%s", cp.ns.ip, out)
		}
		name := fmt.Sprintf("bench-worker-%d", i)
		begin := time.Now()
		w, err := lanNode(i, "kubeseed-bench-worker.log", "join", line, "--worker", "--node-name", name)
		if err != nil {
			return clusterResult{}, err
		}
		if err := waitNodeReady(cs, name, 3*time.Minute); err != nil {
			w.stop()
			return clusterResult{}, fmt.Errorf("%w (log: %s)", err, w.log.Name())
		}
		res.joins = append(res.joins, time.Since(begin))
		fmt.Fprintf(os.Stderr, "join %d/%d: %s\n", i, runs, ms(float64(res.joins[i-1])))
		if i < runs {
			w.stop()
			if _, err := cp.run("", "kubectl", "delete", "node", name); err != nil {
				return clusterResult{}, err
			}
			continue
		}
		worker = w
	}
	defer worker.stop()
	if _, err := worker.run("", "status", "--wait-ready", "--timeout", "2m"); err != nil {
		return clusterResult{}, err
	}
	time.Sleep(10 * time.Second) // idle
	res.workerRSSKB = rss(worker.cmd.Process.Pid)
	for _, p := range ourProcesses(worker.cmd.Process.Pid, filepath.Join(worker.data, "bin", "containerd-shim-runc-v2")) {
		res.workerPss += pss(p)
	}
	res.same, res.cross, err = measurePodNetwork(cp, worker, fmt.Sprintf("bench-worker-%d", runs))
	return res, err
}

// newLAN makes the cluster benchmarks' bridge; the func removes it.
func newLAN() (func(), error) {
	_ = exec.Command("ip", "link", "del", lanBridge).Run() // a leftover of a killed run
	for _, c := range [][]string{
		{"ip", "link", "add", lanBridge, "type", "bridge"},
		{"ip", "addr", "add", lanGateway + "/24", "dev", lanBridge},
		{"ip", "link", "set", lanBridge, "up"},
	} {
		if err := runCmd(exec.Command(c[0], c[1:]...)); err != nil {
			return nil, err
		}
	}
	return onInterrupt(func() { _ = exec.Command("ip", "link", "del", lanBridge).Run() }), nil
}

// lanNodeOf runs kubeseed with args in namespace i on the bridge.
func lanNodeOf(bin string, i int, logName string, args ...string) (*benchNode, error) {
	ns, err := makeNetns(fmt.Sprintf("ks-bench-lan-%d", i), fmt.Sprintf("veth-kbl%d", i), lanPrefix+strconv.Itoa(10+i), lanGateway, lanBridge)
	if err != nil {
		return nil, err
	}
	return runNode(ns, bin, 0, logName, args...)
}

// measurePodNetwork runs a TCP server pod on cp and times it from a client
// pod on cp and one on the worker.
func measurePodNetwork(cp, worker *benchNode, workerName string) (same, cross netResult, err error) {
	archive, err := dnsClientImage(cp.dir)
	if err != nil {
		return same, cross, err
	}
	for _, n := range []*benchNode{cp, worker} {
		if _, err := n.run("", "images", "import", archive); err != nil {
			return same, cross, err
		}
	}
	cpName, err := cp.run("", "kubectl", "get", "nodes", "-l", "!node-role.kubernetes.io/worker", "-o", "jsonpath={.items[0].metadata.name}")
	if err != nil {
		return same, cross, err
	}
	pod := func(name, node string, cmd ...string) string {
		return fmt.Sprintf(`{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": %q}, "spec": {"nodeName": %q, "terminationGracePeriodSeconds": 0,
"containers": [{"name": "c", "image": %q, "imagePullPolicy": "Never", "command": %s}]}}`, name, node, benchClientImage, jsonList(cmd))
	}
	for _, p := range []string{
		pod("tcp-server", cpName, "/bin/dnsclient", "-serve", ":9000"),
		pod("client-same-node", cpName, "/bin/sleep", "3600"),
		pod("client-other-node", workerName, "/bin/sleep", "3600"),
	} {
		if _, err := cp.run(p, "kubectl", "apply", "-f", "-"); err != nil {
			return same, cross, err
		}
	}
	for _, p := range []string{"tcp-server", "client-same-node", "client-other-node"} {
		if _, err := cp.run("", "kubectl", "wait", "--for=condition=Ready", "pod/"+p, "--timeout=120s"); err != nil {
			return same, cross, err
		}
	}
	ip, err := cp.run("", "kubectl", "get", "pod", "tcp-server", "-o", "jsonpath={.status.podIP}")
	if err != nil {
		return same, cross, err
	}
	addr := strings.TrimSpace(ip) + ":9000"
	measure := func(client string) (netResult, error) {
		var r netResult
		out, err := cp.run("", "kubectl", "exec", client, "--", "/bin/dnsclient", "-rtt", "2000", addr)
		if err != nil {
			return r, err
		}
		m := regexp.MustCompile(`p50_us=(\d+) p99_us=(\d+)`).FindStringSubmatch(out)
		if m == nil {
			return r, fmt.Errorf("dnsclient -rtt printed %q", out)
		}
		p50, _ := strconv.Atoi(m[1])
		p99, _ := strconv.Atoi(m[2])
		r.p50, r.p99 = time.Duration(p50)*time.Microsecond, time.Duration(p99)*time.Microsecond
		// The median of three transfers: one is noisy on two cores.
		var rates []float64
		for range 3 {
			out, err = cp.run("", "kubectl", "exec", client, "--", "/bin/dnsclient", "-send", "256", addr)
			if err != nil {
				return r, err
			}
			m = regexp.MustCompile(`mbit_s=(\d+)`).FindStringSubmatch(out)
			if m == nil {
				return r, fmt.Errorf("dnsclient -send printed %q", out)
			}
			v, _ := strconv.ParseFloat(m[1], 64)
			rates = append(rates, v)
		}
		r.mbit = medianOf(rates, func(v float64) float64 { return v })
		return r, nil
	}
	if same, err = measure("client-same-node"); err != nil {
		return same, cross, err
	}
	cross, err = measure("client-other-node")
	return same, cross, err
}

func jsonList(items []string) string {
	q := make([]string, len(items))
	for i, s := range items {
		q[i] = strconv.Quote(s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// adminClient is a clientset for n's apiserver, dialling in its namespace.
func adminClient(n *benchNode) (kubernetes.Interface, error) {
	cfg, err := adminConfig(n)
	if err != nil {
		return nil, err
	}
	return kubernetes.NewForConfig(cfg)
}

// adminConfig is the node's admin kubeconfig, dialled in its namespace.
func adminConfig(n *benchNode) (*rest.Config, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", filepath.Join(n.data, "credentials", "client.config"))
	if err != nil {
		return nil, err
	}
	cfg.Dial = n.ns.dialContext
	return cfg, nil
}

// waitNodeReady polls the Node's Ready condition every 100 ms.
func waitNodeReady(cs kubernetes.Interface, name string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for {
		if n, err := cs.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{}); err == nil {
			for _, c := range n.Status.Conditions {
				if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
					return nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("node %s not Ready in %s", name, timeout)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func clusterRows(c clusterResult) [][3]string {
	return [][3]string{
		{"`kubeseed join … --worker` → worker Node Ready", ms(medianOf(c.joins, func(d time.Duration) float64 { return float64(d) })),
			fmt.Sprintf("median of %d joins to one control plane, each worker in a namespace of its own on one bridge; from the command's start (keys, CSRs, signing, data dir, containerd, kubelet, kube-proxy, overlay) to the Node's Ready condition", len(c.joins))},
		{"idle memory of a worker (kubeseed + containerd + shims), 10 s after Ready, PSS", mib(float64(c.workerPss)), "no pods but the overlay's device; kubelet, kube-proxy, the overlay and the apiserver load balancer in one process"},
		{"RSS of a worker's kubeseed process, 10 s after Ready", mib(float64(c.workerRSSKB)), ""},
		{"pod → pod TCP round trip, same node, p50 / p99", usec(c.same.p50) + " / " + usec(c.same.p99), "one byte each way, 2000 round trips on one connection (test/e2e/dnsclient -rtt)"},
		{"pod → pod TCP round trip, across the VXLAN overlay, p50 / p99", usec(c.cross.p50) + " / " + usec(c.cross.p99), "client pod on the worker, server pod on the control plane"},
		{"pod → pod TCP throughput, same node", fmt.Sprintf("%.0f Mbit/s", c.same.mbit), "256 MiB on one connection, median of 3 (dnsclient -send); both nodes share the machine's 2 cores"},
		{"pod → pod TCP throughput, across the VXLAN overlay", fmt.Sprintf("%.0f Mbit/s", c.cross.mbit), "through two veth pairs, the bridge and VXLAN encapsulation in software"},
	}
}

package e2e

import (
	"bytes"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kubeseed/kubeseed/internal/pki"
)

// lan is one layer-2 segment for the nodes of a cluster: a bridge in the
// test's namespace with 198.18.0.1/24, and each node's namespace linked to
// it by a veth pair, so nodes reach each other directly (no forwarding on
// the host) and the test reaches them all.
type lan struct {
	t      *testing.T
	bridge string
	next   int
}

func newLAN(t *testing.T) *lan {
	t.Helper()
	l := &lan{t: t, bridge: "ks-lan0", next: 10}
	_ = exec.Command("ip", "link", "del", l.bridge).Run() // a leftover of a killed run
	for _, args := range [][]string{
		{"ip", "link", "add", l.bridge, "type", "bridge"},
		{"ip", "addr", "add", "198.18.0.1/24", "dev", l.bridge},
		{"ip", "link", "set", l.bridge, "up"},
	} {
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	// Registered first, so it runs after every node's cleanup.
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", l.bridge).Run() })
	return l
}

// node adds a node on the segment, in a namespace of its own.
func (l *lan) node() *node {
	l.t.Helper()
	l.next++
	ip := fmt.Sprintf("198.18.0.%d", l.next)
	n := newNodeIn(l.t, int(netnsSeq.Add(1))%250+1, ip, "198.18.0.1", false)
	hostIf := "veth-ks" + strings.TrimPrefix(n.netns, "ks-e2e-")
	if out, err := exec.Command("ip", "link", "set", hostIf, "master", l.bridge).CombinedOutput(); err != nil {
		l.t.Fatalf("attach %s to %s: %v\n%s", hostIf, l.bridge, err, out)
	}
	return n
}

// joinLine runs add-node on cp and returns the join line for cp's address.
func joinLine(t *testing.T, cp *node, extra ...string) (line, id string) {
	t.Helper()
	out := cp.mustKubeseed(append([]string{"add-node", "--worker", "--format", "short"}, extra...)...)
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(l)
		if len(f) >= 3 && strings.HasPrefix(f[2], cp.ip+":") {
			return f[2], strings.Split(strings.Split(f[2], "/")[1], ".")[0]
		}
	}
	t.Fatalf("add-node printed no line for %s:\n%s", cp.ip, out)
	return "", ""
}

// TestJoinWorker grows a control plane by a worker: the worker's CA pin is
// checked before the token is sent, the token is used once the worker is
// Ready and not before, the worker holds no CA key, and pods run on it.
func TestJoinWorker(t *testing.T) {
	seg := newLAN(t)
	cp := seg.node()
	cp.start()
	line, id := joinLine(t, cp)

	t.Run("a wrong CA hash sends nothing", func(t *testing.T) {
		bad := strings.Replace(line, line[len(line)-8:], "00000000", 1)
		other := seg.node()
		out, err := other.kubeseed("join", bad, "--worker", "--node-name", "nope")
		if err == nil || !strings.Contains(out, "does not match") {
			t.Fatalf("join with a wrong CA hash: %v\n%s", err, out)
		}
		if data, _ := os.ReadFile(cp.log); strings.Contains(string(data), id) {
			t.Errorf("the agent saw a request with token %s, sent to a server whose CA did not match", id)
		}
		if entries, _ := os.ReadDir(other.dir); len(entries) > 1 {
			t.Errorf("a refused join wrote into the data dir: %v", entries)
		}
	})

	t.Run("an unreachable agent is named", func(t *testing.T) {
		other := seg.node()
		gone := strings.Replace(line, cp.ip+":", "198.18.0.250:", 1)
		out, err := other.kubeseed("join", gone, "--worker", "--node-name", "nope")
		if err == nil || !strings.Contains(out, "198.18.0.250:25000") {
			t.Fatalf("join through an agent that is not there: %v\n%s", err, out)
		}
	})

	t.Run("the agent refuses requests without a token or a node certificate", func(t *testing.T) {
		client := cp.httpClient(cp.tlsConfig("ca", ""), 10*time.Second)
		for path, want := range map[string]int{"/cluster/api/v2.0/join": 401, "/cluster/api/v2.0/join/complete": 401} {
			body := `{"role":"worker","nodeName":"x","version":"v1.37.2"}`
			if path != "/cluster/api/v2.0/join" {
				body = `{"tokenID":"` + id + `","attempt":"x"}`
			}
			resp, err := client.Post("https://"+cp.ip+":25000"+path, "application/json", strings.NewReader(body))
			if err != nil {
				t.Fatalf("POST %s: %v", path, err)
			}
			resp.Body.Close()
			if resp.StatusCode != want {
				t.Errorf("POST %s: HTTP %d, want %d", path, resp.StatusCode, want)
			}
		}
	})

	w := seg.node()
	w.worker = true
	w.run("join", line, "--worker", "--node-name", "worker-1")
	cp.waitFor("the worker is Ready", "wait", "--for=condition=Ready", "node/worker-1", "--timeout=180s")
	// Every service of the worker serves, as its status shows.
	if out, err := w.kubeseed("status", "--wait-ready", "--timeout", "60s"); err != nil || !strings.Contains(out, "role: worker") {
		t.Fatalf("worker status: %v\n%s", err, out)
	}

	t.Run("the token is used once the worker reports Ready", func(t *testing.T) {
		deadline := time.Now().Add(60 * time.Second)
		for {
			out, err := cp.kubeseed("join-token", "list")
			if err != nil {
				t.Fatalf("join-token list: %v\n%s", err, out)
			}
			if !strings.Contains(out, id) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("token %s still listed a minute after the worker was Ready:\n%s", id, out)
			}
			time.Sleep(time.Second)
		}
		again := seg.node()
		out, err := again.kubeseed("join", line, "--worker", "--node-name", "worker-2")
		if err == nil || !strings.Contains(out, "token") {
			t.Fatalf("a second use of a single-use token: %v\n%s", err, out)
		}
	})

	t.Run("the worker holds no CA key, service-account key or etcd credentials", func(t *testing.T) {
		for _, f := range []string{"ca.key", "etcd-ca.key", "etcd-ca.crt", "front-proxy-ca.key", "serviceaccount.key", "admin.key", "apiserver-etcd-client.key"} {
			if _, err := os.Stat(filepath.Join(w.dir, "certs", f)); err == nil {
				t.Errorf("the worker has certs/%s", f)
			}
		}
		if out, _ := cp.kubectl("get", "node", "worker-1", "-o", "jsonpath={.metadata.labels}"); !strings.Contains(out, "node-role.kubernetes.io/worker") {
			t.Errorf("the worker is not labelled as one: %s", out)
		}
		w.auditPorts()
	})

	t.Run("a node in a cluster cannot join again", func(t *testing.T) {
		out, err := w.kubeseed("join", line, "--worker", "--node-name", "worker-1")
		if err == nil || !strings.Contains(out, "empty data dir") {
			t.Errorf("join on a running worker: %v\n%s", err, out)
		}
	})

	t.Run("the control plane's status shows the cluster", func(t *testing.T) {
		if out, err := cp.kubeseed("status"); err != nil || !strings.Contains(out, "worker-1") || !strings.Contains(out, "role: control-plane") {
			t.Errorf("control-plane status: %v\n%s", err, out)
		}
	})

	// A second worker, with a token of its own.
	line2, _ := joinLine(t, cp)
	w2 := seg.node()
	w2.worker = true
	w2.run("join", line2, "--worker", "--node-name", "worker-2")
	cp.waitFor("the second worker is Ready", "wait", "--for=condition=Ready", "node/worker-2", "--timeout=180s")

	t.Run("pods on every node reach each other, Services and DNS", func(t *testing.T) {
		testPodNetwork(t, cp, map[string]*node{kubeletName(t, cp): cp, "worker-1": w, "worker-2": w2})
	})

	t.Run("remove-node refuses what it cannot remove", func(t *testing.T) {
		for args, want := range map[string]string{
			"nope":             "--force",
			kubeletName(t, cp): "this node",
		} {
			if out, err := cp.kubeseed("remove-node", args); err == nil || !strings.Contains(out, want) {
				t.Errorf("remove-node %s: %v, want %q in:\n%s", args, err, want, out)
			}
		}
		if out, err := w.kubeseed("remove-node", "worker-2"); err == nil || !strings.Contains(out, "kubeseed leave") {
			t.Errorf("remove-node on a worker: %v\n%s", err, out)
		}
	})

	t.Run("a removed worker's certificates are refused, and leave cleans it up", func(t *testing.T) {
		cp.mustKubeseed("remove-node", "worker-2")
		// Straight to the control plane's apiserver, with the worker's own
		// kubelet certificate. Under AlwaysAllow only the removed-nodes
		// webhook can answer 403.
		cfg := w2.tlsConfig("ca", "kubelet")
		client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
		defer client.CloseIdleConnections()
		var status int
		var body string
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(time.Second) {
			resp, err := client.Get("https://" + cp.ip + ":16443/api/v1/nodes/worker-2")
			if err != nil {
				body = err.Error()
				continue
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			status, body = resp.StatusCode, string(b)
			if status == http.StatusForbidden {
				break
			}
		}
		if status != http.StatusForbidden || !strings.Contains(body, "was removed from the cluster") {
			t.Fatalf("the removed worker's kubelet certificate still works: HTTP %d\n%s", status, body)
		}
		// Upstream kube-proxy ends the process once its Node is gone; the
		// kubelet never got to register it again.
		w2.waitExit(time.Minute)
		if out, err := cp.kubectl("get", "node", "worker-2"); err == nil {
			t.Errorf("the removed Node came back:\n%s", out)
		}
		// The pods it left running are killed, and everything goes.
		out := w2.mustKubeseed("leave")
		if !strings.Contains(out, "deleted "+w2.dir) || !strings.Contains(out, "pod processes left running") {
			t.Errorf("leave output:\n%s", out)
		}
		if _, err := os.Stat(w2.dir); !os.IsNotExist(err) {
			t.Errorf("leave kept the data dir: %v", err)
		}
		if out, err := w2.inNetns("ip", "link", "show", "flannel.1").CombinedOutput(); err == nil {
			t.Errorf("leave kept the VXLAN device:\n%s", out)
		}
	})

	t.Run("leave on a worker removes its Node, and the name can join again", func(t *testing.T) {
		w.mustKubeseed("leave")
		w.waitExit(time.Minute)
		if out, err := cp.kubectl("get", "node", "worker-1"); err == nil {
			t.Errorf("worker-1's Node is still there after leave:\n%s", out)
		}
		again, _ := joinLine(t, cp)
		w.run("join", again, "--worker", "--node-name", "worker-1")
		cp.waitFor("worker-1 Ready again", "wait", "--for=condition=Ready", "node/worker-1", "--timeout=180s")
	})
}

// kubeletName is the node's name, from its args/kubelet.
func kubeletName(t *testing.T, n *node) string {
	t.Helper()
	data, err := os.ReadFile(n.path("args", "kubelet"))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "--hostname-override="); ok {
			return v
		}
	}
	t.Fatalf("args/kubelet has no --hostname-override:\n%s", data)
	return ""
}

// webPod is a pod on node serving its own name on 8080 (busybox httpd, which
// logs every client's address), with a Service of its name on port 80.
func webPod(name, node string) string {
	return fmt.Sprintf(`
apiVersion: v1
kind: Pod
metadata: {name: %[1]s, labels: {app: %[1]s}}
spec:
  nodeName: %[2]s
  terminationGracePeriodSeconds: 0
  containers:
  - name: web
    image: %[3]s
    imagePullPolicy: Never
    command: ["/bin/sh", "-c", "busybox mkdir -p /www && echo %[1]s > /www/index.html && exec busybox httpd -f -v -p 8080 -h /www"]
---
apiVersion: v1
kind: Service
metadata: {name: %[1]s}
spec:
  selector: {app: %[1]s}
  ports: [{port: 80, targetPort: 8080}]
`, name, node, dnsTestImage)
}

// fetch asks the web server at host:port from inside pod.
func fetch(cp *node, pod, host, port string) (string, error) {
	return cp.kubectl("exec", pod, "--", "/bin/sh", "-c",
		fmt.Sprintf(`printf 'GET / HTTP/1.0\r\n\r\n' | busybox nc -w 5 %s %s`, host, port))
}

// fetchUntil fetches until the answer names want, for a minute at most:
// a new node's routes reach its peers within seconds.
func fetchUntil(t *testing.T, cp *node, pod, host, port, want string) {
	t.Helper()
	var out string
	var err error
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(time.Second) {
		if out, err = fetch(cp, pod, host, port); err == nil && strings.Contains(out, want) {
			return
		}
	}
	t.Errorf("from pod %s, %s:%s did not answer %s: %v\n%s", pod, host, port, want, err, out)
}

// testPodNetwork runs a web pod on each node and checks, from every pod,
// every other pod by pod IP with its address unmasqueraded, every Service
// by its DNS name, and kubectl logs and exec on each node.
func testPodNetwork(t *testing.T, cp *node, nodes map[string]*node) {
	archive := dnsClientArchive(t)
	var names []string
	for name, n := range nodes {
		n.mustKubeseed("images", "import", archive)
		names = append(names, name)
	}
	slices.Sort(names)
	podIP := map[string]string{}
	for i, name := range names {
		cp.apply(webPod(fmt.Sprintf("web-%d", i), name))
	}
	for i := range names {
		pod := fmt.Sprintf("web-%d", i)
		cp.waitFor("pod "+pod, "wait", "--for=condition=Ready", "pod/"+pod, "--timeout=120s")
		out, err := cp.kubectl("get", "pod", pod, "-o", "jsonpath={.status.podIP}")
		if err != nil || out == "" {
			t.Fatalf("pod %s IP: %v %q", pod, err, out)
		}
		podIP[pod] = out
	}
	cp.waitDNSReady(t)
	for i := range names {
		from := fmt.Sprintf("web-%d", i)
		for j := range names {
			to := fmt.Sprintf("web-%d", j)
			if i == j {
				continue
			}
			fetchUntil(t, cp, from, podIP[to], "8080", to)
			// By name: CoreDNS answers from whichever node runs it, and
			// kube-proxy sends the ClusterIP across the overlay.
			svc := to + ".default.svc.cluster.local"
			out, err := cp.kubectl("exec", from, "--", "/bin/dnsclient", svc)
			if err != nil || net.ParseIP(strings.TrimSpace(out)) == nil {
				t.Errorf("from pod %s (node %s), resolve %s: %v %q", from, names[i], svc, err, out)
				continue
			}
			fetchUntil(t, cp, from, strings.TrimSpace(out), "80", to)
		}
	}
	// The servers saw the clients' pod addresses (httpd logs them as
	// [::ffff:IP]:port): no masquerade inside the cluster. kubectl logs
	// reaches every node's kubelet, as exec did above.
	for j := range names {
		pod := fmt.Sprintf("web-%d", j)
		logs, err := cp.kubectl("logs", pod)
		if err != nil {
			t.Errorf("kubectl logs %s on %s: %v\n%s", pod, names[j], err, logs)
			continue
		}
		for i := range names {
			if from := fmt.Sprintf("web-%d", i); i != j && !strings.Contains(logs, "ffff:"+podIP[from]+"]:") {
				t.Errorf("pod %s on %s did not see pod %s's address %s; its log:\n%s", pod, names[j], from, podIP[from], logs)
			}
		}
	}
	for _, n := range nodes {
		n.auditPorts()
	}
}

// TestWorkerCertRenewal: with a short worker lifetime (the agent's
// --worker-cert-lifetime test knob), a running worker renews its three
// certificates through the cluster agent: new keys and serials, in the
// same process, without re-join. The kubelet and kube-proxy move to the
// new client certificates before the old ones expire (the apiserver never
// sees an expired one, the node lease keeps being renewed), the kubelet
// serves its new serving certificate, and the apiserver still reaches the
// kubelet for `kubectl logs`.
func TestWorkerCertRenewal(t *testing.T) {
	const lifetime = 4 * time.Minute // valid 9m (NotBefore is 5m back), due with 3m left: a minute after signing
	net := newLAN(t)
	cp := net.node()
	cp.start()
	// The agent reads args/cluster-agent when it starts; the last line wins.
	appendFile(t, cp.path("args", "cluster-agent"), "--worker-cert-lifetime="+lifetime.String())
	cp.stop()
	cp.start()
	line, _ := joinLine(t, cp)

	w := net.node()
	w.worker = true
	w.extraEnv = append(w.extraEnv, "KUBESEED_CERT_CHECK_INTERVAL=5s")
	w.run("join", line, "--worker", "--node-name", "worker-r")
	cp.waitFor("the worker is Ready", "wait", "--for=condition=Ready", "node/worker-r", "--timeout=180s")
	pid := mustPID(t, w)

	names := []string{"kubelet", "kubelet-serving", "proxy"}
	load := func() (map[string]*x509.Certificate, map[string][]byte) {
		t.Helper()
		certs, keys := map[string]*x509.Certificate{}, map[string][]byte{}
		for _, name := range names {
			c, err := pki.LoadCert(w.path("certs", name+".crt"))
			if err != nil {
				t.Fatal(err)
			}
			key, err := os.ReadFile(w.path("certs", name+".key"))
			if err != nil {
				t.Fatal(err)
			}
			certs[name], keys[name] = c, key
		}
		return certs, keys
	}
	first, firstKeys := load()
	for _, name := range names {
		if v := first[name].NotAfter.Sub(first[name].NotBefore); v < lifetime || v > lifetime+6*time.Minute {
			t.Fatalf("%s.crt is valid for %s: the agent did not apply --worker-cert-lifetime=%s", name, v, lifetime)
		}
	}

	// A pod on the worker: its logs come through the kubelet's serving port.
	cp.apply(`{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "renewal-logs"}, "spec": {"nodeName": "worker-r", "terminationGracePeriodSeconds": 0,
"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10", "imagePullPolicy": "Never"}]}}`)
	cp.waitFor("a pod on the worker", "wait", "--for=condition=Ready", "pod/renewal-logs", "--timeout=120s")

	eventually(t, 3*time.Minute, "the worker's certificates are renewed through the agent", func() bool {
		now, _ := load()
		for _, name := range names {
			if now[name].SerialNumber.Cmp(first[name].SerialNumber) == 0 {
				return false
			}
		}
		return true
	})
	renewed, renewedKeys := load()
	ca, err := pki.LoadCert(w.path("certs", "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	for _, name := range names {
		if bytes.Equal(renewedKeys[name], firstKeys[name]) {
			t.Errorf("%s.key was kept: a renewal makes a new key", name)
		}
		if !renewed[name].NotAfter.After(first[name].NotAfter) || renewed[name].Subject.String() != first[name].Subject.String() {
			t.Errorf("%s.crt: renewed to %s (%s), was %s (%s)", name, renewed[name].NotAfter, renewed[name].Subject, first[name].NotAfter, first[name].Subject)
		}
		if _, err := renewed[name].Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
			t.Errorf("%s.crt: %v", name, err)
		}
		for _, f := range []string{name + ".crt", name + ".key"} {
			if fi, err := os.Stat(w.path("certs", f)); err != nil || fi.Mode().Perm() != 0o600 {
				t.Errorf("certs/%s: %v %v, want mode 0600", f, fi.Mode(), err)
			}
		}
	}
	if _, err := os.Stat(w.path(".certs-staging")); !os.IsNotExist(err) {
		t.Errorf("the renewal left its staging dir: %v", err)
	}
	if !strings.Contains(readFile(t, cp.log), "Renewed a worker's certificates") || !strings.Contains(readFile(t, w.log), "Renewed certificate") {
		t.Error("the renewal is not in the agent's and the worker's logs")
	}
	if out := w.mustKubeseed("status"); !strings.Contains(out, "last renewed") {
		t.Errorf("the worker's status does not show the renewal:\n%s", out)
	}

	// The kubelet serves a renewed serving certificate (renewals go on
	// every minute, so any but the first).
	w.waitServed(t, w.ip+":10250", w.tlsConfig("ca", ""), 90*time.Second, "the kubelet serves its renewed certificate", func(c *x509.Certificate) bool {
		return c.SerialNumber.Cmp(first["kubelet-serving"].SerialNumber) != 0
	})

	// Past the first certificates' expiry, every connection made with them
	// must be gone: the apiserver checks a client certificate's expiry on
	// every request.
	if d := time.Until(first["kubelet"].NotAfter.Add(30 * time.Second)); d > 0 {
		t.Logf("waiting %s, until the first certificates have expired", d.Round(time.Second))
		time.Sleep(d)
	}
	cp.waitFor("the worker stays Ready", "wait", "--for=condition=Ready", "node/worker-r", "--timeout=10s")
	eventually(t, 30*time.Second, "the worker's kubelet renews its node lease", func() bool {
		out, err := cp.kubectl("get", "lease", "-n", "kube-node-lease", "worker-r", "-o", "jsonpath={.spec.renewTime}")
		at, perr := time.Parse(time.RFC3339Nano, strings.TrimSpace(out))
		return err == nil && perr == nil && time.Since(at) < 20*time.Second
	})
	if out, err := cp.kubectl("logs", "renewal-logs"); err != nil {
		t.Errorf("kubectl logs of a pod on the worker after its renewal: %v\n%s", err, out)
	}
	if n := strings.Count(readFile(t, cp.log), "certificate has expired"); n > 0 {
		t.Errorf("the apiserver saw an expired certificate %d times: a component kept an old connection", n)
	}
	w.assertSameProcess(pid)
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// TestJoinRefusals: a revoked token and a node name the cluster has are
// refused with nothing written and the token kept; a join killed half way
// leaves a data dir the next join discards, and its token usable at once.
func TestJoinRefusals(t *testing.T) {
	seg := newLAN(t)
	cp := seg.node()
	cp.start()

	t.Run("a revoked token", func(t *testing.T) {
		line, id := joinLine(t, cp)
		cp.mustKubeseed("join-token", "revoke", id)
		other := seg.node()
		out, err := other.kubeseed("join", line, "--worker", "--node-name", "revoked")
		if err == nil || !strings.Contains(out, "token") {
			t.Fatalf("join with a revoked token: %v\n%s", err, out)
		}
		if entries, _ := os.ReadDir(other.dir); len(entries) > 1 {
			t.Errorf("a refused join wrote into the data dir: %v", entries)
		}
	})

	line, id := joinLine(t, cp)
	t.Run("a node name the cluster has", func(t *testing.T) {
		other := seg.node()
		out, err := other.kubeseed("join", line, "--worker", "--node-name", kubeletName(t, cp))
		if err == nil || !strings.Contains(out, "already in this cluster") {
			t.Fatalf("join under the control plane's name: %v\n%s", err, out)
		}
		if entries, _ := os.ReadDir(other.dir); len(entries) > 1 {
			t.Errorf("a refused join wrote into the data dir: %v", entries)
		}
		if out := cp.mustKubeseed("join-token", "list"); !strings.Contains(out, id) {
			t.Errorf("a refused join used the token up:\n%s", out)
		}
	})

	t.Run("a join killed half way", func(t *testing.T) {
		w := seg.node()
		w.worker = true
		w.run("join", line, "--worker", "--node-name", "killed-1")
		// Killed once its data dir is written and the token's use is
		// reserved, before the node reports Ready.
		w.waitLog("joined as worker killed-1", 1, time.Minute)
		_ = syscall.Kill(-w.cmd.Process.Pid, syscall.SIGKILL)
		w.waitExit(time.Minute)
		if out := cp.mustKubeseed("join-token", "list"); !strings.Contains(out, id) {
			t.Fatalf("a killed join used the token up:\n%s", out)
		}
		w.mustKubeseed("reset", "--yes")
		// What a join killed while writing leaves: the next join discards
		// it, and start refuses it.
		if err := os.MkdirAll(w.path("args"), 0o755); err != nil {
			t.Fatal(err)
		}
		for _, f := range []string{".joining", "args/kubelet"} {
			if err := os.WriteFile(w.path(f), []byte("half"), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		if out, err := w.kubeseed("start"); err == nil || !strings.Contains(out, "interrupted") {
			t.Errorf("start on a data dir of a killed join: %v\n%s", err, out)
		}
		// The same line again, at once: the killed attempt's reservation
		// does not hold the single use for its 10 minutes.
		w.run("join", line, "--worker", "--node-name", "killed-1")
		cp.waitFor("the re-joined worker is Ready", "wait", "--for=condition=Ready", "node/killed-1", "--timeout=180s")
	})
}

package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// cpJoinLine runs add-node for a control plane on cp and returns the join
// line for cp's address.
func cpJoinLine(t *testing.T, cp *node, extra ...string) string {
	t.Helper()
	out := cp.mustKubeseed(append([]string{"add-node", "--format", "short"}, extra...)...)
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(l)
		if len(f) >= 3 && strings.HasPrefix(f[2], cp.ip+":") {
			if strings.Contains(l, "--worker") {
				t.Fatalf("a control-plane join line says --worker: %s", l)
			}
			return f[2]
		}
	}
	t.Fatalf("add-node printed no line for %s:\n%s", cp.ip, out)
	return ""
}

// etcdMembers lists cp's etcd members from outside, over its client port
// with the apiserver's etcd client certificate: name → is a voter.
func etcdMembers(t *testing.T, cp *node) (map[string]bool, error) {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   []string{fmt.Sprintf("https://%s:%d", cp.ip, cp.port("etcd"))},
		TLS:         cp.tlsConfig("etcd-ca", "apiserver-etcd-client"),
		DialTimeout: 5 * time.Second,
	})
	if err != nil {
		return nil, err
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	list, err := cli.MemberList(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, m := range list.Members {
		out[m.Name] = !m.IsLearner
	}
	return out, nil
}

// waitVoters waits until cp's etcd has exactly the named voters.
func waitVoters(t *testing.T, cp *node, names ...string) {
	t.Helper()
	var got map[string]bool
	var err error
	for deadline := time.Now().Add(3 * time.Minute); time.Now().Before(deadline); time.Sleep(time.Second) {
		got, err = etcdMembers(t, cp)
		ok := err == nil && len(got) == len(names)
		for _, n := range names {
			ok = ok && got[n]
		}
		if ok {
			return
		}
	}
	t.Fatalf("etcd members %v (err %v), want voters %v", got, err, names)
}

// writer creates ConfigMaps through one apiserver as fast as it answers and
// records each one the apiserver acknowledged, and the longest gap between
// two acknowledgements.
type writer struct {
	prefix string // names are <prefix>-<n>
	mu     sync.Mutex
	acked  []string
	maxGap time.Duration
	last   time.Time
	errs   int
}

func (w *writer) run(ctx context.Context, t *testing.T, cp *node) {
	client := cp.httpClient(cp.tlsConfig("ca", "admin"), 3*time.Second)
	defer client.CloseIdleConnections()
	url := fmt.Sprintf("https://%s:%d/api/v1/namespaces/default/configmaps", cp.ip, cp.port("kube-apiserver"))
	w.last = time.Now()
	for i := 0; ctx.Err() == nil; i++ {
		name := fmt.Sprintf("%s-%d", w.prefix, i)
		body := `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"` + name + `"},"data":{"i":"` + name + `"}}`
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			w.errs++
			time.Sleep(50 * time.Millisecond)
			continue
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			w.errs++
			time.Sleep(50 * time.Millisecond)
			continue
		}
		w.mu.Lock()
		now := time.Now()
		if gap := now.Sub(w.last); gap > w.maxGap {
			w.maxGap = gap
		}
		w.last = now
		w.acked = append(w.acked, name)
		w.mu.Unlock()
	}
}

// TestHAControlPlane grows a control plane to three, two of them joining at
// once, adds a worker, then kills one control plane during a write load.
func TestHAControlPlane(t *testing.T) {
	seg := newLAN(t)
	cp1 := seg.node()
	cp1.start()
	first := kubeletName(t, cp1)

	line := cpJoinLine(t, cp1, "--uses", "2")
	cp2, cp3 := seg.node(), seg.node()
	// Two joins at once: etcd takes one learner at a time, so one waits.
	cp2.run("join", line, "--node-name", "cp-2")
	cp3.run("join", line, "--node-name", "cp-3")
	for _, n := range []string{"cp-2", "cp-3"} {
		cp1.waitFor(n+" is Ready", "wait", "--for=condition=Ready", "node/"+n, "--timeout=240s")
	}
	waitVoters(t, cp1, first, "cp-2", "cp-3")
	for _, cp := range []*node{cp2, cp3} {
		if out, err := cp.kubeseed("status", "--wait-ready", "--timeout", "120s"); err != nil || !strings.Contains(out, "role: control-plane") {
			t.Fatalf("joined control plane status: %v\n%s", err, out)
		}
	}

	t.Run("each control plane has its own etcd peer key and serves the cluster", func(t *testing.T) {
		keys := map[string]bool{}
		for _, cp := range []*node{cp1, cp2, cp3} {
			keys[readFile(t, cp.path("certs", "etcd-peer.key"))] = true
			if readFile(t, cp.path("certs", "ca.crt")) != readFile(t, cp1.path("certs", "ca.crt")) {
				t.Errorf("%s has another CA than the first node", cp.dir)
			}
			if out, err := cp.kubectl("get", "nodes", "-o", "name"); err != nil || strings.Count(out, "node/") != 3 {
				t.Errorf("kubectl get nodes on %s: %v\n%s", cp.ip, err, out)
			}
			cp.auditPorts()
		}
		if len(keys) != 3 {
			t.Errorf("the control planes share etcd peer keys: %d distinct of 3", len(keys))
		}
		// The agents label their own nodes a moment after the kubelet registers them.
		for _, n := range []string{first, "cp-2", "cp-3"} {
			var out string
			for end := time.Now().Add(30 * time.Second); time.Now().Before(end); time.Sleep(time.Second) {
				if out, _ = cp1.kubectl("get", "node", n, "-o", "jsonpath={.metadata.labels}"); strings.Contains(out, "node-role.kubernetes.io/control-plane") {
					break
				}
			}
			if !strings.Contains(out, "node-role.kubernetes.io/control-plane") {
				t.Errorf("%s is not labelled a control plane: %s", n, out)
			}
		}
	})

	t.Run("a joined control plane takes workers", func(t *testing.T) {
		wline, _ := joinLine(t, cp2)
		w := seg.node()
		w.worker = true
		w.run("join", wline, "--worker", "--node-name", "worker-1")
		cp3.waitFor("the worker is Ready", "wait", "--for=condition=Ready", "node/worker-1", "--timeout=180s")
		w.mustKubeseed("images", "import", dnsClientArchive(t))
	})

	t.Run("kill -9 of a control plane under write load loses no acknowledged write", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		w := &writer{prefix: "under-kill"}
		done := make(chan struct{})
		go func() { defer close(done); w.run(ctx, t, cp2) }()
		time.Sleep(3 * time.Second)
		if err := syscall.Kill(-cp1.cmd.Process.Pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		<-cp1.waited
		cp1.cmd = nil
		killedAt := time.Now()
		time.Sleep(15 * time.Second)
		cancel()
		<-done
		w.mu.Lock()
		acked, maxGap, errs := append([]string{}, w.acked...), w.maxGap, w.errs
		w.mu.Unlock()
		t.Logf("%d writes acknowledged, %d refused or failed, longest gap %s (killed at +3 s)", len(acked), errs, maxGap.Round(time.Millisecond))
		if len(acked) == 0 || w.last.Before(killedAt) {
			t.Fatalf("writes did not resume after the kill: %d acknowledged, last at %s", len(acked), w.last)
		}
		if maxGap > 5*time.Second {
			t.Errorf("writes stalled for %s after a control plane was killed, want at most 5 s", maxGap)
		}
		out, err := cp3.kubectl("get", "configmaps", "-o", "name")
		if err != nil {
			t.Fatalf("list ConfigMaps on another control plane: %v\n%s", err, out)
		}
		for _, name := range acked {
			if !strings.Contains(out, "configmap/"+name+"\n") {
				t.Errorf("acknowledged write %s is lost", name)
			}
		}
		// The worker's load balancer moves to a live apiserver: a pod
		// bound to the worker starts.
		cp2.apply(webPod("after-kill", "worker-1"))
		cp2.waitFor("a pod on the worker runs", "wait", "--for=condition=Ready", "pod/after-kill", "--timeout=120s")

		// Restarted, the killed node catches up.
		cp1.start()
		waitVoters(t, cp2, first, "cp-2", "cp-3")
		if out, err := cp1.kubectl("get", "configmap", acked[len(acked)-1]); err != nil {
			t.Errorf("the restarted node lacks the last write: %v\n%s", err, out)
		}
	})

	t.Run("enable rbac on one control plane applies to all", func(t *testing.T) {
		cp2.mustKubeseed("enable", "rbac")
		for _, cp := range []*node{cp1, cp3} {
			waitFileHas(t, cp.path("config", "authorization.yaml"), "# Mode: RBAC")
		}
		// And back, from another one.
		cp3.mustKubeseed("disable", "rbac")
		for _, cp := range []*node{cp1, cp2} {
			waitFileHas(t, cp.path("config", "authorization.yaml"), "# Mode: AlwaysAllow")
		}
	})

	t.Run("an unsafe removal is refused, --force removes a dead member, and it joins again", func(t *testing.T) {
		if err := syscall.Kill(-cp3.cmd.Process.Pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		<-cp3.waited
		cp3.cmd = nil
		out, err := cp1.kubeseed("remove-node", "cp-2")
		if err == nil || !strings.Contains(out, "cp-3") || !strings.Contains(out, "quorum") {
			t.Errorf("removing a live voter while another is down: %v\n%s", err, out)
		}
		out, err = cp1.kubeseed("remove-node", "cp-3")
		if err == nil || !strings.Contains(out, "--force") {
			t.Errorf("removing a dead member without --force: %v\n%s", err, out)
		}
		waitVoters(t, cp1, first, "cp-2", "cp-3")
		cp1.mustKubeseed("remove-node", "cp-3", "--force")
		waitVoters(t, cp1, first, "cp-2")
		if out, err := cp1.kubeseed("status"); err != nil || !strings.Contains(out, "ETCD MEMBER") || strings.Contains(out, "cp-3") && strings.Contains(out, "19001") {
			t.Errorf("status after the removal: %v\n%s", err, out)
		}

		// The removed node does not come back on its old data.
		cp3.run("start")
		log, err := cp3.waitExit(3 * time.Minute)
		if err == nil || !strings.Contains(log, "removed") {
			t.Errorf("the removed control plane started on its old data: %v\n%s", err, lastLines(log, 20))
		}
		cp3.mustKubeseed("reset", "--yes")
		again := cpJoinLine(t, cp1)
		cp3.run("join", again, "--node-name", "cp-3")
		cp1.waitFor("cp-3 Ready again", "wait", "--for=condition=Ready", "node/cp-3", "--timeout=240s")
		waitVoters(t, cp1, first, "cp-2", "cp-3")
	})

	t.Run("recover after losing two of three keeps every acknowledged write", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		w := &writer{prefix: "before-recover"}
		done := make(chan struct{})
		go func() { defer close(done); w.run(ctx, t, cp1) }()
		time.Sleep(3 * time.Second)
		cancel()
		<-done
		if len(w.acked) == 0 {
			t.Fatal("no write was acknowledged")
		}
		for _, cp := range []*node{cp2, cp3} {
			if err := syscall.Kill(-cp.cmd.Process.Pid, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			<-cp.waited
			cp.cmd = nil
		}
		cp1.stop()
		out := cp1.mustKubeseed("recover", "--yes")
		if !strings.Contains(out, "one-member cluster") || !strings.Contains(out, "cp-2") || !strings.Contains(out, "cp-3") {
			t.Errorf("recover output:\n%s", out)
		}
		cp1.start()
		waitVoters(t, cp1, first)
		list, err := cp1.kubectl("get", "configmaps", "-o", "name")
		if err != nil {
			t.Fatalf("list ConfigMaps: %v\n%s", err, list)
		}
		for _, name := range w.acked {
			if !strings.Contains(list, "configmap/"+name+"\n") {
				t.Errorf("acknowledged write %s is lost", name)
			}
		}
		cp1.mustKubeseed("remove-node", "cp-2", "--force")
	})
}

// waitFileHas waits until the file holds s.
func waitFileHas(t *testing.T, path, s string) {
	t.Helper()
	var data []byte
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		data, _ = os.ReadFile(path)
		if strings.Contains(string(data), s) {
			return
		}
	}
	t.Errorf("%s lacks %q after 30 s:\n%s", path, s, data)
}

func lastLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"io/fs"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kubeseed/kubeseed/internal/images"
	"github.com/kubeseed/kubeseed/internal/procfs"
)

const testImage = "kubeseed.local/busybox:test"

// busyboxArchive packs Debian's busybox-static into an OCI image archive.
func busyboxArchive(t *testing.T) string {
	t.Helper()
	bin, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Fatalf("busybox-static is needed (apt-get install busybox-static): %v", err)
	}
	archive, err := images.BuildOCIArchive(images.Busybox(testImage, bin,
		"sh", "sleep", "httpd", "nc", "printf", "echo", "cat", "mkdir", "hostname", "nslookup", "ls", "ps"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "busybox.tar")
	if err := os.WriteFile(path, archive, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

const workloadManifest = `
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 1
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: web
        image: ` + testImage + `
        imagePullPolicy: Never
        command: ["/bin/sh", "-c", "echo web-started; mkdir -p /www; hostname > /www/index.html; exec httpd -f -p 8080 -h /www"]
        ports:
        - containerPort: 8080
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {app: web}
  ports:
  - port: 80
    targetPort: 8080
---
apiVersion: v1
kind: Pod
metadata:
  name: client
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: client
    image: ` + testImage + `
    imagePullPolicy: Never
    command: ["/bin/sleep", "3600"]
`

// TestNodeRunsPods boots a node from an empty data dir and runs real pods
// from a locally built image: logs, exec, port-forward, Services from pods
// and from the host, the kubelet's access rules, a containerd crash, and a
// stop and restart.
func TestNodeRunsPods(t *testing.T) {
	n := newNode(t)
	n.startNoWait()
	out, err := n.kubeseed("status", "--wait-ready", "--timeout", "3m")
	if err != nil {
		n.dumpLog()
		t.Fatalf("node not ready: %v\n%s", err, out)
	}
	if !strings.Contains(out, "waiting for") || !strings.Contains(out, "node ready after") {
		t.Errorf("--wait-ready showed no progress:\n%s", out)
	}
	n.auditPorts()

	out = n.mustKubeseed("images", "import", busyboxArchive(t))
	if !strings.Contains(out, testImage) {
		t.Fatalf("import: %s", out)
	}
	out = n.mustKubeseed("images", "ls")
	if !strings.Contains(out, testImage) || !strings.Contains(out, "registry.k8s.io/pause") {
		t.Fatalf("images ls lacks the test or pause image:\n%s", out)
	}
	n.apply(workloadManifest)
	n.waitFor("deployment web available", "rollout", "status", "deployment/web", "--timeout=120s")
	n.waitFor("pod client ready", "wait", "--for=condition=Ready", "pod/client", "--timeout=120s")

	t.Run("logs", func(t *testing.T) {
		out, err := n.kubectl("logs", "deploy/web")
		if err != nil || !strings.Contains(out, "web-started") {
			t.Errorf("kubectl logs: %v %q", err, out)
		}
	})
	t.Run("exec", func(t *testing.T) {
		out, err := n.kubectl("exec", "client", "--", "echo", "exec-works")
		if err != nil || strings.TrimSpace(out) != "exec-works" {
			t.Errorf("kubectl exec: %v %q", err, out)
		}
	})
	t.Run("port-forward", func(t *testing.T) {
		local := strconv.Itoa(freePort(t))
		pf := n.inNetns(stockKubectl, "--kubeconfig", n.path("credentials", "client.config"),
			"port-forward", "deploy/web", local+":8080")
		pf.Stdout, pf.Stderr = io.Discard, io.Discard
		if err := pf.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = pf.Process.Kill(); _ = pf.Wait() }()
		body, err := n.retryGet("http://127.0.0.1:"+local+"/", 30*time.Second)
		if err != nil || !strings.HasPrefix(body, "web-") {
			t.Errorf("port-forward: %v %q", err, body)
		}
	})
	clusterIP, err := n.kubectl("get", "svc", "web", "-o", "jsonpath={.spec.clusterIP}")
	if err != nil || !strings.HasPrefix(clusterIP, "10.152.183.") {
		t.Fatalf("service IP %q: %v", clusterIP, err)
	}
	t.Run("service from the host", func(t *testing.T) {
		body, err := n.retryGet("http://"+clusterIP+"/", 30*time.Second)
		if err != nil || !strings.HasPrefix(body, "web-") {
			t.Errorf("host -> ClusterIP: %v %q", err, body)
		}
	})
	t.Run("service from a pod", func(t *testing.T) {
		var out string
		var err error
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(time.Second) {
			// busybox-static's wget crashes without glibc's NSS modules; nc does not.
			out, err = n.kubectl("exec", "client", "--", "sh", "-c", "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 "+clusterIP+" 80")
			if err == nil && strings.Contains(out, "web-") {
				break
			}
		}
		if err != nil || !strings.Contains(out, "\nweb-") {
			t.Errorf("pod -> ClusterIP: %v %q", err, out)
		}
	})

	t.Run("kubelet access rules", func(t *testing.T) {
		url := fmt.Sprintf("https://127.0.0.1:%d/pods", n.port("kubelet"))
		if code, err := n.httpsGet(url, n.tlsConfig("ca", "")); err != nil || code != http.StatusUnauthorized {
			t.Errorf("no client certificate: code %d err %v, want 401", code, err)
		}
		foreign := n.tlsConfig("ca", "")
		foreign.Certificates = []tls.Certificate{selfSigned(t)}
		// Refused in the handshake, or answered 401; anything else (a
		// dial error included) fails.
		if code, err := n.httpsGet(url, foreign); err == nil && code != http.StatusUnauthorized ||
			err != nil && !strings.Contains(err.Error(), "tls") && !strings.Contains(err.Error(), "certificate") {
			t.Errorf("a certificate from another CA: code %d err %v, want refused", code, err)
		}
		if code, err := n.httpsGet(url, n.tlsConfig("ca", "apiserver-kubelet-client")); err != nil || code != http.StatusOK {
			t.Errorf("apiserver's kubelet client certificate: code %d err %v, want 200", code, err)
		}
		ro := fmt.Sprintf("http://127.0.0.1:%d/pods", n.port("kubelet-readonly"))
		body, err := n.retryGet(ro, 5*time.Second)
		if err != nil || !strings.Contains(body, `"name":"client"`) {
			t.Errorf("read-only port /pods: %v %.200q", err, body)
		}
		req, _ := http.NewRequest(http.MethodPost, fmt.Sprintf("http://127.0.0.1:%d/run/default/client/client", n.port("kubelet-readonly")), strings.NewReader("cmd=ls"))
		c := n.httpClient(nil, 5*time.Second)
		defer c.CloseIdleConnections()
		if resp, err := c.Do(req); err != nil {
			t.Errorf("the read-only port did not answer POST /run: %v", err)
		} else {
			resp.Body.Close()
			if resp.StatusCode != http.StatusNotFound && resp.StatusCode != http.StatusMethodNotAllowed {
				t.Errorf("POST /run on the read-only port: %d, want 404 or 405 (it serves no commands)", resp.StatusCode)
			}
		}
	})

	t.Run("containerd crash is survived", func(t *testing.T) {
		before := n.containerPID(t, "client")
		ctrd := n.containerdPID(t)
		if err := syscall.Kill(ctrd, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(60 * time.Second)
		for {
			if p := n.containerdPIDOrZero(); p != 0 && p != ctrd {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("containerd was not restarted")
			}
			time.Sleep(200 * time.Millisecond)
		}
		n.waitFor("status ready", "--request-timeout=5s", "get", "--raw", "/readyz")
		if out, err := n.kubeseed("status", "--wait-ready", "--timeout", "60s"); err != nil {
			t.Fatalf("node not ready after the containerd restart: %v\n%s", err, out)
		}
		if after := n.containerPID(t, "client"); after != before {
			t.Errorf("the client container was restarted (pid %d -> %d)", before, after)
		}
		log, _ := os.ReadFile(n.log)
		if !strings.Contains(string(log), "containerd exited unexpectedly") {
			t.Error("the containerd crash was not logged")
		}
	})

	t.Run("stop leaves nothing running and restart brings pods back", func(t *testing.T) {
		pid := n.cmd.Process.Pid
		procs := procfs.Descendants(pid)
		n.stop()
		for _, p := range procs[1:] {
			if syscall.Kill(p, 0) == nil && !zombie(p) {
				exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", p))
				t.Errorf("process %d (%s) still runs after stop", p, exe)
			}
		}
		if shims := processesRunning(n.path("bin", "containerd-shim-runc-v2")); len(shims) > 0 {
			t.Errorf("shims still running: %v", shims)
		}
		_ = filepath.WalkDir(n.dir, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.Type()&fs.ModeSocket != 0 {
				t.Errorf("stale socket %s", p)
			}
			return nil
		})
		imported := n.logCount("Imported a built-in image")
		if imported < 2 {
			t.Errorf("the first start logged %d built-in image imports, want pause and CoreDNS", imported)
		}
		n.start()
		if again := n.logCount("Imported a built-in image") - imported; again != 0 {
			t.Errorf("a warm start imported %d built-in images again; they were current", again)
		}
		n.waitFor("deployment web available after restart", "rollout", "status", "deployment/web", "--timeout=120s")
		n.waitFor("pod client ready after restart", "wait", "--for=condition=Ready", "pod/client", "--timeout=120s")
		body, err := n.retryGet("http://"+clusterIP+"/", 60*time.Second)
		if err != nil || !strings.HasPrefix(body, "web-") {
			t.Errorf("service after restart: %v %q", err, body)
		}
	})
}

// apply retries while the controller-manager has yet to create the
// namespace's default service account.
func (n *node) apply(manifest string) {
	n.t.Helper()
	var out []byte
	var err error
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(time.Second) {
		cmd := n.inNetns(stockKubectl, "--kubeconfig", n.path("credentials", "client.config"), "apply", "-f", "-")
		cmd.Stdin = strings.NewReader(manifest)
		if out, err = cmd.CombinedOutput(); err == nil {
			return
		}
	}
	n.t.Fatalf("kubectl apply: %v\n%s", err, out)
}

// waitFor runs a kubectl command until it succeeds (kubectl's own waits
// fail fast while objects do not exist yet).
func (n *node) waitFor(what string, args ...string) {
	n.t.Helper()
	var out string
	var err error
	for deadline := time.Now().Add(3 * time.Minute); time.Now().Before(deadline); time.Sleep(time.Second) {
		if out, err = n.kubectl(args...); err == nil {
			return
		}
	}
	desc, _ := n.kubectl("describe", "pods")
	n.dumpLog()
	n.t.Fatalf("%s: %v\n%s\n%s", what, err, out, desc)
}

// containerPID is the host PID of a pod's first container, via crictl-free
// kubectl exec: the pod reports its own PID namespace view, so read it from
// the kubelet's read-only API instead.
func (n *node) containerPID(t *testing.T, pod string) int {
	t.Helper()
	out, err := n.kubeseed("ctr", "tasks", "ls")
	if err != nil {
		t.Fatalf("ctr tasks ls: %v %s", err, out)
	}
	id, err := n.kubectl("get", "pod", pod, "-o", "jsonpath={.status.containerStatuses[0].containerID}")
	if err != nil {
		t.Fatal(err)
	}
	id = strings.TrimPrefix(id, "containerd://")
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == id {
			p, _ := strconv.Atoi(f[1])
			return p
		}
	}
	t.Fatalf("no task for container %s in:\n%s", id, out)
	return 0
}

func (n *node) containerdPIDOrZero() int {
	for _, p := range procfs.Descendants(n.cmd.Process.Pid)[1:] {
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", p))
		args := strings.Split(string(cmdline), "\x00")
		if len(args) > 1 && args[1] == "containerd" {
			return p
		}
	}
	return 0
}

func (n *node) containerdPID(t *testing.T) int {
	t.Helper()
	if p := n.containerdPIDOrZero(); p != 0 {
		return p
	}
	t.Fatal("no containerd child process")
	return 0
}

func processesRunning(exe string) []int {
	var out []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if target, err := os.Readlink("/proc/" + e.Name() + "/exe"); err == nil && strings.TrimSuffix(target, " (deleted)") == exe {
			out = append(out, p)
		}
	}
	return out
}

func (n *node) retryGet(url string, timeout time.Duration) (string, error) {
	c := n.httpClient(nil, 3*time.Second)
	defer c.CloseIdleConnections()
	var last error
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
		resp, err := c.Get(url)
		if err != nil {
			last = err
			continue
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			return string(body), nil
		}
		last = fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	return "", last
}

func freePort(t *testing.T) int {
	t.Helper()
	for p := 30000 + int(time.Now().UnixNano()%5000); p < 40000; p++ {
		if portFree(p) {
			return p
		}
	}
	t.Fatal("no free port")
	return 0
}

// selfSigned is a client certificate from a CA the node has never seen.
func selfSigned(t *testing.T) tls.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "system:masters-impostor", Organization: []string{"system:masters"}},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// zombie reports whether a process has exited and only awaits its reaper.
func zombie(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	rest := string(stat[strings.LastIndexByte(string(stat), ')')+2:])
	return strings.HasPrefix(rest, "Z") || strings.HasPrefix(rest, "X")
}

package e2e

import (
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/kubeseed/kubeseed/internal/images"
)

const dnsTestImage = "kubeseed.local/dnsclient:test"

// dnsClientArchive builds test/e2e/dnsclient statically into an image with
// busybox for sleep.
func dnsClientArchive(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "dnsclient")
	build := exec.Command("go", "build", "-ldflags", "-s -w", "-o", bin, "./dnsclient")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build dnsclient: %v\n%s", err, out)
	}
	client, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	busybox, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Fatalf("busybox-static is needed (apt-get install busybox-static): %v", err)
	}
	archive, err := images.BuildOCIArchive(images.Spec{Name: dnsTestImage, Files: []images.File{
		{Path: "/bin/dnsclient", Mode: 0o755, Data: client},
		{Path: "/bin/busybox", Mode: 0o755, Data: busybox},
		{Path: "/bin/sleep", Mode: fs.ModeSymlink | 0o777, Linkname: "busybox"},
		{Path: "/bin/sh", Mode: fs.ModeSymlink | 0o777, Linkname: "busybox"},
		{Path: "/bin/nslookup", Mode: fs.ModeSymlink | 0o777, Linkname: "busybox"},
	}, Cmd: []string{"/bin/sleep", "3600"}})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "dnsclient.tar")
	if err := os.WriteFile(path, archive, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

const dnsManifest = `
apiVersion: v1
kind: Namespace
metadata:
  name: other
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: echo
  namespace: other
spec:
  replicas: 2
  selector:
    matchLabels: {app: echo}
  template:
    metadata:
      labels: {app: echo}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: echo
        image: ` + dnsTestImage + `
        imagePullPolicy: Never
        ports:
        - containerPort: 8080
---
apiVersion: v1
kind: Service
metadata:
  name: echo
  namespace: other
spec:
  selector: {app: echo}
  ports:
  - port: 80
    targetPort: 8080
---
apiVersion: v1
kind: Service
metadata:
  name: echo-headless
  namespace: other
spec:
  clusterIP: None
  selector: {app: echo}
  ports:
  - port: 8080
---
apiVersion: v1
kind: Pod
metadata:
  name: dnsclient
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: dnsclient
    image: ` + dnsTestImage + `
    imagePullPolicy: Never
`

// resolve runs dnsclient in the client pod until it prints want (sorted
// addresses, one per line) or the deadline passes.
func (n *node) resolve(t *testing.T, name string, want []string) {
	t.Helper()
	sort.Strings(want)
	var out string
	var err error
	for deadline := time.Now().Add(90 * time.Second); time.Now().Before(deadline); time.Sleep(time.Second) {
		out, err = n.kubectl("exec", "dnsclient", "--", "/bin/dnsclient", name)
		if err == nil && strings.TrimSpace(out) == strings.Join(want, "\n") {
			return
		}
	}
	desc, _ := n.kubectl("describe", "pod", "dnsclient")
	events, _ := n.kubectl("get", "events", "-A")
	t.Errorf("resolve %s from a pod: %v, got %q, want %q\n%s\n%s", name, err, strings.TrimSpace(out), want, desc, events)
}

func (n *node) waitDNSReady(t *testing.T) {
	t.Helper()
	n.waitFor("coredns rolled out", "-n", "kube-system", "rollout", "status", "deployment/coredns", "--timeout=120s")
}

// TestDNS: CoreDNS is on by default and answers cluster names from pods,
// with least privilege; disable/enable dns switch it, the choice survives a
// restart, bad --upstream input changes nothing, and under RBAC it still
// resolves.
func TestDNS(t *testing.T) {
	n := newNode(t)
	n.start()
	n.mustKubeseed("images", "import", dnsClientArchive(t))
	n.waitDNSReady(t)
	n.apply(dnsManifest)
	n.waitFor("deployment echo available", "-n", "other", "rollout", "status", "deployment/echo", "--timeout=120s")
	n.waitFor("pod dnsclient ready", "wait", "--for=condition=Ready", "pod/dnsclient", "--timeout=120s")

	if ip, err := n.kubectl("-n", "kube-system", "get", "svc", "kube-dns", "-o", "jsonpath={.spec.clusterIP}"); err != nil || ip != "10.152.183.10" {
		t.Errorf("kube-dns Service IP %q (%v), want 10.152.183.10", ip, err)
	}
	if out := n.mustKubeseed("status"); !strings.Contains(out, "dns: enabled, Ready") {
		t.Errorf("status does not show DNS enabled and Ready:\n%s", out)
	}

	checkAll := func(t *testing.T) {
		n.resolve(t, "kubernetes.default.svc.cluster.local", []string{"10.152.183.1"})
		echoIP, err := n.kubectl("-n", "other", "get", "svc", "echo", "-o", "jsonpath={.spec.clusterIP}")
		if err != nil {
			t.Fatal(err, echoIP)
		}
		n.resolve(t, "echo.other", []string{echoIP})
		pods, err := n.kubectl("-n", "other", "get", "pods", "-l", "app=echo", "-o", "jsonpath={.items[*].status.podIP}")
		if err != nil || len(strings.Fields(pods)) != 2 {
			t.Fatalf("echo pod IPs %q: %v", pods, err)
		}
		n.resolve(t, "echo-headless.other.svc.cluster.local", strings.Fields(pods))
	}
	t.Run("resolves from a pod", checkAll)

	t.Run("least privilege", func(t *testing.T) {
		found := 0
		entries, _ := os.ReadDir("/proc")
		for _, e := range entries {
			comm, err := os.ReadFile(filepath.Join("/proc", e.Name(), "comm"))
			if err != nil || strings.TrimSpace(string(comm)) != "coredns" {
				continue
			}
			status, err := os.ReadFile(filepath.Join("/proc", e.Name(), "status"))
			if err != nil {
				continue
			}
			found++
			for _, line := range strings.Split(string(status), "\n") {
				f := strings.Fields(line)
				switch {
				case len(f) > 1 && f[0] == "Uid:" && f[1] == "0":
					t.Errorf("coredns pid %s runs as root", e.Name())
				case len(f) > 1 && (f[0] == "CapEff:" || f[0] == "CapPrm:") && f[1] != "0000000000000000":
					t.Errorf("coredns pid %s has capabilities: %s", e.Name(), line)
				case len(f) > 1 && f[0] == "NoNewPrivs:" && f[1] != "1":
					t.Errorf("coredns pid %s may gain privileges: %s", e.Name(), line)
				}
			}
		}
		if found == 0 {
			t.Error("no coredns process found")
		}
		out, err := n.kubectl("-n", "kube-system", "exec", "deploy/coredns", "--", "/coredns", "-version")
		if err != nil || !strings.Contains(out, "CoreDNS-1.") {
			t.Errorf("coredns -version in the pod: %v %q", err, out)
		}
	})

	t.Run("bad upstream changes nothing", func(t *testing.T) {
		cfg := n.path("config", "dns")
		before, _ := os.ReadFile(cfg)
		for _, bad := range []string{"not-an-ip", "8.8.8.8,300.1.1.1", "127.0.0.53", ""} {
			out, err := n.kubeseed("enable", "dns", "--upstream", bad)
			if err == nil || !strings.Contains(out, "--upstream") {
				t.Errorf("enable dns --upstream %q: err %v, output %q; want an error naming --upstream", bad, err, out)
			}
		}
		if out, err := n.kubeseed("enable", "rbac", "--upstream", "8.8.8.8"); err == nil || !strings.Contains(out, "takes no options") {
			t.Errorf("enable rbac --upstream: %v %q", err, out)
		}
		after, _ := os.ReadFile(cfg)
		if string(before) != string(after) {
			t.Errorf("%s changed by bad input:\n%s\n->\n%s", cfg, before, after)
		}
	})

	t.Run("under RBAC", func(t *testing.T) {
		n.mustKubeseed("enable", "rbac")
		// A new CoreDNS pod lists and watches with its ServiceAccount
		// under RBAC from the start.
		n.mustKubeseed("kubectl", "-n", "kube-system", "rollout", "restart", "deployment/coredns")
		n.waitDNSReady(t)
		n.apply(`
apiVersion: v1
kind: Service
metadata:
  name: after-rbac
  namespace: other
spec:
  selector: {app: echo}
  ports:
  - port: 81
`)
		ip, err := n.kubectl("-n", "other", "get", "svc", "after-rbac", "-o", "jsonpath={.spec.clusterIP}")
		if err != nil {
			t.Fatal(err, ip)
		}
		n.resolve(t, "after-rbac.other", []string{ip})
		checkAll(t)
	})

	t.Run("disable, restart, enable", func(t *testing.T) {
		out := n.mustKubeseed("disable", "dns")
		if !strings.Contains(out, "DNS disabled") {
			t.Errorf("disable dns: %q", out)
		}
		for _, obj := range []string{"deployment/coredns", "service/kube-dns", "configmap/coredns"} {
			if out, err := n.kubectl("-n", "kube-system", "get", obj); err == nil || !strings.Contains(out, "NotFound") {
				t.Errorf("%s after disable dns: %v %q", obj, err, out)
			}
		}
		if out := n.mustKubeseed("status"); !strings.Contains(out, "dns: disabled") {
			t.Errorf("status after disable:\n%s", out)
		}
		readies := n.logCount("node ready in")
		n.stop()
		n.start()
		// The daemon reports the node ready once the cluster objects,
		// the DNS addon's reconcile included, are done.
		n.waitLog("node ready in", readies+1, time.Minute)
		if out, err := n.kubectl("-n", "kube-system", "get", "deployment/coredns"); err == nil || !strings.Contains(out, "NotFound") {
			t.Errorf("coredns came back after a restart while disabled: %v %q", err, out)
		}
		out = n.mustKubeseed("enable", "dns", "--upstream", "192.0.2.53,2001:db8::53")
		if !strings.Contains(out, "DNS enabled") {
			t.Errorf("enable dns: %q", out)
		}
		if r, err := n.kubectl("-n", "kube-system", "get", "deployment/coredns", "-o", "jsonpath={.status.readyReplicas}"); err != nil || r != "1" {
			t.Errorf("coredns not Ready right after enable dns: %v %q", err, r)
		}
		corefile, err := n.kubectl("-n", "kube-system", "get", "configmap/coredns", "-o", "jsonpath={.data.Corefile}")
		if err != nil || !strings.Contains(corefile, "forward . 192.0.2.53 2001:db8::53") {
			t.Errorf("Corefile does not forward to the given upstreams: %v\n%s", err, corefile)
		}
		n.waitFor("pod dnsclient ready after restart", "wait", "--for=condition=Ready", "pod/dnsclient", "--timeout=120s")
		checkAll(t)
	})
}

package e2e

import (
	"crypto/tls"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kubeseed/kubeseed/internal/containerruntime"
	"github.com/kubeseed/kubeseed/internal/datadir"
	"github.com/kubeseed/kubeseed/internal/defaults"
	ksnode "github.com/kubeseed/kubeseed/internal/node"
)

// TestBadInputChangesNothing corrupts one user-editable input at a time in
// a copy of a bootstrapped data dir: start must fail with a message naming
// the file and line (or the port and service), and leave every file as it was.
func TestBadInputChangesNothing(t *testing.T) {
	base := newNode(t)
	base.start()
	base.stop()

	appendLine := func(rel, line string) func(t *testing.T, n *node) {
		return func(t *testing.T, n *node) {
			f, err := os.OpenFile(n.path(rel), os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := f.WriteString(line + "\n"); err != nil {
				t.Fatal(err)
			}
		}
	}
	firstTokenLine := func(t *testing.T, n *node) string {
		data, err := os.ReadFile(n.path("credentials", "known_tokens.csv"))
		if err != nil {
			t.Fatal(err)
		}
		return strings.SplitN(string(data), "\n", 2)[0]
	}
	cases := []struct {
		name   string
		break_ func(t *testing.T, n *node)
		want   []string
	}{
		{"malformed csr.conf.template", appendLine("certs/csr.conf.template", "DNS.7 mydomain.com"),
			[]string{"csr.conf.template:"}},
		{"bad SAN in csr.conf.template", appendLine("certs/csr.conf.template", "IP.9 = 300.1.1.1"),
			[]string{"csr.conf.template:", "300.1.1.1"}},
		{"token file with a wrong column count", appendLine("credentials/known_tokens.csv", "onlyonecolumn"),
			[]string{"known_tokens.csv:2:", "column"}},
		{"token file with an empty token", appendLine("credentials/known_tokens.csv", ",bob,bob"),
			[]string{"known_tokens.csv:2:", "empty token"}},
		{"token file with a duplicate token", func(t *testing.T, n *node) {
			appendLine("credentials/known_tokens.csv", firstTokenLine(t, n))(t, n)
		}, []string{"known_tokens.csv:2:", "duplicate"}},
		{"unknown flag in args/kube-apiserver", appendLine("args/kube-apiserver", "--no-such-flag=1"),
			[]string{"args/kube-apiserver:", "--no-such-flag", "unknown flag"}},
		{"unknown flag in args/etcd", appendLine("args/etcd", "--no-such-etcd-flag"),
			[]string{"args/etcd:", "--no-such-etcd-flag", "unknown flag"}},
		{"bad value in args/kube-scheduler", appendLine("args/kube-scheduler", "--secure-port=not-a-port"),
			[]string{"args/kube-scheduler:", "--secure-port"}},
		{"containerd socket path is not a socket", func(t *testing.T, n *node) {
			if err := os.WriteFile(n.path("run", "containerd.sock"), []byte("not a socket"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, []string{"containerd.sock exists and is not a socket", "args/containerd"}},
		{"CNI plugins missing", appendLine("args/containerd", "--cni-bin-dir=/nonexistent/cni"),
			[]string{"CNI plugins", "/nonexistent/cni", "apt-get install containernetworking-plugins"}},
		{"runc missing", func(t *testing.T, n *node) {
			n.extraEnv = append(n.extraEnv, "PATH=/nonexistent")
		}, []string{"runc is not installed", "apt-get install runc"}},
		{"unknown flag in args/kubelet", appendLine("args/kubelet", "--read-only-port=10255"),
			[]string{"args/kubelet:", "--read-only-port", "unknown flag"}},
		{"password file with an empty user", func(t *testing.T, n *node) {
			if err := os.WriteFile(n.path("credentials", "basic_auth.csv"), []byte("pw,alice,1\npw2,,2\n"), 0o600); err != nil {
				t.Fatal(err)
			}
		}, []string{"basic_auth.csv:2:", "empty user"}},
		{"public bind in args/auth-webhook", appendLine("args/auth-webhook", "--bind-address=0.0.0.0"),
			[]string{"args/auth-webhook:", "must be a loopback IP"}},
		{"apiserver port in use", func(t *testing.T, n *node) {
			ln, err := n.listen("tcp", "0.0.0.0:"+strconv.Itoa(n.port("kube-apiserver")))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { ln.Close() })
		}, []string{"port " + strconv.Itoa(base.port("kube-apiserver")), "kube-apiserver", "not free"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			n := newCopyNode(t, base)
			if out, err := exec.Command("cp", "-a", base.dir, n.dir).CombinedOutput(); err != nil {
				t.Fatalf("copy data dir: %v %s", err, out)
			}
			c.break_(t, n)
			before := hashTree(t, dataFiles(t, n)...)
			n.startNoWait()
			log, err := n.waitExit(60 * time.Second)
			if err == nil {
				t.Fatalf("start succeeded with %s", c.name)
			}
			for _, w := range c.want {
				if !strings.Contains(log, w) {
					t.Errorf("the error lacks %q:\n%s", w, log)
				}
			}
			after := hashTree(t, dataFiles(t, n)...)
			for f, h := range before {
				if after[f] != h {
					t.Errorf("%s changed", f)
				}
			}
			if len(after) != len(before) {
				t.Errorf("files were added or removed: %d before, %d after", len(before), len(after))
			}
		})
	}
}

// TestReset checks that reset asks first, refuses while the node runs, and
// then deletes the data dir.
func TestReset(t *testing.T) {
	n := newNode(t)
	n.start()
	// CoreDNS's pod puts a sandbox on the pod network.
	n.waitFor("coredns rolled out", "-n", "kube-system", "rollout", "status", "deployment/coredns", "--timeout=120s")
	if out, err := n.kubeseed("reset", "--yes"); err == nil || !strings.Contains(out, "kubeseed stop") {
		t.Errorf("reset of a running node: %v\n%s", err, out)
	}
	n.stop()
	layout, err := datadir.New(n.dir)
	if err != nil {
		t.Fatal(err)
	}
	names, err := ksnode.HostNamesOf(layout)
	if err != nil {
		t.Fatal(err)
	}
	left := n.hostLeftovers(layout, names)
	for _, want := range []string{"cgroup", "iptables", "interface"} {
		if !slices.ContainsFunc(left, func(l string) bool { return strings.HasPrefix(l, want) }) {
			t.Errorf("a stopped node left no %s on the host (the README says it does): %v", want, left)
		}
	}
	cmd := n.command("reset")
	cmd.Stdin = strings.NewReader("no\n")
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "nothing was deleted") {
		t.Errorf("reset answered 'no': %v\n%s", err, out)
	}
	if _, err := os.Stat(n.path("certs", "ca.crt")); err != nil {
		t.Fatalf("reset answered 'no' deleted files: %v", err)
	}
	cmd = n.command("reset")
	cmd.Stdin = strings.NewReader("yes\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("reset: %v\n%s", err, out)
	}
	if _, err := os.Stat(n.dir); !os.IsNotExist(err) {
		t.Errorf("data dir still there after reset: %v", err)
	}
	if left := n.hostLeftovers(layout, names); len(left) > 0 {
		t.Errorf("reset left on the host: %v", left)
	}
}

// hostLeftovers lists what a node leaves on the host, as the README's
// "What a node leaves on the host" names it, looking for its network
// state in its network namespace. names come from the node's files, read
// before reset deletes them.
func (n *node) hostLeftovers(l datadir.Layout, names defaults.HostNames) []string {
	var left []string
	cgroups, _ := filepath.Glob("/sys/fs/cgroup/*" + names.CgroupRoot)
	if _, err := os.Stat("/sys/fs/cgroup" + names.CgroupRoot); err == nil {
		cgroups = append(cgroups, "/sys/fs/cgroup"+names.CgroupRoot)
	}
	for _, c := range cgroups {
		left = append(left, "cgroup "+c)
	}
	for _, chain := range []string{"KUBE-SERVICES", "KUBE-KUBELET-CANARY"} {
		if n.inNetns("iptables", "-t", "nat", "-S", chain).Run() == nil {
			left = append(left, "iptables chain "+chain)
		}
	}
	if n.inNetns("ip", "link", "show", names.Bridge).Run() == nil {
		left = append(left, "interface "+names.Bridge)
	}
	results, _ := filepath.Glob(filepath.Join(ksnode.CNIResultsDir, names.Network+"-*"))
	for _, r := range results {
		left = append(left, "CNI result "+r)
	}
	if shimDir := containerruntime.ShimSocketDir(l); fsExists(shimDir) {
		left = append(left, "shim socket dir "+shimDir)
	}
	links, _ := filepath.Glob(ksnode.ContainerLogLinksDir + "/*.log")
	for _, link := range links {
		if target, err := os.Readlink(link); err == nil && strings.HasPrefix(target, names.PodLogsDir+"/") {
			left = append(left, "container log link "+link)
		}
	}
	return left
}

func fsExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// dataFiles is every top-level entry of the data dir but run/, whose PID
// file is rewritten by every start attempt.
func dataFiles(t *testing.T, n *node) []string {
	entries, err := os.ReadDir(n.dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if e.Name() != "run" {
			out = append(out, filepath.Join(n.dir, e.Name()))
		}
	}
	return out
}

// TestDefaultPorts runs one node on the real default ports, in a network
// namespace of its own so a node the user runs on the host does not stop
// it, and audits them: each port listens on its declared interface, and
// the loopback-only ones are not reachable on the node's default IP.
func TestDefaultPorts(t *testing.T) {
	n := newNode(t)
	n.start()
	n.auditPorts()
	ip := n.defaultIP()
	for name, p := range defaultPorts {
		conn, err := n.dialTimeout("tcp", net.JoinHostPort(ip, strconv.Itoa(p)), 2*time.Second)
		if loopbackOnly[name] {
			if err == nil {
				conn.Close()
				t.Errorf("%s (%d) is reachable on the host IP %s; it must be loopback only", name, p, ip)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s (%d) is not reachable on the host IP %s: %v", name, p, ip, err)
		} else {
			conn.Close()
		}
	}
	t.Run("every TLS listener: TLS 1.2 or later, AEAD suites only", func(t *testing.T) {
		for _, c := range []struct{ service, ca, client string }{
			{"kube-apiserver", "ca", ""}, {"kube-controller-manager", "ca", ""}, {"kube-scheduler", "ca", ""},
			{"kubelet", "ca", ""}, {"etcd", "etcd-ca", "apiserver-etcd-client"}, {"etcd-peer", "etcd-ca", "etcd-peer"},
			{"auth-webhook", "ca", "apiserver-auth-webhook-client"}, {"cluster-agent", "ca", ""},
		} {
			addr := "127.0.0.1:" + strconv.Itoa(n.port(c.service))
			dial := func(min, max uint16, suites []uint16) error {
				cfg := n.tlsConfig(c.ca, c.client)
				cfg.InsecureSkipVerify = true // the protocol is under test here, not the chain
				cfg.MinVersion, cfg.MaxVersion, cfg.CipherSuites = min, max, suites
				conn, err := n.tlsDial(addr, cfg)
				if err == nil {
					conn.Close()
				}
				return err
			}
			if err := dial(tls.VersionTLS10, tls.VersionTLS11, nil); err == nil {
				t.Errorf("%s accepts TLS 1.1", c.service)
			}
			cbc := []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA}
			if err := dial(tls.VersionTLS12, tls.VersionTLS12, cbc); err == nil {
				t.Errorf("%s accepts a CBC suite", c.service)
			}
			if err := dial(tls.VersionTLS12, tls.VersionTLS12, []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}); err != nil {
				t.Errorf("%s refuses TLS 1.2 with AES-GCM: %v", c.service, err)
			}
			if err := dial(tls.VersionTLS13, tls.VersionTLS13, nil); err != nil {
				t.Errorf("%s refuses TLS 1.3: %v", c.service, err)
			}
		}
	})
	n.stop()

	// Upstream's way to turn the kubelet's optional ports off.
	kubeletYAML := n.path("args", "kubelet.yaml")
	data, err := os.ReadFile(kubeletYAML)
	if err != nil {
		t.Fatal(err)
	}
	edited := strings.Replace(strings.Replace(string(data), "readOnlyPort: 10255", "readOnlyPort: 0", 1), "healthzPort: 10248", "healthzPort: 0", 1)
	if edited == string(data) || strings.Contains(edited, "10255") || strings.Contains(edited, "10248") {
		t.Fatalf("kubelet.yaml lacks the default ports:\n%s", data)
	}
	if err := os.WriteFile(kubeletYAML, []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	n.start()
	n.auditPorts("kubelet-readonly", "kubelet-healthz")
	out := n.mustKubeseed("status")
	for _, svc := range []string{"kubelet-readonly", "kubelet-healthz"} {
		if !regexp.MustCompile(`(?m)^` + svc + `\s+off\s`).MatchString(out) {
			t.Errorf("status does not show %s off:\n%s", svc, out)
		}
	}
	n.stop()
}

package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// servedCert is the leaf certificate presented on addr in the node's
// network namespace, verified against cfg.
func (n *node) servedCert(addr string, cfg *tls.Config) (*x509.Certificate, error) {
	conn, err := n.tlsDial(addr, cfg)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0], nil
}

func (n *node) apiAddr() string { return fmt.Sprintf("127.0.0.1:%d", n.port("kube-apiserver")) }

func (n *node) servedAPICert() *x509.Certificate {
	n.t.Helper()
	c, err := n.servedCert(n.apiAddr(), n.tlsConfig("ca", ""))
	if err != nil {
		n.t.Fatalf("TLS to kube-apiserver: %v", err)
	}
	return c
}

// waitServed polls until cond holds for the certificate served on addr.
func (n *node) waitServed(t *testing.T, addr string, cfg *tls.Config, timeout time.Duration, what string, cond func(c *x509.Certificate) bool) *x509.Certificate {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		c, err := n.servedCert(addr, cfg)
		if err == nil && cond(c) {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s (last: %v)", what, timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func hasIP(c *x509.Certificate, ip string) bool {
	return slices.ContainsFunc(c.IPAddresses, func(x net.IP) bool { return x.Equal(net.ParseIP(ip)) })
}

// alive fails the test if the node's process (which is the apiserver's:
// the control plane runs in-process) has exited or changed.
func (n *node) assertSameProcess(pid int) {
	n.t.Helper()
	if n.cmd == nil || n.cmd.Process.Pid != pid {
		n.t.Fatalf("the node's process changed")
	}
	select {
	case err := <-n.waited:
		n.waited <- err
		n.t.Fatalf("the node's process (pid %d) exited: %v", pid, err)
	default:
	}
	out := n.mustKubeseed("status")
	if !strings.Contains(out, fmt.Sprintf("(pid %d)", pid)) {
		n.t.Fatalf("status names another pid than %d:\n%s", pid, out)
	}
}

func appendFile(t *testing.T, path, line string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(line + "\n"); err != nil {
		t.Fatal(err)
	}
}

func (n *node) ipCmd(t *testing.T, args ...string) {
	t.Helper()
	if out, err := n.inNetns("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v %s", strings.Join(args, " "), err, out)
	}
}

// veth creates a veth pair named a/b with ip on a, in the node's network
// namespace, removed at cleanup.
func (n *node) veth(t *testing.T, a, b, ip string) (remove func()) {
	t.Helper()
	n.ipCmd(t, "link", "add", a, "type", "veth", "peer", "name", b)
	removed := false
	remove = func() {
		if !removed {
			removed = true
			_ = n.inNetns("ip", "link", "del", a).Run()
		}
	}
	t.Cleanup(remove)
	n.ipCmd(t, "addr", "add", ip+"/32", "dev", a)
	n.ipCmd(t, "link", "set", a, "up")
	n.ipCmd(t, "link", "set", b, "up")
	return remove
}

// TestCertificatesOnALiveNode refreshes, undoes and re-renders certificates
// of a running node, and checks that the components take them up without
// a restart.
func TestCertificatesOnALiveNode(t *testing.T) {
	n := newNode(t)
	n.extraEnv = []string{"KUBESEED_HOST_IP_POLL_INTERVAL=500ms"}
	n.start()
	pid := n.cmd.Process.Pid
	template := n.path("certs", "csr.conf.template")

	// mydomain.com resolves to the node, for this client only.
	port := n.port("kube-apiserver")
	myDomainClient := func() *http.Client {
		cfg := n.tlsConfig("ca", "")
		return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
			TLSClientConfig: cfg,
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				if addr == net.JoinHostPort("mydomain.com", strconv.Itoa(port)) {
					addr = n.apiAddr()
				}
				return n.dialContext(ctx, network, addr)
			},
		}}
	}
	myDomainURL := fmt.Sprintf("https://mydomain.com:%d/readyz", port)

	t.Run("DNS.6 = mydomain.com is served without a restart", func(t *testing.T) {
		// A pod of the built-in pause image, to show the refresh restarts nothing.
		n.apply(`{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "steady"}, "spec": {"terminationGracePeriodSeconds": 0,
"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10", "imagePullPolicy": "Never"}]}}`)
		n.waitFor("pod steady ready", "wait", "--for=condition=Ready", "pod/steady", "--timeout=120s")
		podState := func() string {
			out, err := n.kubectl("get", "pod", "steady", "-o", "jsonpath={.status.containerStatuses[0].containerID} {.status.containerStatuses[0].restartCount}")
			if err != nil {
				t.Fatalf("pod state: %v %s", err, out)
			}
			return out
		}
		podBefore := podState()
		if _, err := myDomainClient().Get(myDomainURL); err == nil || !strings.Contains(err.Error(), "mydomain.com") {
			t.Fatalf("before the refresh, a client for mydomain.com must fail verification; got %v", err)
		}
		oldKey, _ := os.ReadFile(n.path("certs", "server.key"))
		appendFile(t, template, "DNS.6 = mydomain.com")
		out := n.mustKubeseed("refresh-certs", "--cert", "server.crt")
		if !strings.Contains(out, "mydomain.com") || !strings.Contains(out, "without a restart") || !strings.Contains(out, "certs-backup/") {
			t.Errorf("refresh-certs output:\n%s", out)
		}
		resp, err := myDomainClient().Get(myDomainURL)
		if err != nil {
			t.Fatalf("a TLS client resolving mydomain.com to the node, trusting ca.crt: %v", err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("GET %s: %d", myDomainURL, resp.StatusCode)
		}
		newKey, _ := os.ReadFile(n.path("certs", "server.key"))
		if string(oldKey) != string(newKey) {
			t.Error("server.key changed")
		}
		n.assertSameProcess(pid)
		if out, err := n.kubectl("get", "namespaces"); err != nil {
			t.Errorf("kubectl after the refresh: %v %s", err, out)
		}
		if after := podState(); after != podBefore || !strings.HasSuffix(after, " 0") {
			t.Errorf("the pod was restarted: %q before, %q after", podBefore, after)
		}
	})

	t.Run("malformed template changes nothing", func(t *testing.T) {
		before := hashTree(t, n.path("certs"), n.path("credentials"))
		served := n.servedAPICert()
		data, _ := os.ReadFile(template)
		lines := strings.Count(string(data), "\n")
		appendFile(t, template, "DNS.7 mydomain.org")
		defer os.WriteFile(template, data, 0o600)
		out, err := n.kubeseed("refresh-certs", "--cert", "server.crt")
		if want := fmt.Sprintf("csr.conf.template:%d: expected \"key = value\"", lines+1); err == nil || !strings.Contains(out, want) {
			t.Fatalf("refresh with a malformed template: %v, want %q in:\n%s", err, want, out)
		}
		after := hashTree(t, n.path("certs"), n.path("credentials"))
		for f, h := range before {
			if after[f] != h && filepath.Base(f) != "csr.conf.template" {
				t.Errorf("%s changed", f)
			}
		}
		if !n.servedAPICert().Equal(served) {
			t.Error("the served certificate changed")
		}
		n.assertSameProcess(pid)
	})

	t.Run("undo restores byte-identical files", func(t *testing.T) {
		before := hashTree(t, n.path("certs"), n.path("credentials"))
		served := n.servedAPICert()
		n.mustKubeseed("refresh-certs", "--cert", "front-proxy-client.crt")
		n.mustKubeseed("refresh-certs", "--cert", "server.crt")
		if n.servedAPICert().Equal(served) {
			t.Fatal("the refresh did not change the served certificate")
		}
		n.mustKubeseed("refresh-certs", "--undo")
		out := n.mustKubeseed("refresh-certs", "--undo")
		if !strings.Contains(out, "restored") {
			t.Errorf("undo output:\n%s", out)
		}
		after := hashTree(t, n.path("certs"), n.path("credentials"))
		if len(after) != len(before) {
			t.Errorf("%d files before, %d after", len(before), len(after))
		}
		for f, h := range before {
			if after[f] != h {
				t.Errorf("%s differs after undo", f)
			}
		}
		n.waitServed(t, n.apiAddr(), n.tlsConfig("ca", ""), 30*time.Second, "the restored server.crt is served",
			func(c *x509.Certificate) bool { return c.Equal(served) })
		n.assertSameProcess(pid)
	})

	t.Run("controller-manager, scheduler and kubelet take up refreshed certificates without a restart", func(t *testing.T) {
		for _, c := range []struct{ cert, service string }{
			{"kube-controller-manager", "kube-controller-manager"},
			{"kube-scheduler", "kube-scheduler"},
			{"kubelet-serving", "kubelet"},
		} {
			addr := fmt.Sprintf("127.0.0.1:%d", n.port(c.service))
			before, err := n.servedCert(addr, n.tlsConfig("ca", ""))
			if err != nil {
				t.Fatalf("TLS to %s on %s: %v", c.service, addr, err)
			}
			n.mustKubeseed("refresh-certs", "--cert", c.cert+".crt")
			n.waitServed(t, addr, n.tlsConfig("ca", ""), 30*time.Second, c.service+" serves the refreshed "+c.cert+".crt",
				func(x *x509.Certificate) bool { return x.SerialNumber.Cmp(before.SerialNumber) != 0 })
		}
		n.assertSameProcess(pid)
		n.waitFor("node still Ready", "wait", "--for=condition=Ready", "node", "--all", "--timeout=30s")
	})

	t.Run("check with an injected clock", func(t *testing.T) {
		out := n.mustKubeseed("refresh-certs", "--check")
		if !strings.Contains(out, "every certificate has at least 30 days left") {
			t.Errorf("--check now:\n%s", out)
		}
		server := n.servedAPICert()
		near := server.NotAfter.Add(-10*24*time.Hour - time.Hour).UTC().Format(time.RFC3339)
		cmd := n.command("--test-hooks", "refresh-certs", "--check")
		cmd.Env = append(cmd.Env, "KUBESEED_TEST_NOW="+near)
		got, err := cmd.CombinedOutput()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 1 {
			t.Fatalf("--check 10 days before expiry: exit %v, want 1\n%s", err, got)
		}
		for _, line := range strings.Split(string(got), "\n") {
			f := strings.Fields(line)
			if len(f) == 6 && f[0] == "server.crt" && f[5] != "10" {
				t.Errorf("server.crt line %q, want 10 days left", line)
			}
		}
		if !strings.Contains(string(got), "server.crt (10 days)") || !strings.Contains(string(got), "fewer than 30 days left") {
			t.Errorf("--check output:\n%s", got)
		}
		cmd = n.command("--test-hooks", "refresh-certs", "--check", "--days", "5")
		cmd.Env = append(cmd.Env, "KUBESEED_TEST_NOW="+near)
		if got, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("--check --days 5: %v\n%s", err, got)
		}
	})

	t.Run("host IP change re-renders SANs", func(t *testing.T) {
		const ip = "198.51.100.7"
		remove := n.veth(t, "kst0", "kst1", ip)
		n.waitServed(t, n.apiAddr(), n.tlsConfig("ca", ""), 30*time.Second, "kube-apiserver serves a certificate with "+ip,
			func(c *x509.Certificate) bool { return hasIP(c, ip) })
		etcdAddr := fmt.Sprintf("127.0.0.1:%d", n.port("etcd"))
		n.waitServed(t, etcdAddr, n.tlsConfig("etcd-ca", "apiserver-etcd-client"), 10*time.Second, "etcd serves a certificate with "+ip,
			func(c *x509.Certificate) bool { return hasIP(c, ip) })
		n.assertSameProcess(pid)
		if out := n.mustKubeseed("status"); !strings.Contains(out, "host IPs changed") || !strings.Contains(out, ip) {
			t.Errorf("status does not report the change:\n%s", out)
		}

		// A CNI-named interface is not a host IP: nothing is re-issued.
		before := n.servedAPICert()
		n.veth(t, "cni-kst0", "cni-kst1", "198.51.100.8")
		time.Sleep(4 * time.Second) // 8 polls
		if c := n.servedAPICert(); hasIP(c, "198.51.100.8") {
			t.Errorf("server.crt took the address of a CNI interface")
		} else if !c.Equal(before) {
			data, _ := os.ReadFile(n.log)
			if strings.Contains(string(data), "198.51.100.8") {
				t.Errorf("the node reacted to a CNI interface")
			}
		}

		remove()
		n.waitServed(t, n.apiAddr(), n.tlsConfig("ca", ""), 30*time.Second, "kube-apiserver drops "+ip,
			func(c *x509.Certificate) bool { return !hasIP(c, ip) })
		n.assertSameProcess(pid)
	})

	t.Run("CA refresh is refused while running", func(t *testing.T) {
		before := hashTree(t, n.path("certs"), n.path("credentials"))
		out, err := n.kubeseed("refresh-certs", "--cert", "ca.crt")
		if err == nil || !strings.Contains(out, "kubeseed stop") {
			t.Fatalf("CA refresh on a running node: %v\n%s", err, out)
		}
		after := hashTree(t, n.path("certs"), n.path("credentials"))
		for f, h := range before {
			if after[f] != h {
				t.Errorf("%s changed", f)
			}
		}
	})
	if out, err := n.kubectl("get", "namespaces"); err != nil {
		t.Errorf("kubectl at the end: %v %s", err, out)
	}
}

// TestAutomaticRenewal runs a node whose renewal threshold exceeds every
// leaf's lifetime, so it renews on every check (every 2s): kubectl must
// keep working throughout, and the apiserver keep its process.
func TestAutomaticRenewal(t *testing.T) {
	n := newNode(t)
	n.extraEnv = []string{"KUBESEED_CERT_RENEW_DAYS=400", "KUBESEED_CERT_CHECK_INTERVAL=2s"}
	n.start()
	pid := n.cmd.Process.Pid
	serials := map[string]bool{}
	etcdSerials := map[string]bool{}
	etcdAddr := fmt.Sprintf("127.0.0.1:%d", n.port("etcd"))
	deadline := time.Now().Add(16 * time.Second)
	for time.Now().Before(deadline) {
		if out, err := n.kubectl("get", "namespaces", "-o", "name"); err != nil || !strings.Contains(out, "namespace/default") {
			t.Fatalf("kubectl during renewals: %v\n%s", err, out)
		}
		serials[n.servedAPICert().SerialNumber.String()] = true
		if c, err := n.servedCert(etcdAddr, n.tlsConfig("etcd-ca", "apiserver-etcd-client")); err != nil {
			t.Fatalf("etcd during renewals: %v", err)
		} else {
			etcdSerials[c.SerialNumber.String()] = true
		}
		time.Sleep(300 * time.Millisecond)
	}
	t.Logf("served serials in 16s: apiserver %d, etcd %d", len(serials), len(etcdSerials))
	if len(serials) < 3 || len(etcdSerials) < 3 {
		t.Errorf("served serials: apiserver %d, etcd %d; want at least 3 each (renewed every 2s)", len(serials), len(etcdSerials))
	}
	n.assertSameProcess(pid)
	out := n.mustKubeseed("status")
	for _, want := range []string{"less than 400 days left", "checking every 2s", "at the next check", "last renewed", "admin.crt"} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	log, _ := os.ReadFile(n.log)
	if !strings.Contains(string(log), `"Renewed certificate" logger="cert-renewal" cert="server.crt"`) {
		t.Error("the log does not record the renewals")
	}
	entries, _ := os.ReadDir(n.path("certs-backup"))
	if len(entries) == 0 || len(entries) > 10 {
		t.Errorf("%d backups; want 1 to 10 (older ones pruned)", len(entries))
	}
	// The in-process clients re-read their certificates: components stay healthy.
	if out, err := n.kubeseed("status", "--wait-ready", "--timeout", "30s"); err != nil {
		t.Errorf("node not healthy after renewals: %v\n%s", err, out)
	}
}

// TestCARefresh replaces the cluster CA of a stopped node and checks the
// rewritten client.config works and the old one no longer does; undo then
// restores every file byte for byte.
func TestCARefresh(t *testing.T) {
	n := newNode(t)
	n.start()
	oldCfg := filepath.Join(t.TempDir(), "old.config")
	data, err := os.ReadFile(n.path("credentials", "client.config"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(oldCfg, data, 0o600); err != nil {
		t.Fatal(err)
	}
	kubectlWith := func(cfg string) (string, error) {
		out, err := n.inNetns(stockKubectl, "--kubeconfig", cfg, "--cache-dir", t.TempDir(), "get", "namespaces").CombinedOutput()
		return string(out), err
	}
	// A user's kubeconfig, where add-user writes it, follows the CA.
	n.mustKubeseed("add-user", "carol")
	carol := n.path("credentials", "users", "carol.config")
	n.stop()
	before := hashTree(t, n.path("certs"), n.path("credentials"))

	out := n.mustKubeseed("refresh-certs", "--cert", "ca.crt")
	for _, want := range []string{"issued ca.crt", "issued server.crt", "issued admin.crt", "rewrote client.config", "users/carol.config", "kubeseed start"} {
		if !strings.Contains(out, want) {
			t.Errorf("refresh-certs --cert ca.crt output lacks %q:\n%s", want, out)
		}
	}
	n.start()
	if out, err := n.kubectl("get", "namespaces"); err != nil {
		t.Errorf("kubectl with the new client.config: %v\n%s", err, out)
	}
	if out, err := kubectlWith(oldCfg); err == nil {
		t.Errorf("a client.config from before the CA refresh still works:\n%s", out)
	}
	if out, err := kubectlWith(carol); err != nil {
		t.Errorf("%s after the CA refresh: %v\n%s", carol, err, out)
	}
	n.stop()

	out = n.mustKubeseed("refresh-certs", "--undo")
	if !strings.Contains(out, "restored ca.crt") {
		t.Errorf("undo output:\n%s", out)
	}
	after := hashTree(t, n.path("certs"), n.path("credentials"))
	for f, h := range before {
		if after[f] != h {
			t.Errorf("%s is not byte-identical after undo", f)
		}
	}
	n.start()
	if out, err := kubectlWith(oldCfg); err != nil {
		t.Errorf("the original client.config after undo: %v\n%s", err, out)
	}
}

// caDir writes a CA for `refresh-certs CA_DIR`; mutate may spoil it.
func caDir(t *testing.T, mutate func(c *x509.Certificate), keyFor func(k *ecdsa.PrivateKey) *ecdsa.PrivateKey) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "my-corp-ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(3 * 365 * 24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	if mutate != nil {
		mutate(tmpl)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "ca.crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if keyFor != nil {
		key = keyFor(key)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "ca.key"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestInstallOwnCA refuses unusable CA dirs without changing anything, then
// installs a good one and runs the node on it.
func TestInstallOwnCA(t *testing.T) {
	n := newNode(t)
	n.start()
	n.stop()
	otherKey := func(*ecdsa.PrivateKey) *ecdsa.PrivateKey {
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		return k
	}
	bad := []struct {
		name string
		dir  string
		want string
	}{
		{"key does not match", caDir(t, nil, otherKey), "ca.key does not match"},
		{"not a CA", caDir(t, func(c *x509.Certificate) { c.IsCA = false; c.KeyUsage = x509.KeyUsageDigitalSignature }, nil), "is not a CA certificate"},
		{"expired", caDir(t, func(c *x509.Certificate) {
			c.NotBefore, c.NotAfter = time.Now().Add(-48*time.Hour), time.Now().Add(-time.Hour)
		}, nil), "expired on"},
		{"not a directory", "/nonexistent-ca-dir", "is not a directory"},
	}
	before := hashTree(t, n.path("certs"), n.path("credentials"))
	for _, c := range bad {
		t.Run(c.name, func(t *testing.T) {
			out, err := n.kubeseed("refresh-certs", c.dir)
			if err == nil || !strings.Contains(out, c.want) {
				t.Fatalf("refresh-certs %s: %v, want %q in:\n%s", c.dir, err, c.want, out)
			}
			if !strings.Contains(out, "nothing was changed") && c.name != "not a directory" {
				t.Errorf("the error does not say nothing changed:\n%s", out)
			}
			after := hashTree(t, n.path("certs"), n.path("credentials"))
			if len(after) != len(before) {
				t.Errorf("files added or removed")
			}
			for f, h := range before {
				if after[f] != h {
					t.Errorf("%s changed", f)
				}
			}
			if _, err := os.Stat(n.path("certs-backup")); !os.IsNotExist(err) {
				t.Errorf("a refused install made a backup")
			}
		})
	}

	good := caDir(t, nil, nil)
	n.mustKubeseed("refresh-certs", good)
	want, _ := os.ReadFile(filepath.Join(good, "ca.crt"))
	got, _ := os.ReadFile(n.path("certs", "ca.crt"))
	if string(want) != string(got) {
		t.Error("certs/ca.crt is not the installed CA")
	}
	n.start()
	if out, err := n.kubectl("get", "namespaces"); err != nil {
		t.Errorf("kubectl on the installed CA: %v\n%s", err, out)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(want)
	if _, err := n.servedCert(n.apiAddr(), &tls.Config{RootCAs: pool}); err != nil {
		t.Errorf("the apiserver's certificate does not chain to the installed CA: %v", err)
	}
}

// TestRefreshKilledAtEveryPoint kills `refresh-certs --cert ca.crt` (with
// SIGKILL, from a fault-injection hook) after each of its file operations.
// The next refresh-certs must find the old set or the new set, never a mix,
// and the node must start on it.
func TestRefreshKilledAtEveryPoint(t *testing.T) {
	base := newNode(t)
	base.start()
	base.stop()
	old := relHashes(t, base)
	var sawOld, sawNew bool
	var newCopy *node
	for k := 1; ; k++ {
		if k > 200 {
			t.Fatal("the refresh never completed")
		}
		// Offline copies: refresh-certs of a stopped node opens no socket.
		n := newHostNode(t, 0)
		copyDataDir(t, base, n)
		cmd := n.command("--test-hooks", "refresh-certs", "--cert", "ca.crt")
		cmd.Env = append(cmd.Env, "KUBESEED_FAULT_AFTER_WRITES="+strconv.Itoa(k))
		out, err := cmd.CombinedOutput()
		if err == nil {
			if !sawOld || !sawNew {
				t.Fatalf("kills never left both outcomes (old %v, new %v)", sawOld, sawNew)
			}
			t.Logf("the CA refresh does %d file operations; it was killed after each", k-1)
			break
		}
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != -1 || !strings.Contains(string(out), "killing myself") {
			t.Fatalf("kill after op %d: %v\n%s", k, err, out)
		}
		// The next refresh-certs recovers; --check then reads a whole set.
		if out, err := n.kubeseed("refresh-certs", "--check"); err != nil {
			t.Fatalf("after a kill at op %d, --check: %v\n%s", k, err, out)
		}
		now := relHashes(t, n)
		if equalMaps(now, old) {
			sawOld = true
			continue
		}
		sawNew = true
		assertNewCASet(t, n, k)
		if newCopy == nil {
			newCopy = n
		}
	}
	if newCopy != nil {
		started := newCopyNode(t, base)
		copyDataDir(t, newCopy, started)
		started.start()
		if out, err := started.kubectl("get", "namespaces"); err != nil {
			t.Errorf("kubectl on a set completed by recovery: %v\n%s", err, out)
		}
	}
}

// copyDataDir copies everything but the datastore (var/), which a refresh
// does not touch; a start makes a fresh one.
func copyDataDir(t *testing.T, from, to *node) {
	t.Helper()
	if err := os.MkdirAll(to.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(from.dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() == "var" {
			continue
		}
		if out, err := exec.Command("cp", "-a", filepath.Join(from.dir, e.Name()), to.dir).CombinedOutput(); err != nil {
			t.Fatalf("copy: %v %s", err, out)
		}
	}
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// relHashes hashes certs/ and credentials/ by path relative to the data dir.
func relHashes(t *testing.T, n *node) map[string]string {
	out := map[string]string{}
	for p, h := range hashTree(t, n.path("certs"), n.path("credentials")) {
		rel, _ := filepath.Rel(n.dir, p)
		out[rel] = h
	}
	return out
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// assertNewCASet checks that every certificate the cluster CA signs, and
// client.config, belong to the new CA.
func assertNewCASet(t *testing.T, n *node, k int) {
	t.Helper()
	pool := x509.NewCertPool()
	caPEM, _ := os.ReadFile(n.path("certs", "ca.crt"))
	pool.AppendCertsFromPEM(caPEM)
	for _, name := range []string{"server", "apiserver-kubelet-client", "kube-controller-manager", "kube-scheduler", "admin", "controller", "scheduler", "kubelet", "proxy"} {
		data, _ := os.ReadFile(n.path("certs", name+".crt"))
		block, _ := pem.Decode(data)
		if block == nil {
			t.Fatalf("op %d: %s.crt unreadable", k, name)
		}
		c, _ := x509.ParseCertificate(block.Bytes)
		if _, err := c.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
			t.Fatalf("op %d: mixed set: %s.crt is not signed by the new ca.crt: %v", k, name, err)
		}
	}
	cfg, _ := os.ReadFile(n.path("credentials", "client.config"))
	if !strings.Contains(string(cfg), strings.TrimSpace(b64(caPEM))) {
		t.Fatalf("op %d: mixed set: client.config does not carry the new CA", k)
	}
}

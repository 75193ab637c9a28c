package e2e

import (
	"bufio"
	"crypto/sha256"
	"crypto/tls"
	"encoding/csv"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestControlPlane boots a node from an empty data dir, checks every
// service's access rules from outside, then restarts it and checks that
// certificates and data survive.
func TestControlPlane(t *testing.T) {
	n := newNode(t)
	n.start()
	n.auditPorts()

	t.Run("file modes", func(t *testing.T) {
		for _, dir := range []string{"certs", "credentials"} {
			st, err := os.Stat(n.path(dir))
			if err != nil {
				t.Fatal(err)
			}
			if st.Mode().Perm() != 0o700 {
				t.Errorf("%s is %o, want 700", dir, st.Mode().Perm())
			}
			entries, _ := os.ReadDir(n.path(dir))
			if len(entries) == 0 {
				t.Errorf("%s is empty", dir)
			}
			for _, e := range entries {
				info, _ := e.Info()
				if info.Mode().Perm() != 0o600 {
					t.Errorf("%s/%s is %o, want 600", dir, e.Name(), info.Mode().Perm())
				}
			}
		}
	})

	t.Run("stock kubectl lists namespaces", func(t *testing.T) {
		out, err := n.kubectl("get", "namespaces")
		if err != nil || !strings.Contains(out, "kube-system") {
			t.Fatalf("kubectl get namespaces: %v\n%s", err, out)
		}
	})

	t.Run("embedded kubectl and versions", func(t *testing.T) {
		out := n.mustKubeseed("kubectl", "version", "-o", "yaml")
		if strings.Count(out, "gitVersion: v1.37.") < 2 {
			t.Errorf("kubectl version should report v1.37 for client and server:\n%s", out)
		}
		out = n.mustKubeseed("version")
		if !strings.Contains(out, "Kubernetes v1.37.") || !strings.Contains(out, "etcd 3.7.") {
			t.Errorf("kubeseed version: %s", out)
		}
	})

	apiURL := fmt.Sprintf("https://127.0.0.1:%d", n.port("kube-apiserver"))
	curl := func(t *testing.T, path string, extra ...string) int {
		t.Helper()
		args := append([]string{"-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", n.path("certs", "ca.crt")}, extra...)
		out, err := n.inNetns("curl", append(args, apiURL+path)...).CombinedOutput()
		if err != nil {
			t.Fatalf("curl %s: %v %s", path, err, out)
		}
		code, _ := strconv.Atoi(string(out))
		return code
	}
	t.Run("apiserver authentication", func(t *testing.T) {
		token := adminToken(t, n)
		cases := []struct {
			name, path string
			header     []string
			want       int
		}{
			{"admin token", "/api", []string{"-H", "Authorization: Bearer " + token}, 200},
			{"admin token lists secrets", "/api/v1/secrets", []string{"-H", "Authorization: Bearer " + token}, 200},
			{"wrong token", "/api", []string{"-H", "Authorization: Bearer not-a-valid-token"}, 401},
			{"anonymous api", "/api", nil, 401},
			{"anonymous readyz", "/readyz", nil, 200},
			{"anonymous livez", "/livez", nil, 200},
			{"anonymous healthz", "/healthz", nil, 200},
			{"anonymous version", "/version", nil, 401},
			{"admin client cert", "/api", []string{"--cert", n.path("certs", "admin.crt"), "--key", n.path("certs", "admin.key")}, 200},
		}
		for _, c := range cases {
			if got := curl(t, c.path, c.header...); got != c.want {
				t.Errorf("%s: GET %s = %d, want %d", c.name, c.path, got, c.want)
			}
		}
	})

	t.Run("apiserver reachable on the default IP", func(t *testing.T) {
		out := n.mustKubeseed("config")
		want := fmt.Sprintf("server: https://%s:%d", n.defaultIP(), n.port("kube-apiserver"))
		if !strings.Contains(out, want) {
			t.Fatalf("kubeseed config lacks %q:\n%s", want, out)
		}
		// --output writes the same kubeconfig, private (it holds the admin's key).
		cfgPath := filepath.Join(t.TempDir(), ".kube", "config")
		n.mustKubeseed("config", "--output", cfgPath)
		if data, err := os.ReadFile(cfgPath); err != nil || string(data) != out {
			t.Errorf("config --output %s (%v) differs from the printed kubeconfig", cfgPath, err)
		}
		if st, err := os.Stat(cfgPath); err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("config --output %s: %v, want mode 0600", cfgPath, err)
		}
		if out, err := n.kubeseed("config", "--output", filepath.Dir(cfgPath)); err == nil || !strings.Contains(out, filepath.Dir(cfgPath)+" is a directory") {
			t.Errorf("config --output DIR: %v\n%s", err, out)
		}
		// The apiserver advertises the default-route IP.
		ep, err := n.kubectl("get", "endpointslices", "-l", "kubernetes.io/service-name=kubernetes", "-o", "jsonpath={.items[0].endpoints[0].addresses[0]}")
		if err != nil || ep != n.defaultIP() {
			t.Errorf("kubernetes endpoint %q (err %v), want %s", ep, err, n.defaultIP())
		}
		got, err := n.inNetns(stockKubectl, "--kubeconfig", cfgPath, "--cache-dir", t.TempDir(), "get", "--raw", "/readyz").CombinedOutput()
		if err != nil || strings.TrimSpace(string(got)) != "ok" {
			t.Fatalf("kubectl via default IP: %v %s", err, got)
		}
	})

	t.Run("etcd requires a client certificate", func(t *testing.T) {
		addr := fmt.Sprintf("127.0.0.1:%d", n.port("etcd"))
		if err := n.etcdHealth(addr, n.tlsConfig("etcd-ca", "")); err == nil {
			t.Error("etcd answered without a client certificate")
		}
		// A certificate from the cluster CA is not enough: etcd has its own CA.
		if err := n.etcdHealth(addr, n.tlsConfig("etcd-ca", "admin")); err == nil {
			t.Error("etcd accepted the admin certificate from the cluster CA")
		}
		if err := n.etcdHealth(addr, n.tlsConfig("etcd-ca", "apiserver-etcd-client")); err != nil {
			t.Errorf("etcd with its client certificate: %v", err)
		}
	})

	t.Run("controller-manager and scheduler authenticate", func(t *testing.T) {
		for _, svc := range []string{"kube-controller-manager", "kube-scheduler"} {
			url := fmt.Sprintf("https://127.0.0.1:%d/healthz", n.port(svc))
			if code, err := n.httpsGet(url, n.tlsConfig("ca", "")); err != nil || (code != 401 && code != 403) {
				t.Errorf("%s without credentials: code %d err %v, want 401 or 403", svc, code, err)
			}
			if code, err := n.httpsGet(url, n.tlsConfig("ca", "admin")); err != nil || code != 200 {
				t.Errorf("%s with the admin certificate: code %d err %v, want 200", svc, code, err)
			}
		}
	})

	t.Run("status", func(t *testing.T) {
		out := n.mustKubeseed("status")
		for _, want := range []string{"ready", "authorization: AlwaysAllow", "server.crt", "364", "ca.crt", "kube-apiserver"} {
			if !strings.Contains(out, want) {
				t.Errorf("status lacks %q:\n%s", want, out)
			}
		}
	})

	t.Run("second start is refused", func(t *testing.T) {
		out, err := n.kubeseed("start")
		if err == nil || !strings.Contains(out, "already running") {
			t.Errorf("second start: %v\n%s", err, out)
		}
	})

	t.Run("restart keeps certificates and data", func(t *testing.T) {
		if out, err := n.kubectl("create", "configmap", "survivor", "--from-literal=k=v"); err != nil {
			t.Fatalf("%v %s", err, out)
		}
		before := hashTree(t, n.path("certs"), n.path("credentials"), n.path("args"))
		n.stop()
		if out, _ := n.kubeseed("status"); !strings.Contains(out, "not running") {
			t.Errorf("status after stop:\n%s", out)
		}
		n.start()
		after := hashTree(t, n.path("certs"), n.path("credentials"), n.path("args"))
		for f, h := range before {
			if after[f] != h {
				t.Errorf("%s changed across a restart", f)
			}
		}
		if len(after) != len(before) {
			t.Errorf("restart changed the set of files: %d before, %d after", len(before), len(after))
		}
		out, err := n.kubectl("get", "configmap", "survivor", "-o", "jsonpath={.data.k}")
		if err != nil || out != "v" {
			t.Fatalf("configmap after restart: %v %q", err, out)
		}
	})
	n.auditPorts()
}

func adminToken(t *testing.T, n *node) string {
	t.Helper()
	f, err := os.Open(n.path("credentials", "known_tokens.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil || len(recs) == 0 || recs[0][1] != "admin" {
		t.Fatalf("known_tokens.csv: %v %v", err, recs)
	}
	return recs[0][0]
}

// etcdHealth speaks HTTP over TLS to etcd's client port. Under TLS 1.3 a
// rejected client certificate surfaces on the first read, not at dial.
func (n *node) etcdHealth(addr string, cfg *tls.Config) error {
	conn, err := n.tlsDial(addr, cfg)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := fmt.Fprintf(conn, "GET /health HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", addr); err != nil {
		return err
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"health":"true"`) {
		return fmt.Errorf("etcd /health: %d %s", resp.StatusCode, body)
	}
	return nil
}

func (n *node) httpsGet(url string, cfg *tls.Config) (int, error) {
	c := n.httpClient(cfg, 5*time.Second)
	defer c.CloseIdleConnections()
	resp, err := c.Get(url)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// hashTree maps every regular file under dirs to its sha256.
func hashTree(t *testing.T, dirs ...string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, dir := range dirs {
		err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil || !d.Type().IsRegular() {
				return err
			}
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			out[p] = fmt.Sprintf("%x", sha256.Sum256(data))
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

package e2e

import (
	"crypto/x509"
	"encoding/csv"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/tools/clientcmd"

	"github.com/kubeseed/kubeseed/internal/credentials"
)

// TestAuth drives authentication and authorization on one node: tokens
// added and removed at run time, a user with a client certificate, and RBAC
// switched on and off, all without restarting kubeseed.
func TestAuth(t *testing.T) {
	n := newNode(t)
	n.start()

	admin := adminToken(t, n)
	bob := n.tokenAdd(t, "bob", "--group", "devs")
	if len(bob) != 43 {
		t.Fatalf("token add printed %q, want one 43-character token", bob)
	}

	t.Run("AlwaysAllow: a token user without bindings lists secrets", func(t *testing.T) {
		if code := n.api(t, "GET", "/api/v1/namespaces/kube-system/secrets", bob); code != 200 {
			t.Errorf("bob lists secrets: HTTP %d, want 200", code)
		}
		who := n.whoami(t, "--token", bob)
		if who.name != "bob" || !slices.Contains(who.groups, "devs") || !slices.Contains(who.groups, "system:authenticated") {
			t.Errorf("whoami as bob: %+v", who)
		}
		if out := n.mustKubeseed("status"); !strings.Contains(out, "authorization: AlwaysAllow") {
			t.Errorf("status:\n%s", out)
		}
	})

	t.Run("token list never shows tokens", func(t *testing.T) {
		out := n.mustKubeseed("token", "list")
		if !strings.Contains(out, "bob") || !strings.Contains(out, "devs") || !strings.Contains(out, "system:masters") {
			t.Errorf("token list:\n%s", out)
		}
		for _, tok := range []string{bob, admin} {
			if strings.Contains(out, tok) {
				t.Errorf("token list shows a token:\n%s", out)
			}
		}
	})

	carol := n.path("credentials", "users", "carol.config")
	t.Run("add-user writes a kubeconfig with a certificate from the cluster CA", func(t *testing.T) {
		out := n.mustKubeseed("add-user", "carol", "--group", "qa", "--days", "2")
		if !strings.Contains(out, carol) {
			t.Errorf("add-user output:\n%s", out)
		}
		st, err := os.Stat(carol)
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v", carol, err)
		}
		cert := kubeconfigCert(t, carol)
		if left := time.Until(cert.NotAfter); left < 47*time.Hour || left > 49*time.Hour {
			t.Errorf("certificate expires in %s, want 2 days", left)
		}
		pool := x509.NewCertPool()
		pem, _ := os.ReadFile(n.path("certs", "ca.crt"))
		pool.AppendCertsFromPEM(pem)
		if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
			t.Errorf("not signed by the cluster CA: %v", err)
		}
		who := n.whoami(t, "--kubeconfig", carol)
		if who.name != "carol" || !slices.Contains(who.groups, "qa") {
			t.Errorf("whoami as carol: %+v", who)
		}
		if out, err := n.kubectlAs(t, []string{"--kubeconfig", carol}, "get", "secrets", "-n", "kube-system"); err != nil {
			t.Errorf("carol under AlwaysAllow: %v\n%s", err, out)
		}
		if out, err := n.kubeseed("add-user", "carol"); err == nil || !strings.Contains(out, "exists") {
			t.Errorf("add-user over an existing kubeconfig: %v\n%s", err, out)
		}
	})

	t.Run("enable rbac", func(t *testing.T) {
		out := n.mustKubeseed("enable", "rbac")
		if !strings.Contains(out, "RBAC enabled") {
			t.Errorf("enable rbac:\n%s", out)
		}
		// kubeseed waits until kube-apiserver enforces it: no polling here.
		if code := n.api(t, "GET", "/api/v1/namespaces/kube-system/secrets", bob); code != 403 {
			t.Errorf("bob lists secrets under RBAC: HTTP %d, want 403", code)
		}
		if code := n.api(t, "GET", "/api", bob); code != 200 {
			t.Errorf("bob reads discovery under RBAC: HTTP %d, want 200", code)
		}
		if code := n.api(t, "GET", "/api/v1/namespaces/kube-system/secrets", admin); code != 200 {
			t.Errorf("admin token under RBAC: HTTP %d, want 200", code)
		}
		if out, err := n.kubectl("get", "secrets", "-A"); err != nil {
			t.Errorf("admin certificate under RBAC: %v\n%s", err, out)
		}
		out, err := n.kubectlAs(t, []string{"--kubeconfig", carol}, "get", "secrets", "-n", "kube-system")
		if err == nil || !strings.Contains(out, "Forbidden") {
			t.Errorf("carol (unbound) under RBAC: %v\n%s", err, out)
		}
		if code := n.api(t, "GET", "/api/v1/namespaces/kube-system/secrets", "not-a-token"); code != 401 {
			t.Errorf("unknown token under RBAC: HTTP %d, want 401", code)
		}
		out = n.mustKubeseed("status")
		if !strings.Contains(out, "authorization: Node,RBAC") || !strings.Contains(out, "ready") {
			t.Errorf("status after enable rbac:\n%s", out)
		}
		if out, err := n.kubectl("get", "clusterrolebinding", "kubeseed:kube-apiserver-kubelet-client", "-o", "jsonpath={.roleRef.name}"); err != nil || out != "system:kubelet-api-admin" {
			t.Errorf("kubelet-client binding: %v %q", err, out)
		}
		before := hashTree(t, n.path("config"), n.path("args"))
		out = n.mustKubeseed("enable", "rbac")
		if !strings.Contains(out, "already enabled") {
			t.Errorf("second enable rbac:\n%s", out)
		}
		for f, h := range hashTree(t, n.path("config"), n.path("args")) {
			if before[f] != h {
				t.Errorf("second enable rbac changed %s", f)
			}
		}
	})

	t.Run("the node stays Ready and runs a pod under RBAC", func(t *testing.T) {
		n.nodeReadyAndPodRuns(t)
	})

	t.Run("a binding grants exactly what it says", func(t *testing.T) {
		for _, args := range [][]string{
			{"create", "secret", "generic", "s1", "-n", "default", "--from-literal=k=v"},
			{"create", "role", "secret-reader", "-n", "default", "--verb=get,list", "--resource=secrets"},
			{"create", "rolebinding", "bob-reads-secrets", "-n", "default", "--role=secret-reader", "--user=bob"},
			{"create", "clusterrolebinding", "qa-view", "--clusterrole=view", "--group=qa"},
		} {
			if out, err := n.kubectl(args...); err != nil {
				t.Fatalf("kubectl %v: %v\n%s", args, err, out)
			}
		}
		// RBAC reads bindings from an informer cache: allow it to catch up.
		eventually(t, 10*time.Second, "bob lists secrets in default", func() bool {
			return n.api(t, "GET", "/api/v1/namespaces/default/secrets", bob) == 200
		})
		cases := []struct {
			what, method, path string
			want               int
		}{
			{"get a secret in default", "GET", "/api/v1/namespaces/default/secrets/s1", 200},
			{"list secrets in kube-system", "GET", "/api/v1/namespaces/kube-system/secrets", 403},
			{"list configmaps in default", "GET", "/api/v1/namespaces/default/configmaps", 403},
			{"delete a secret in default", "DELETE", "/api/v1/namespaces/default/secrets/s1", 403},
		}
		for _, c := range cases {
			if got := n.api(t, c.method, c.path, bob); got != c.want {
				t.Errorf("bob may %s: HTTP %d, want %d", c.what, got, c.want)
			}
		}
		// The group in carol's certificate is bound to view: pods yes, secrets no.
		eventually(t, 10*time.Second, "carol lists pods through group qa", func() bool {
			_, err := n.kubectlAs(t, []string{"--kubeconfig", carol}, "get", "pods", "-A")
			return err == nil
		})
		if out, err := n.kubectlAs(t, []string{"--kubeconfig", carol}, "get", "secrets", "-n", "default"); err == nil {
			t.Errorf("view lets carol read secrets:\n%s", out)
		}
	})

	t.Run("disable rbac brings AlwaysAllow back", func(t *testing.T) {
		if out := n.mustKubeseed("disable", "rbac"); !strings.Contains(out, "RBAC disabled") {
			t.Errorf("disable rbac:\n%s", out)
		}
		if code := n.api(t, "GET", "/api/v1/namespaces/kube-system/secrets", bob); code != 200 {
			t.Errorf("bob lists secrets after disable: HTTP %d, want 200", code)
		}
		if out := n.mustKubeseed("status"); !strings.Contains(out, "authorization: AlwaysAllow") {
			t.Errorf("status after disable:\n%s", out)
		}
		if out := n.mustKubeseed("disable", "rbac"); !strings.Contains(out, "already disabled") {
			t.Errorf("second disable:\n%s", out)
		}
	})

	t.Run("token remove: 401 without a restart", func(t *testing.T) {
		out := n.mustKubeseed("token", "remove", "bob")
		if !strings.Contains(out, "removed 1 token(s) of bob") {
			t.Errorf("token remove:\n%s", out)
		}
		// kube-apiserver caches token answers for 10s.
		eventually(t, 20*time.Second, "bob's removed token gets 401", func() bool {
			return n.api(t, "GET", "/api", bob) == 401
		})
		before := hashTree(t, n.path("credentials"))
		if out, err := n.kubeseed("token", "remove", "bob"); err == nil || !strings.Contains(out, `no token for user "bob"`) {
			t.Errorf("second remove: %v\n%s", err, out)
		}
		assertUnchanged(t, before, hashTree(t, n.path("credentials")))
	})

	t.Run("an invalid token file fails closed until it is fixed", func(t *testing.T) {
		path := n.path("credentials", "known_tokens.csv")
		good, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		const dave = "dave-token-0123456789abcdef"
		broken := string(good) + dave + ",dave,dave\nbroken-line\n"
		if err := os.WriteFile(path, []byte(broken), 0o600); err != nil {
			t.Fatal(err)
		}
		badLine := strings.Count(broken, "\n")
		wantErr := fmt.Sprintf("known_tokens.csv:%d: expected 3 or 4 columns", badLine)
		eventually(t, 10*time.Second, "the log reports the bad line", func() bool {
			data, _ := os.ReadFile(n.log)
			return strings.Contains(string(data), wantErr)
		})
		// No token at all, not even one valid a moment ago; kube-apiserver
		// may answer from its 10s token cache meanwhile.
		eventually(t, 20*time.Second, "the admin token gets 401 while the file is broken", func() bool {
			return n.api(t, "GET", "/api", admin) == 401
		})
		if code := n.api(t, "GET", "/api", dave); code != 401 {
			t.Errorf("a token from the broken file: HTTP %d, want 401", code)
		}
		out, err := n.kubeseed("status")
		if err == nil || !strings.Contains(out, "token file: FAILED") || !strings.Contains(out, wantErr) {
			t.Errorf("status with a broken token file: %v, want a failed check naming %q:\n%s", err, wantErr, out)
		}
		// Client certificates still work, so the admin can fix things.
		if out, err := n.kubectl("get", "namespaces"); err != nil {
			t.Errorf("kubectl with the admin certificate while the token file is broken: %v\n%s", err, out)
		}
		out, err = n.kubeseed("token", "add", "erin")
		if err == nil || !strings.Contains(out, fmt.Sprintf("known_tokens.csv:%d:", badLine)) {
			t.Errorf("token add to a broken file: %v\n%s", err, out)
		}
		if data, _ := os.ReadFile(path); string(data) != broken {
			t.Error("token add changed a broken file")
		}
		// Fixed by hand: tokens work again without a restart.
		if err := os.WriteFile(path, []byte(string(good)+dave+",dave,dave\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		eventually(t, 20*time.Second, "the admin and dave tokens work once the file is fixed", func() bool {
			return n.api(t, "GET", "/api", admin) == 200 && n.api(t, "GET", "/api", dave) == 200
		})
		if out, err := n.kubeseed("status"); err != nil || strings.Contains(out, "token file") {
			t.Errorf("status once the token file is fixed: %v\n%s", err, out)
		}
	})

	t.Run("bad input gets a clear error and changes nothing", func(t *testing.T) {
		before := hashTree(t, n.path("credentials"), n.path("config"), n.path("args"))
		cases := []struct {
			args []string
			want string
		}{
			{[]string{"token", "add", "a,b"}, "contains a comma"},
			{[]string{"token", "add", "a\nb"}, "contains a newline"},
			{[]string{"token", "add", "frank", "--group", "devs,ops"}, "repeat the flag for several groups"},
			{[]string{"token", "add", "frank", "--group", "my devs"}, "is not allowed in a group"},
			{[]string{"token", "add", "frank", "--group", ""}, "--group is empty"},
			{[]string{"add-user", "x/y"}, `'/' is not allowed`},
			{[]string{"add-user", "gina", "--days", "0"}, "--days 0 is out of range"},
			{[]string{"add-user", "gina", "--group", "a\nb"}, "contains a newline"},
			{[]string{"enable", "magic"}, `unknown feature "magic"; available: dns, rbac`},
			{[]string{"enable"}, "name a feature to enable"},
		}
		for _, c := range cases {
			out, err := n.kubeseed(c.args...)
			if err == nil || !strings.Contains(out, c.want) {
				t.Errorf("kubeseed %q: %v\n%s\nwant %q", c.args, err, out, c.want)
			}
		}
		assertUnchanged(t, before, hashTree(t, n.path("credentials"), n.path("config"), n.path("args")))
	})

	t.Run("RBAC survives a restart, without the run-time chain", func(t *testing.T) {
		n.mustKubeseed("enable", "rbac")
		n.stop()
		n.start()
		data, err := os.ReadFile(n.path("config", "authorization.yaml"))
		if err != nil || strings.Contains(string(data), "kubeseed-deny") || !strings.Contains(string(data), "Mode: RBAC") {
			t.Errorf("authorization.yaml after a restart (%v):\n%s", err, data)
		}
		out, err := n.kubectlAs(t, []string{"--kubeconfig", carol}, "auth", "can-i", "--list")
		if err != nil || strings.Contains(out, "*.*") {
			t.Errorf("carol's rules after a restart list everything (%v):\n%s", err, out)
		}
		if _, err := n.kubectlAs(t, []string{"--kubeconfig", carol}, "get", "secrets", "-n", "default"); err == nil {
			t.Error("carol reads secrets after a restart under RBAC")
		}
		if code := n.api(t, "GET", "/api", admin); code != 200 {
			t.Errorf("admin token after restart: HTTP %d", code)
		}
	})
}

// TestPasswordFileMigration starts a node whose credentials/basic_auth.csv
// has users: each becomes a token user with the same groups.
func TestPasswordFileMigration(t *testing.T) {
	n := newNode(t)
	n.start()
	n.stop()
	path := n.path("credentials", "basic_auth.csv")
	if err := os.WriteFile(path, []byte("oldpass1,harry,uid-harry,\"devs,system:masters\"\noldpass2,ivy,uid-ivy\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	n.start()
	log, _ := os.ReadFile(n.log)
	if !strings.Contains(string(log), "migrated 2 user(s) (harry, ivy)") || !strings.Contains(string(log), "v1.19") {
		t.Errorf("the migration is not reported in the log")
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("%s still exists: %v", path, err)
	}
	if _, err := os.Stat(path + ".migrated"); err != nil {
		t.Errorf("no %s.migrated: %v", path, err)
	}
	tokens := readTokens(t, n)
	harry, ivy := tokens["harry"], tokens["ivy"]
	if harry == nil || ivy == nil {
		t.Fatalf("migrated users missing from known_tokens.csv: %v", tokens)
	}
	if harry[0] == "oldpass1" || ivy[0] == "oldpass2" {
		t.Error("a password was reused as a token")
	}
	if harry[2] != "uid-harry" || len(harry) != 4 || harry[3] != "devs,system:masters" {
		t.Errorf("harry's token line: %v", harry)
	}
	who := n.whoami(t, "--token", harry[0])
	if who.name != "harry" || !slices.Contains(who.groups, "devs") || !slices.Contains(who.groups, "system:masters") {
		t.Errorf("whoami as harry: %+v", who)
	}
	// harry's group survived: system:masters works even under RBAC.
	n.mustKubeseed("enable", "rbac")
	if code := n.api(t, "GET", "/api/v1/namespaces/kube-system/secrets", harry[0]); code != 200 {
		t.Errorf("harry (system:masters) under RBAC: HTTP %d", code)
	}
	if code := n.api(t, "GET", "/api/v1/namespaces/kube-system/secrets", ivy[0]); code != 403 {
		t.Errorf("ivy (no groups) under RBAC: HTTP %d, want 403", code)
	}
	// A restart does not migrate again.
	before := hashTree(t, n.path("credentials"))
	n.stop()
	n.start()
	assertUnchanged(t, before, hashTree(t, n.path("credentials")))
}

// tokenAdd runs `kubeseed token add` and returns what it prints on
// stdout: the token alone, so scripts can capture it.
func (n *node) tokenAdd(t *testing.T, args ...string) string {
	t.Helper()
	cmd := n.command(append([]string{"token", "add"}, args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("kubeseed token add %v: %v\n%s", args, err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "it is active now") {
		t.Errorf("token add did not wait for the running node:\n%s", stderr.String())
	}
	tok := strings.TrimSpace(string(out))
	file, err := os.ReadFile(n.path("credentials", "known_tokens.csv"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(file), tok) || !strings.Contains(string(file), credentials.HashToken(tok)) {
		t.Errorf("known_tokens.csv must hold the digest of the token `token add` printed, never the token")
	}
	return tok
}

// api sends one request to the apiserver with a bearer token and returns
// the HTTP status.
func (n *node) api(t *testing.T, method, path, token string) int {
	t.Helper()
	req, err := http.NewRequest(method, fmt.Sprintf("https://127.0.0.1:%d%s", n.port("kube-apiserver"), path), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	c := n.httpClient(n.tlsConfig("ca", ""), 10*time.Second)
	defer c.CloseIdleConnections()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// kubectlAs runs the stock kubectl with the given credentials flags
// (--kubeconfig FILE, or --token T against this node).
func (n *node) kubectlAs(t *testing.T, creds []string, args ...string) (string, error) {
	t.Helper()
	full := []string{"--cache-dir", n.kubectlCache()}
	if creds[0] == "--token" {
		full = append(full, "--kubeconfig", os.DevNull,
			"--server", fmt.Sprintf("https://127.0.0.1:%d", n.port("kube-apiserver")),
			"--certificate-authority", n.path("certs", "ca.crt"))
	}
	full = append(append(full, creds...), args...)
	out, err := n.inNetns(stockKubectl, full...).CombinedOutput()
	return string(out), err
}

type identity struct {
	name   string
	groups []string
}

// whoami asks the apiserver who the credentials are (SelfSubjectReview).
func (n *node) whoami(t *testing.T, creds ...string) identity {
	t.Helper()
	out, err := n.kubectlAs(t, creds, "auth", "whoami", "-o", "json")
	if err != nil {
		t.Fatalf("kubectl auth whoami: %v\n%s", err, out)
	}
	var r struct {
		Status struct {
			UserInfo struct {
				Username string   `json:"username"`
				Groups   []string `json:"groups"`
			} `json:"userInfo"`
		} `json:"status"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("whoami output: %v\n%s", err, out)
	}
	return identity{r.Status.UserInfo.Username, r.Status.UserInfo.Groups}
}

// nodeReadyAndPodRuns checks the node is Ready and a pod is created,
// scheduled and running, with an image the node already has.
func (n *node) nodeReadyAndPodRuns(t *testing.T) {
	t.Helper()
	out, err := n.kubectl("wait", "node", "--all", "--for=condition=Ready", "--timeout=120s")
	if err != nil {
		t.Fatalf("node not Ready under RBAC: %v\n%s", err, out)
	}
	images, err := n.kubectl("get", "nodes", "-o", "jsonpath={range .items[*].status.images[*]}{.names[0]}{\"\\n\"}{end}")
	if err != nil {
		t.Fatalf("node images: %v\n%s", err, images)
	}
	image, command := "", ""
	for _, img := range strings.Fields(images) {
		if strings.Contains(img, "pause") {
			image = img
		}
	}
	if image == "" {
		for _, img := range strings.Fields(images) {
			if strings.Contains(img, "busybox") {
				image, command = img, `"command": ["sleep", "3600"],`
			}
		}
	}
	if image == "" {
		t.Fatalf("no pause or busybox image on the node to run a pod with; images: %s", images)
	}
	pod := fmt.Sprintf(`{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "rbac-probe", "namespace": "default"},
"spec": {"containers": [{"name": "c", "image": %q, %s "imagePullPolicy": "Never"}]}}`, image, command)
	podFile := filepath.Join(t.TempDir(), "pod.json")
	if err := os.WriteFile(podFile, []byte(pod), 0o644); err != nil {
		t.Fatal(err)
	}
	// Retry while the controller-manager has yet to create the default
	// ServiceAccount, which admission requires.
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(time.Second) {
		out, err := n.kubectl("apply", "-f", podFile)
		if err == nil {
			break
		}
		if !strings.Contains(out, `serviceaccount "default" not found`) || time.Now().After(deadline) {
			t.Fatalf("create pod: %v\n%s", err, out)
		}
	}
	if out, err := n.kubectl("wait", "pod/rbac-probe", "-n", "default", "--for=jsonpath={.status.phase}=Running", "--timeout=120s"); err != nil {
		desc, _ := n.kubectl("describe", "pod/rbac-probe", "-n", "default")
		t.Fatalf("pod not running under RBAC: %v\n%s\n%s", err, out, desc)
	}
	if out, err := n.kubectl("delete", "pod/rbac-probe", "-n", "default", "--wait=true", "--timeout=60s"); err != nil {
		t.Errorf("delete pod: %v\n%s", err, out)
	}
}

// kubeconfigCert is the client certificate embedded in a kubeconfig.
func kubeconfigCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	cfg, err := clientcmd.LoadFromFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ai := cfg.AuthInfos[cfg.Contexts[cfg.CurrentContext].AuthInfo]
	certs, err := parsePEMCerts(ai.ClientCertificateData)
	if err != nil || len(certs) == 0 {
		t.Fatalf("%s: no client certificate: %v", path, err)
	}
	return certs[0]
}

func parsePEMCerts(data []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var block *pem.Block
		if block, data = pem.Decode(data); block == nil {
			return out, nil
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return out, err
		}
		out = append(out, c)
	}
}

// readTokens maps each user of known_tokens.csv to its line's fields.
func readTokens(t *testing.T, n *node) map[string][]string {
	t.Helper()
	f, err := os.Open(n.path("credentials", "known_tokens.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := csv.NewReader(f)
	r.FieldsPerRecord = -1
	recs, err := r.ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, rec := range recs {
		out[rec[1]] = rec
	}
	return out
}

// eventually polls cond until it holds, failing the test after timeout.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not true after %s", what, timeout)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func assertUnchanged(t *testing.T, before, after map[string]string) {
	t.Helper()
	for f, h := range before {
		if after[f] != h {
			t.Errorf("%s changed", f)
		}
	}
	if len(after) != len(before) {
		t.Errorf("files were added or removed: %d before, %d after", len(before), len(after))
	}
}

// TestOlderDataDirMigrates starts a data dir whose args/kube-apiserver
// comes from before the auth webhook (--token-auth-file, --authorization-mode):
// kubeseed moves it to the webhook and the reloadable authorization config,
// and RBAC can then be switched without a restart.
func TestOlderDataDirMigrates(t *testing.T) {
	n := newNode(t)
	n.start()
	n.stop()
	path := n.path("args", "kube-apiserver")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
		switch {
		case strings.HasPrefix(l, "--authentication-token-webhook-"), strings.HasPrefix(l, "--authorization-config="),
			strings.HasPrefix(l, "--enable-admission-plugins="):
			continue
		}
		lines = append(lines, l)
	}
	lines = append(lines, "--token-auth-file=${DATA_DIR}/credentials/known_tokens.csv", "--authorization-mode=AlwaysAllow")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(n.path("config", "authorization.yaml")); err != nil {
		t.Fatal(err)
	}
	n.start()
	log, _ := os.ReadFile(n.log)
	if !strings.Contains(string(log), "migrated "+path) {
		t.Errorf("the args migration is not reported in the log")
	}
	data, _ = os.ReadFile(path)
	for _, want := range []string{"--authorization-config=", "--authentication-token-webhook-config-file=", "--enable-admission-plugins=NodeRestriction"} {
		if !strings.Contains(string(data), want) {
			t.Errorf("migrated args lack %s:\n%s", want, data)
		}
	}
	for _, gone := range []string{"--token-auth-file", "--authorization-mode"} {
		if strings.Contains(string(data), gone) {
			t.Errorf("migrated args keep %s", gone)
		}
	}
	bob := n.tokenAdd(t, "bob")
	n.mustKubeseed("enable", "rbac")
	if code := n.api(t, "GET", "/api/v1/secrets", bob); code != 403 {
		t.Errorf("bob under RBAC after the migration: HTTP %d, want 403", code)
	}
}

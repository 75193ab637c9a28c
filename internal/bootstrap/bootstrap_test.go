package bootstrap

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/client-go/tools/clientcmd"

	"github.com/kubeseed/kubeseed/internal/args"
	"github.com/kubeseed/kubeseed/internal/authz"
	"github.com/kubeseed/kubeseed/internal/credentials"
	"github.com/kubeseed/kubeseed/internal/datadir"
	"github.com/kubeseed/kubeseed/internal/defaults"
	"github.com/kubeseed/kubeseed/internal/pki"
)

func testOptions() Options {
	return Options{PortOffset: 100, NodeName: "node-a", HostIPs: []net.IP{net.ParseIP("192.0.2.10")}}
}

func prepared(t *testing.T) datadir.Layout {
	t.Helper()
	l, err := datadir.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	res, err := Prepare(context.Background(), l, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	if !res.FirstStart || len(res.Issued) == 0 {
		t.Fatalf("first Prepare: %+v", res)
	}
	return l
}

func TestPrepareCreatesEverything(t *testing.T) {
	l := prepared(t)
	for _, p := range []string{
		l.CSRTemplate(), l.TokenFile(), l.AdminKubeconfig(),
		l.Credential("controller.config"), l.Credential("scheduler.config"),
		l.Credential("kubelet.config"), l.Credential("proxy.config"),
		l.Args("etcd"), l.Args("kube-apiserver"), l.Args("kube-controller-manager"), l.Args("kube-scheduler"),
		l.Config("authentication.yaml"), l.Cert("ca"), l.Key("serviceaccount"),
		l.Args("auth-webhook"), l.Config("authorization.yaml"), l.Config("token-webhook.kubeconfig"),
		l.Cert("auth-webhook"), l.Cert("apiserver-auth-webhook-client"), l.Config("authorization-webhook.kubeconfig"), l.Config("removed-nodes-webhook.kubeconfig"),
	} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("missing %s", p)
		}
	}
	for _, dir := range []string{l.CertsDir(), l.CredentialsDir()} {
		st, _ := os.Stat(dir)
		if st.Mode().Perm() != 0o700 {
			t.Errorf("%s mode %o", dir, st.Mode().Perm())
		}
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			info, _ := e.Info()
			if info.Mode().Perm() != 0o600 {
				t.Errorf("%s/%s mode %o", dir, e.Name(), info.Mode().Perm())
			}
		}
	}
	cfg, err := clientcmd.LoadFromFile(l.AdminKubeconfig())
	if err != nil {
		t.Fatal(err)
	}
	cluster := cfg.Clusters[cfg.Contexts[cfg.CurrentContext].Cluster]
	if cluster.Server != "https://127.0.0.1:16543" || len(cluster.CertificateAuthorityData) == 0 {
		t.Errorf("admin kubeconfig cluster: server %q, CA data %d bytes", cluster.Server, len(cluster.CertificateAuthorityData))
	}
	data, _ := os.ReadFile(l.Args("kube-apiserver"))
	for _, want := range []string{"--secure-port=16543", "--authorization-config=${DATA_DIR}/config/authorization.yaml",
		"--authentication-token-webhook-config-file=${DATA_DIR}/config/token-webhook.kubeconfig", "--enable-admission-plugins=NodeRestriction"} {
		if !strings.Contains(string(data), want) {
			t.Errorf("args/kube-apiserver lacks %s:\n%s", want, data)
		}
	}
	for _, unwanted := range []string{"--token-auth-file", "--authorization-mode"} {
		if strings.Contains(string(data), unwanted) {
			t.Errorf("args/kube-apiserver has %s:\n%s", unwanted, data)
		}
	}
	if data, _ := os.ReadFile(l.Config("authorization.yaml")); string(data) != string(authz.Render(authz.AlwaysAllow, false, defaults.Webhooks(l))) {
		t.Errorf("authorization.yaml is not AlwaysAllow:\n%s", data)
	}
	wh, err := clientcmd.LoadFromFile(l.Config("token-webhook.kubeconfig"))
	if err != nil {
		t.Fatal(err)
	}
	whc := wh.Clusters[wh.Contexts[wh.CurrentContext].Cluster]
	whu := wh.AuthInfos[wh.Contexts[wh.CurrentContext].AuthInfo]
	if whc.Server != "https://127.0.0.1:16544/authenticate" || whc.CertificateAuthority != "../certs/ca.crt" ||
		whu.ClientCertificate != "../certs/apiserver-auth-webhook-client.crt" || whu.ClientKey != "../certs/apiserver-auth-webhook-client.key" {
		t.Errorf("token webhook kubeconfig: %+v %+v", whc, whu)
	}
}

func TestSecondPrepareChangesNothing(t *testing.T) {
	l := prepared(t)
	before := hashTree(t, l.Root)
	res, err := Prepare(context.Background(), l, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	if res.FirstStart || len(res.Issued) != 0 || len(res.Created) != 0 {
		t.Errorf("second Prepare made things: %+v", res)
	}
	assertSame(t, before, hashTree(t, l.Root))
}

func TestBadInputChangesNothing(t *testing.T) {
	cases := []struct {
		name string
		file func(l datadir.Layout) string
		text string
		want string
	}{
		{"template line without =", func(l datadir.Layout) string { return l.CSRTemplate() }, "DNS.7 mydomain.com", "csr.conf.template:"},
		{"token column count", func(l datadir.Layout) string { return l.TokenFile() }, "abc,def", "known_tokens.csv:2:"},
		{"token empty", func(l datadir.Layout) string { return l.TokenFile() }, ",bob,bob", "known_tokens.csv:2: empty token"},
		{"args syntax", func(l datadir.Layout) string { return l.Args("kube-scheduler") }, "-v 2", "kube-scheduler:"},
		{"auth webhook flag", func(l datadir.Layout) string { return l.Args("auth-webhook") }, "--no-such=1", "args/auth-webhook:9: --no-such: unknown flag for auth-webhook"},
		{"auth webhook public bind", func(l datadir.Layout) string { return l.Args("auth-webhook") }, "--bind-address=0.0.0.0", "must be a loopback IP"},
		{"password file", func(l datadir.Layout) string { return l.Credential("basic_auth.csv") }, "pw,alice,1\npw,,2", "basic_auth.csv:2: empty user"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			l := prepared(t)
			f, err := os.OpenFile(c.file(l), os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o600)
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintln(f, c.text)
			f.Close()
			// Remove a certificate too: a bad input must stop Prepare before it
			// re-issues anything.
			os.Remove(l.Cert("server"))
			os.Remove(l.Key("server"))
			before := hashTree(t, l.Root)
			_, err = Prepare(context.Background(), l, testOptions())
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want %q", err, c.want)
			}
			assertSame(t, before, hashTree(t, l.Root))
		})
	}
}

func TestPasswordFileMigratesToTokens(t *testing.T) {
	l := prepared(t)
	path := l.Credential("basic_auth.csv")
	if err := os.WriteFile(path, []byte("pw1,alice,uid-a\npw2,bob,uid-b,\"devs,system:masters\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := Prepare(context.Background(), l, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Notices) != 1 || !strings.Contains(res.Notices[0], "migrated 2 user(s) (alice, bob)") {
		t.Errorf("notices %q", res.Notices)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("%s still exists: %v", path, err)
	}
	st, err := os.Stat(path + ".migrated")
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("%s.migrated: %v", path, err)
	}
	tokens, err := credentials.TokenFile{Path: l.TokenFile()}.Load()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]credentials.Token{}
	for _, tok := range tokens {
		got[tok.User] = tok
	}
	if a := got["alice"]; a.UID != "uid-a" || len(a.Groups) != 0 || len(a.Token) != 43 {
		t.Errorf("alice: %+v", a)
	}
	if b := got["bob"]; b.UID != "uid-b" || strings.Join(b.Groups, ",") != "devs,system:masters" {
		t.Errorf("bob: %+v", b)
	}
	for _, tok := range tokens {
		if tok.Token == "pw1" || tok.Token == "pw2" {
			t.Errorf("a password became a token: %+v", tok)
		}
	}
	if got["admin"].Token == "" {
		t.Error("the admin token is gone")
	}

	// A second file while the .migrated one exists: refused, nothing changes.
	if err := os.WriteFile(path, []byte("pw3,carol,3\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	before := hashTree(t, l.Root)
	if _, err := Prepare(context.Background(), l, testOptions()); err == nil || !strings.Contains(err.Error(), "basic_auth.csv.migrated exists") {
		t.Fatalf("second migration: %v", err)
	}
	assertSame(t, before, hashTree(t, l.Root))
}

// TestOlderArgsAreMigrated starts from the args/kube-apiserver of a data
// dir made before the token webhook and structured authorization.
func TestOlderArgsAreMigrated(t *testing.T) {
	cases := []struct {
		name, mode string
		want       authz.Mode
	}{
		{"AlwaysAllow", "AlwaysAllow", authz.AlwaysAllow},
		{"RBAC", "RBAC,Node", authz.RBAC},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			l := prepared(t)
			f, err := args.Load(l.Args("kube-apiserver"))
			if err != nil {
				t.Fatal(err)
			}
			for _, name := range []string{"authentication-token-webhook-config-file", "authentication-token-webhook-version",
				"authentication-token-webhook-cache-ttl", "authorization-config", "enable-admission-plugins"} {
				f.Remove(name)
			}
			f.Set("token-auth-file", "${DATA_DIR}/credentials/known_tokens.csv")
			f.Set("authorization-mode", c.mode)
			if err := os.WriteFile(f.Path, f.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			for _, p := range []string{l.Config("authorization.yaml"), l.Args("auth-webhook"), l.Config("token-webhook.kubeconfig")} {
				os.Remove(p)
			}
			res, err := Prepare(context.Background(), l, testOptions())
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Notices) != 1 || !strings.Contains(res.Notices[0], "--authorization-mode="+c.mode+" replaced") {
				t.Errorf("notices %q", res.Notices)
			}
			f, err = args.Load(l.Args("kube-apiserver"))
			if err != nil {
				t.Fatal(err)
			}
			for _, gone := range []string{"token-auth-file", "authorization-mode"} {
				if _, ok := f.Get(gone); ok {
					t.Errorf("--%s still set", gone)
				}
			}
			for name, want := range map[string]string{
				"authorization-config":                     "${DATA_DIR}/config/authorization.yaml",
				"authentication-token-webhook-config-file": "${DATA_DIR}/config/token-webhook.kubeconfig",
				"enable-admission-plugins":                 "NodeRestriction",
			} {
				if v, _ := f.Get(name); v != want {
					t.Errorf("--%s=%q, want %q", name, v, want)
				}
			}
			data, _ := os.ReadFile(l.Config("authorization.yaml"))
			if string(data) != string(authz.Render(c.want, false, defaults.Webhooks(l))) {
				t.Errorf("authorization.yaml:\n%s", data)
			}
			for _, p := range []string{l.Args("auth-webhook"), l.Config("token-webhook.kubeconfig")} {
				if _, err := os.Stat(p); err != nil {
					t.Errorf("not created: %v", err)
				}
			}
		})
	}
}

func TestLiveAuthorizationChainIsReplacedAtStart(t *testing.T) {
	l := prepared(t)
	if err := os.WriteFile(l.Config("authorization.yaml"), authz.Render(authz.RBAC, true, defaults.Webhooks(l)), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Prepare(context.Background(), l, testOptions()); err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(l.Config("authorization.yaml")); string(data) != string(authz.Render(authz.RBAC, false, defaults.Webhooks(l))) {
		t.Errorf("authorization.yaml:\n%s", data)
	}
	// A chain kubeseed did not write is left alone.
	edited := []byte(strings.Replace(string(authz.Render(authz.RBAC, true, defaults.Webhooks(l))),
		"name: "+authz.DenyWebhookName, "name: my-webhook", 1))
	if err := os.WriteFile(l.Config("authorization.yaml"), edited, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Prepare(context.Background(), l, testOptions()); err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(l.Config("authorization.yaml")); string(data) != string(edited) {
		t.Errorf("an edited chain was rewritten:\n%s", data)
	}
}

func hashTree(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
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
	return out
}

func assertSame(t *testing.T, before, after map[string]string) {
	t.Helper()
	if len(before) != len(after) {
		t.Errorf("file count %d -> %d", len(before), len(after))
	}
	for p, h := range before {
		if after[p] != h {
			t.Errorf("%s changed", p)
		}
	}
}

// Component kubeconfigs reference the files under certs/ (so client-go
// reloads renewed certificates); client.config embeds everything because
// users copy it.
func TestKubeconfigsReferenceOrEmbed(t *testing.T) {
	l := prepared(t)
	for _, spec := range pki.Table {
		if spec.Kubeconfig == "" {
			continue
		}
		t.Run(spec.Kubeconfig, func(t *testing.T) {
			cfg, err := clientcmd.BuildConfigFromFlags("", l.Credential(spec.Kubeconfig))
			if err != nil {
				t.Fatal(err)
			}
			tls := cfg.TLSClientConfig
			if spec.EmbedInKubeconfig {
				if tls.CertFile != "" || len(tls.CertData) == 0 || len(tls.KeyData) == 0 || len(tls.CAData) == 0 {
					t.Errorf("want inline data, got files %q %q %q", tls.CAFile, tls.CertFile, tls.KeyFile)
				}
				return
			}
			if tls.CertFile != l.Cert(spec.Name) || tls.KeyFile != l.Key(spec.Name) || tls.CAFile != l.Cert(spec.CA) {
				t.Errorf("files %q %q %q, want %q %q %q", tls.CAFile, tls.CertFile, tls.KeyFile, l.Cert(spec.CA), l.Cert(spec.Name), l.Key(spec.Name))
			}
			if len(tls.CertData) != 0 || len(tls.KeyData) != 0 {
				t.Error("inline certificate data would stop client-go from reloading the files")
			}
		})
	}
}

func TestOlderKubeletConfigGetsItsOwnPodLogsDir(t *testing.T) {
	l := prepared(t)
	path := l.Args("kubelet.yaml")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	old := strings.Replace(string(data), "podLogsDir: ${DATA_DIR}/var/log/pods\n", "", 1)
	if old == string(data) {
		t.Fatal("a new kubelet.yaml has no podLogsDir in the data dir")
	}
	if err := os.WriteFile(path, []byte(old), 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := Prepare(context.Background(), l, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Notices) != 1 || !strings.Contains(res.Notices[0], "podLogsDir") {
		t.Errorf("notices %q", res.Notices)
	}
	got, _ := os.ReadFile(path)
	if !strings.HasPrefix(string(got), old) || !strings.HasSuffix(string(got), "podLogsDir: ${DATA_DIR}/var/log/pods\n") {
		t.Errorf("migrated kubelet.yaml:\n%s", got)
	}
	// A second start has nothing to migrate.
	if res, err := Prepare(context.Background(), l, testOptions()); err != nil || len(res.Notices) != 0 {
		t.Errorf("second Prepare: %v %q", err, res.Notices)
	}
}

func TestServiceRangeComesFromTheArgsFiles(t *testing.T) {
	l := prepared(t)
	if data, _ := os.ReadFile(l.ServiceRangeRecord()); string(data) != "10.152.183.0/24\n" {
		t.Fatalf("recorded range %q", data)
	}
	server, err := pki.LoadCert(l.Cert("server"))
	if err != nil {
		t.Fatal(err)
	}
	if !slicesContainsIP(server.IPAddresses, "10.152.183.1") {
		t.Errorf("server.crt IPs %v lack the kubernetes Service IP", server.IPAddresses)
	}

	// A changed range on a started node is refused, and nothing changes.
	for _, c := range []string{"kube-apiserver", "kube-controller-manager"} {
		f, err := args.Load(l.Args(c))
		if err != nil {
			t.Fatal(err)
		}
		f.Set("service-cluster-ip-range", "10.96.0.0/16")
		if err := os.WriteFile(f.Path, f.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	yaml, _ := os.ReadFile(l.Args("kubelet.yaml"))
	if err := os.WriteFile(l.Args("kubelet.yaml"), []byte(strings.Replace(string(yaml), "- 10.152.183.10", "- 10.96.0.10", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Remove(l.Cert("server"))
	before := hashTree(t, l.Root)
	_, err = Prepare(context.Background(), l, testOptions())
	if err == nil || !strings.Contains(err.Error(), "started with 10.152.183.0/24") {
		t.Fatalf("changed range: %v", err)
	}
	assertSame(t, before, hashTree(t, l.Root))

	// On a new data dir, the edited files are what counts: the server
	// certificate names the new range's first IP.
	fresh, err := datadir.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(fresh.ArgsDir(), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"kube-apiserver", "kube-controller-manager", "kubelet.yaml"} {
		data, _ := os.ReadFile(l.Args(c))
		data = []byte(strings.ReplaceAll(string(data), l.Root, fresh.Root))
		if err := os.WriteFile(fresh.Args(c), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := Prepare(context.Background(), fresh, testOptions()); err != nil {
		t.Fatal(err)
	}
	server, err = pki.LoadCert(fresh.Cert("server"))
	if err != nil {
		t.Fatal(err)
	}
	if !slicesContainsIP(server.IPAddresses, "10.96.0.1") || slicesContainsIP(server.IPAddresses, "10.152.183.1") {
		t.Errorf("server.crt IPs %v: want 10.96.0.1, not 10.152.183.1", server.IPAddresses)
	}
	if data, _ := os.ReadFile(fresh.ServiceRangeRecord()); string(data) != "10.96.0.0/16\n" {
		t.Errorf("recorded range %q", data)
	}
}

func slicesContainsIP(ips []net.IP, want string) bool {
	for _, ip := range ips {
		if ip.String() == want {
			return true
		}
	}
	return false
}

// olderNode turns a prepared data dir back into one an older kubeseed
// made: a static CNI config over the whole cluster range, and single-node
// controller manager and scheduler flags.
func olderNode(t *testing.T, l datadir.Layout) {
	t.Helper()
	ctr, err := os.ReadFile(l.Args("containerd-template.toml"))
	if err != nil {
		t.Fatal(err)
	}
	newLines := `conf_dir = "${DATA_DIR}/run/cni-network"` + "\n      " + `conf_template = "${DATA_DIR}/args/cni-network.template"`
	if !strings.Contains(string(ctr), newLines) {
		t.Fatalf("containerd template lacks the CNI template lines:\n%s", ctr)
	}
	ctr = []byte(strings.Replace(string(ctr), newLines, `conf_dir = "${DATA_DIR}/args/cni-network"`, 1))
	must(t, os.WriteFile(l.Args("containerd-template.toml"), ctr, 0o644))
	must(t, os.Remove(l.Args("cni-network.template")))
	must(t, os.MkdirAll(l.Args("cni-network"), 0o755))
	must(t, os.WriteFile(filepath.Join(l.Args("cni-network"), "10-kubeseed.conflist"), legacyCNIConfig(l), 0o644))
	for _, c := range []string{"kube-controller-manager", "kube-scheduler"} {
		f, err := args.Load(l.Args(c))
		if err != nil {
			t.Fatal(err)
		}
		f.Remove("allocate-node-cidrs")
		f.Remove("node-cidr-mask-size")
		f.Set("leader-elect", "false")
		must(t, os.WriteFile(f.Path, f.Bytes(), 0o644))
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestOlderPodNetworkIsMigrated(t *testing.T) {
	cases := []struct {
		name     string
		edit     func(l datadir.Layout)
		migrated bool
		notice   string
	}{
		{name: "default static config", migrated: true, notice: "migrated the pod network"},
		{name: "edited static config is kept", edit: func(l datadir.Layout) {
			p := filepath.Join(l.Args("cni-network"), "10-kubeseed.conflist")
			data, _ := os.ReadFile(p)
			must(t, os.WriteFile(p, []byte(strings.Replace(string(data), `"hairpinMode": true`, `"hairpinMode": false`, 1)), 0o644))
		}, notice: "10-kubeseed.conflist was edited"},
		{name: "edited containerd template is kept", edit: func(l datadir.Layout) {
			p := l.Args("containerd-template.toml")
			data, _ := os.ReadFile(p)
			must(t, os.WriteFile(p, []byte(strings.Replace(string(data), `conf_dir = "${DATA_DIR}/args/cni-network"`, `conf_dir = "/etc/cni/net.d"`, 1)), 0o644))
		}, notice: "does not have the CNI line"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			l := prepared(t)
			olderNode(t, l)
			if c.edit != nil {
				c.edit(l)
			}
			ctrBefore, _ := os.ReadFile(l.Args("containerd-template.toml"))
			res, err := Prepare(context.Background(), l, testOptions())
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(strings.Join(res.Notices, "\n"), c.notice) {
				t.Errorf("notices %q lack %q", res.Notices, c.notice)
			}
			_, legacyErr := os.Stat(l.Args("cni-network"))
			_, tmplErr := os.Stat(l.Args("cni-network.template"))
			ctr, _ := os.ReadFile(l.Args("containerd-template.toml"))
			if c.migrated {
				if !os.IsNotExist(legacyErr) || tmplErr != nil || !strings.Contains(string(ctr), "conf_template") {
					t.Errorf("not migrated: legacy dir %v, template %v, containerd template:\n%s", legacyErr, tmplErr, ctr)
				}
			} else if legacyErr != nil || !os.IsNotExist(tmplErr) || string(ctr) != string(ctrBefore) {
				t.Errorf("the user's static network was touched: legacy dir %v, template %v", legacyErr, tmplErr)
			}
			for c, want := range map[string]map[string]string{
				"kube-controller-manager": {"allocate-node-cidrs": "true", "node-cidr-mask-size": "24", "leader-elect": "true"},
				"kube-scheduler":          {"leader-elect": "true"},
			} {
				f, err := args.Load(l.Args(c))
				if err != nil {
					t.Fatal(err)
				}
				for k, v := range want {
					if got, _ := f.Get(k); got != v {
						t.Errorf("args/%s --%s=%q, want %q", c, k, got, v)
					}
				}
			}
			// A second start changes nothing more.
			res, err = Prepare(context.Background(), l, testOptions())
			if err != nil {
				t.Fatal(err)
			}
			for _, n := range res.Notices {
				if strings.Contains(n, "migrated") {
					t.Errorf("second start migrated again: %q", n)
				}
			}
		})
	}
}

func TestPreOverlayTemplateIsMigrated(t *testing.T) {
	cases := []struct {
		name     string
		edit     func(string) string
		migrated bool
		notice   string
	}{
		{name: "the template kubeseed wrote", edit: func(s string) string { return s }, migrated: true, notice: "migrated "},
		{name: "an edited masquerading template is kept", edit: func(s string) string {
			return strings.Replace(s, `"hairpinMode": true`, `"hairpinMode": false`, 1)
		}, notice: `WARNING: `},
		{name: "an edited template without masquerade is the user's", edit: func(s string) string {
			return strings.Replace(s, `"ipMasq": true`, `"ipMasq": false`, 1)
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			l := prepared(t)
			path := l.Args("cni-network.template")
			before := c.edit(string(previousCNITemplate(l)))
			must(t, os.WriteFile(path, []byte(before), 0o644))
			must(t, os.Remove(l.Args("overlay")))
			res, err := Prepare(context.Background(), l, testOptions())
			if err != nil {
				t.Fatal(err)
			}
			notices := strings.Join(res.Notices, "\n")
			if c.notice == "" && notices != "" || !strings.Contains(notices, c.notice) {
				t.Errorf("notices %q, want %q", res.Notices, c.notice)
			}
			after, _ := os.ReadFile(path)
			if c.migrated {
				if !strings.Contains(string(after), `"ipMasq": false`) || !strings.Contains(string(after), `"mtu": `) {
					t.Errorf("not migrated:\n%s", after)
				}
			} else if string(after) != before {
				t.Errorf("the user's template was changed:\n%s", after)
			}
			if _, err := args.Load(l.Args("overlay")); err != nil {
				t.Errorf("args/overlay not re-created: %v", err)
			}
			// A second start changes nothing more.
			res, err = Prepare(context.Background(), l, testOptions())
			if err != nil {
				t.Fatal(err)
			}
			for _, n := range res.Notices {
				if strings.Contains(n, "migrated") {
					t.Errorf("second start migrated again: %q", n)
				}
			}
		})
	}
}

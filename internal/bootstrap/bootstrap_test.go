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

	"github.com/kubeseed/kubeseed/internal/datadir"
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
	if !strings.Contains(string(data), "--secure-port=16543") || !strings.Contains(string(data), "--authorization-mode=AlwaysAllow") {
		t.Errorf("args/kube-apiserver:\n%s", data)
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
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			l := prepared(t)
			f, err := os.OpenFile(c.file(l), os.O_APPEND|os.O_WRONLY, 0)
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

func TestLegacyPasswordFileIsNotIgnoredSilently(t *testing.T) {
	l := prepared(t)
	if err := os.WriteFile(l.Credential("basic_auth.csv"), []byte("pw,user,uid\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Prepare logs a warning; it must not fail the start.
	if _, err := Prepare(context.Background(), l, testOptions()); err != nil {
		t.Fatal(err)
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

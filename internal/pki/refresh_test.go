package pki_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	certutil "k8s.io/client-go/util/cert"

	"github.com/kubeseed/kubeseed/internal/bootstrap"
	"github.com/kubeseed/kubeseed/internal/datadir"
	"github.com/kubeseed/kubeseed/internal/fsutil"
	"github.com/kubeseed/kubeseed/internal/netconf"
	"github.com/kubeseed/kubeseed/internal/pki"
)

var t0 = time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)

type fixture struct {
	l   datadir.Layout
	m   pki.Manager
	ips []net.IP
	now time.Time
}

// newFixture bootstraps a data dir at t0 and returns a Manager on it whose
// clock and host IPs the test controls.
func newFixture(t *testing.T) *fixture {
	t.Helper()
	l, err := datadir.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{l: l, ips: []net.IP{net.ParseIP("192.0.2.10")}, now: t0}
	_, err = bootstrap.Prepare(context.Background(), l, bootstrap.Options{
		NodeName: "node-a", HostIPs: f.ips, Now: func() time.Time { return t0 },
	})
	if err != nil {
		t.Fatal(err)
	}
	f.m = pki.Manager{
		Layout:  l,
		Vars:    bootstrap.TemplateVars(netconf.Default()),
		Now:     func() time.Time { return f.now },
		HostIPs: func() ([]net.IP, error) { return f.ips, nil },
	}
	return f
}

// snapshot maps every file under certs/, credentials/ and certs-backup/ to
// its content.
func (f *fixture) snapshot(t *testing.T, dirs ...string) map[string]string {
	t.Helper()
	if len(dirs) == 0 {
		dirs = []string{f.l.CertsDir(), f.l.CredentialsDir()}
	}
	out := map[string]string{}
	for _, d := range dirs {
		err := filepath.WalkDir(d, func(p string, e fs.DirEntry, err error) error {
			if err != nil || e.IsDir() {
				return err
			}
			data, err := os.ReadFile(p)
			out[p] = string(data)
			return err
		})
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			t.Fatal(err)
		}
	}
	return out
}

func (f *fixture) cert(t *testing.T, name string) *x509.Certificate {
	t.Helper()
	c, err := pki.LoadCert(f.l.Cert(name))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (f *fixture) appendTemplate(t *testing.T, line string) {
	t.Helper()
	fh, err := os.OpenFile(f.l.CSRTemplate(), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	if _, err := fh.WriteString(line + "\n"); err != nil {
		t.Fatal(err)
	}
}

// changed lists the paths whose content differs between two snapshots.
func changed(a, b map[string]string) []string {
	var out []string
	for p := range a {
		if a[p] != b[p] {
			out = append(out, p)
		}
	}
	for p := range b {
		if _, ok := a[p]; !ok {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out
}

// verifies checks that c chains to ca for usage.
func verifies(c, ca *x509.Certificate, usage x509.ExtKeyUsage, at time.Time) error {
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	_, err := c.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: at, KeyUsages: []x509.ExtKeyUsage{usage}})
	return err
}

func TestRefreshServerCert(t *testing.T) {
	f := newFixture(t)
	before := f.snapshot(t)
	oldKey := before[f.l.Key("server")]
	f.appendTemplate(t, "DNS.6 = mydomain.com")
	f.ips = append(f.ips, net.ParseIP("198.51.100.7"))
	f.now = t0.Add(time.Hour)

	res, err := f.m.RefreshCert(context.Background(), "server.crt")
	if err != nil {
		t.Fatal(err)
	}
	after := f.snapshot(t)
	if got := changed(before, after); !slices.Equal(got, []string{f.l.CSRTemplate(), f.l.Cert("server")}) {
		t.Errorf("changed files %v, want only server.crt (and the edited template)", got)
	}
	if after[f.l.Key("server")] != oldKey {
		t.Error("server.key changed; a refresh keeps the key")
	}
	c := f.cert(t, "server")
	for _, host := range []string{"mydomain.com", "localhost", "kubernetes.default.svc", "198.51.100.7", "192.0.2.10", "127.0.0.1", "10.152.183.1"} {
		if err := c.VerifyHostname(host); err != nil {
			t.Errorf("new server.crt: %v", err)
		}
	}
	if err := verifies(c, f.cert(t, "ca"), x509.ExtKeyUsageServerAuth, f.now); err != nil {
		t.Error(err)
	}
	if !c.NotBefore.Before(f.now) || c.NotAfter != f.now.Add(pki.Year) {
		t.Errorf("validity %s..%s", c.NotBefore, c.NotAfter)
	}
	// The old certificate is in the backup, byte for byte.
	data, err := os.ReadFile(filepath.Join(res.Backup, "certs", "server.crt"))
	if err != nil || string(data) != before[f.l.Cert("server")] {
		t.Errorf("backup of server.crt: %v", err)
	}
	if !slices.Equal(res.Issued, []string{"server"}) || res.Old["server"].SerialNumber.Cmp(res.New["server"].SerialNumber) == 0 {
		t.Errorf("result %+v", res)
	}
}

func TestRefreshRefusesBadInput(t *testing.T) {
	cases := []struct {
		name  string
		setup func(t *testing.T, f *fixture)
		cert  string
		want  string
	}{
		{"malformed template", func(t *testing.T, f *fixture) { f.appendTemplate(t, "DNS.7 mydomain.org") },
			"server.crt", "csr.conf.template:26: expected \"key = value\""},
		{"duplicate key in template", func(t *testing.T, f *fixture) { f.appendTemplate(t, "DNS.1 = x.example") },
			"server.crt", "csr.conf.template:26: duplicate key \"DNS.1\""},
		{"CA refresh with a malformed template", func(t *testing.T, f *fixture) { f.appendTemplate(t, "IP.9 = 300.1.1.1") },
			"ca.crt", "csr.conf.template:26: IP.9"},
		{"unknown certificate", nil, "nope.crt", `--cert "nope.crt": no such certificate; one of: ca.crt,`},
		{"bare key", nil, "serviceaccount", "no such certificate"},
		{"missing certificate", func(t *testing.T, f *fixture) { os.Remove(f.l.Cert("proxy")) }, "server.crt", "proxy.crt"},
		{"mismatched key", func(t *testing.T, f *fixture) {
			data, _ := os.ReadFile(f.l.Key("admin"))
			os.WriteFile(f.l.Key("server"), data, 0o600)
		}, "server.crt", "server.key does not match server.crt"},
		{"CA refresh on a running node", func(t *testing.T, f *fixture) {
			f.m.Running = func() (int, error) { return 4242, nil }
		}, "ca.crt", "the node is running (pid 4242)"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t)
			if c.setup != nil {
				c.setup(t, f)
			}
			before := f.snapshot(t)
			_, err := f.m.RefreshCert(context.Background(), c.cert)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err %v, want it to contain %q", err, c.want)
			}
			if got := changed(before, f.snapshot(t)); len(got) != 0 {
				t.Errorf("a refused refresh changed %v", got)
			}
			if _, err := os.Stat(f.l.CertsBackupDir()); !os.IsNotExist(err) {
				t.Errorf("a refused refresh made a backup")
			}
		})
	}
}

func loadKubeconfigCerts(t *testing.T, path string) (ca, client *x509.Certificate, tlsCfg struct{ CAFile, CertFile string }) {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		t.Fatal(err)
	}
	tlsCfg.CAFile, tlsCfg.CertFile = cfg.CAFile, cfg.CertFile
	if len(cfg.CAData) > 0 {
		c, err := x509.ParseCertificate(pemBlock(t, cfg.CAData))
		if err != nil {
			t.Fatal(err)
		}
		ca = c
	}
	if len(cfg.CertData) > 0 {
		c, err := x509.ParseCertificate(pemBlock(t, cfg.CertData))
		if err != nil {
			t.Fatal(err)
		}
		client = c
	}
	return ca, client, tlsCfg
}

func pemBlock(t *testing.T, data []byte) []byte {
	t.Helper()
	certs, err := certutil.ParseCertsPEM(data)
	if err != nil {
		t.Fatal(err)
	}
	return certs[0].Raw
}

func pemEncode(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// userKubeconfig writes credentials/users/alice.config with a client
// certificate signed by the current CA, where `kubeseed add-user` does.
func userKubeconfig(t *testing.T, f *fixture) *x509.Certificate {
	t.Helper()
	ca := &pki.KeyPair{Cert: f.cert(t, "ca")}
	keyPEM, _ := os.ReadFile(f.l.Key("ca"))
	k, err := pki.ParseKey(keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	ca.Key = k
	spec := pki.Spec{Name: "alice", CA: "ca", CommonName: "alice", Organization: []string{"devs"},
		Usages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, Lifetime: pki.Year}
	kp, err := pki.Issue(spec, pki.Inputs{}, ca, f.now)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := pki.EncodeKey(kp.Key)
	cfg := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: c
  cluster:
    server: https://127.0.0.1:16443
    certificate-authority-data: %s
users:
- name: alice
  user:
    client-certificate-data: %s
    client-key-data: %s
contexts:
- name: c
  context: {cluster: c, user: alice}
current-context: c
`, b64(pki.EncodeCert(ca.Cert)), b64(pki.EncodeCert(kp.Cert)), b64(key))
	if err := os.MkdirAll(f.l.UsersDir(), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f.l.UserKubeconfig("alice"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return kp.Cert
}

// TestCAChange changes each CA in every way a user can and checks that
// every leaf it signs is re-issued under it with a new key, that every
// kubeconfig, users' included, follows, and that nothing else changes.
func TestCAChange(t *testing.T) {
	cases := []struct {
		name   string
		ca     string
		change func(t *testing.T, f *fixture) (*pki.Result, error)
	}{
		{"refresh ca.crt", "ca", func(t *testing.T, f *fixture) (*pki.Result, error) {
			return f.m.RefreshCert(context.Background(), "ca.crt")
		}},
		{"refresh front-proxy-ca.crt", "front-proxy-ca", func(t *testing.T, f *fixture) (*pki.Result, error) {
			return f.m.RefreshCert(context.Background(), "front-proxy-ca.crt")
		}},
		{"refresh etcd-ca.crt", "etcd-ca", func(t *testing.T, f *fixture) (*pki.Result, error) {
			return f.m.RefreshCert(context.Background(), "etcd-ca.crt")
		}},
		{"install CA_DIR", "ca", func(t *testing.T, f *fixture) (*pki.Result, error) {
			return f.m.InstallCA(context.Background(), newCA(t, nil, nil))
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t)
			alice := userKubeconfig(t, f)
			before := f.snapshot(t)
			oldCA := f.cert(t, c.ca)
			f.now = t0.Add(24 * time.Hour)
			res, err := c.change(t, f)
			if err != nil {
				t.Fatal(err)
			}
			after := f.snapshot(t)
			var want []string
			for _, s := range pki.Table {
				if s.Name == c.ca || s.CA == c.ca {
					want = append(want, s.Name)
				}
			}
			if !slices.Equal(res.Issued, want) {
				t.Errorf("issued %v, want %v", res.Issued, want)
			}
			newCA := f.cert(t, c.ca)
			if newCA.Equal(oldCA) || after[f.l.Key(c.ca)] == before[f.l.Key(c.ca)] {
				t.Fatalf("%s was not replaced", c.ca)
			}
			for _, spec := range pki.Table {
				if spec.KeyOnly || spec.Name == c.ca {
					continue
				}
				crtChanged := after[f.l.Cert(spec.Name)] != before[f.l.Cert(spec.Name)]
				keyChanged := after[f.l.Key(spec.Name)] != before[f.l.Key(spec.Name)]
				if spec.CA != c.ca {
					if crtChanged || keyChanged {
						t.Errorf("%s changed, but %s is not signed by %s", spec.Name, spec.Name, c.ca)
					}
					continue
				}
				if err := verifies(f.cert(t, spec.Name), newCA, spec.Usages[0], f.now); err != nil {
					t.Errorf("%s: %v", spec.Name, err)
				}
				if !keyChanged {
					t.Errorf("%s.key was kept; a CA change gives every leaf it signs a new key", spec.Name)
				}
				if _, err := tls.LoadX509KeyPair(f.l.Cert(spec.Name), f.l.Key(spec.Name)); err != nil {
					t.Errorf("%s: %v", spec.Name, err)
				}
			}
			// Every kubeconfig works with the new set.
			for _, spec := range pki.Table {
				if spec.Kubeconfig == "" {
					continue
				}
				path := f.l.Credential(spec.Kubeconfig)
				ca, client, files := loadKubeconfigCerts(t, path)
				if spec.EmbedInKubeconfig {
					want := f.cert(t, "ca")
					if !ca.Equal(want) || !client.Equal(f.cert(t, spec.Name)) {
						t.Errorf("%s: inline CA or certificate not updated", spec.Kubeconfig)
					}
					checkInlineKey(t, path)
				} else if files.CAFile != f.l.Cert("ca") || files.CertFile != f.l.Cert(spec.Name) {
					t.Errorf("%s: files %+v", spec.Kubeconfig, files)
				}
			}
			// The user's kubeconfig in credentials/users/ follows a cluster
			// CA change: same identity, a new key.
			alicePath := f.l.UserKubeconfig("alice")
			if c.ca != "ca" {
				if after[alicePath] != before[alicePath] {
					t.Errorf("%s changed, but its CA did not", alicePath)
				}
				return
			}
			ca, client, _ := loadKubeconfigCerts(t, alicePath)
			if !ca.Equal(newCA) {
				t.Errorf("%s: CA not updated", alicePath)
			}
			if err := verifies(client, newCA, x509.ExtKeyUsageClientAuth, f.now); err != nil {
				t.Errorf("%s: %v", alicePath, err)
			}
			if client.Subject.String() != alice.Subject.String() {
				t.Errorf("%s: re-signed certificate changed identity: %s", alicePath, client.Subject)
			}
			if client.PublicKey.(*ecdsa.PublicKey).Equal(alice.PublicKey) {
				t.Errorf("%s: the key was kept; a CA change gives it a new one", alicePath)
			}
			checkInlineKey(t, alicePath)
			if !slices.Contains(res.Files, alicePath) {
				t.Errorf("result files %v lack %s", res.Files, alicePath)
			}
		})
	}
}

// checkInlineKey fails unless path's inline client key matches its
// inline client certificate.
func checkInlineKey(t *testing.T, path string) {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tls.X509KeyPair(cfg.CertData, cfg.KeyData); err != nil {
		t.Errorf("%s: client key and certificate: %v", path, err)
	}
}

// newCA makes a CA directory for InstallCA.
func newCA(t *testing.T, mutate func(tmpl *x509.Certificate), key any) string {
	t.Helper()
	if key == nil {
		k, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		key = k
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "corp-ca", Organization: []string{"Corp"}},
		NotBefore: t0.Add(-time.Hour), NotAfter: t0.Add(5 * pki.Year),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	if mutate != nil {
		mutate(tmpl)
	}
	signer := key.(crypto.Signer)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, signer.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	c, _ := x509.ParseCertificate(der)
	if err := os.WriteFile(filepath.Join(dir, "ca.crt"), pki.EncodeCert(c), 0o600); err != nil {
		t.Fatal(err)
	}
	der, err = x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "ca.key"), pemEncode("PRIVATE KEY", der), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestInstallCA(t *testing.T) {
	f := newFixture(t)
	dir := newCA(t, nil, nil)
	res, err := f.m.InstallCA(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := os.ReadFile(filepath.Join(dir, "ca.crt"))
	got, _ := os.ReadFile(f.l.Cert("ca"))
	if string(got) != string(want) {
		t.Error("certs/ca.crt is not the supplied certificate")
	}
	ca := f.cert(t, "ca")
	for _, name := range res.Issued {
		if name == "ca" {
			continue
		}
		if err := verifies(f.cert(t, name), ca, x509.ExtKeyUsageAny, f.now); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if len(res.Issued) != len(pki.Signed("ca"))+1 {
		t.Errorf("issued %v", res.Issued)
	}
}

func TestInstallCARefusesBadCA(t *testing.T) {
	otherKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	cases := []struct {
		name string
		dir  func(t *testing.T) string
		want string
	}{
		{"key does not match", func(t *testing.T) string {
			d := newCA(t, nil, nil)
			der, _ := x509.MarshalPKCS8PrivateKey(otherKey)
			os.WriteFile(filepath.Join(d, "ca.key"), pemEncode("PRIVATE KEY", der), 0o600)
			return d
		}, "ca.key does not match"},
		{"not a CA", func(t *testing.T) string {
			return newCA(t, func(c *x509.Certificate) { c.IsCA = false; c.KeyUsage = x509.KeyUsageDigitalSignature }, nil)
		}, "is not a CA certificate"},
		{"CA without certSign", func(t *testing.T) string {
			return newCA(t, func(c *x509.Certificate) { c.KeyUsage = x509.KeyUsageDigitalSignature }, nil)
		}, "lacks keyCertSign"},
		{"expired", func(t *testing.T) string {
			return newCA(t, func(c *x509.Certificate) { c.NotBefore, c.NotAfter = t0.Add(-2*pki.Year), t0.Add(-time.Hour) }, nil)
		}, "expired on"},
		{"not yet valid", func(t *testing.T) string {
			return newCA(t, func(c *x509.Certificate) { c.NotBefore = t0.Add(time.Hour) }, nil)
		}, "is not valid before"},
		{"ed25519 key", func(t *testing.T) string { return newCA(t, nil, edKey) }, "RSA or ECDSA"},
		{"missing key", func(t *testing.T) string {
			d := newCA(t, nil, nil)
			os.Remove(filepath.Join(d, "ca.key"))
			return d
		}, "ca.key"},
		{"garbage certificate", func(t *testing.T) string {
			d := newCA(t, nil, nil)
			os.WriteFile(filepath.Join(d, "ca.crt"), []byte("junk"), 0o600)
			return d
		}, "ca.crt"},
		{"empty dir", func(t *testing.T) string { return t.TempDir() }, "ca.crt"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t)
			before := f.snapshot(t)
			_, err := f.m.InstallCA(context.Background(), c.dir(t))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err %v, want %q", err, c.want)
			}
			if got := changed(before, f.snapshot(t)); len(got) != 0 {
				t.Errorf("refused install changed %v", got)
			}
		})
	}
	t.Run("running node", func(t *testing.T) {
		f := newFixture(t)
		f.m.Running = func() (int, error) { return 99, nil }
		before := f.snapshot(t)
		if _, err := f.m.InstallCA(context.Background(), newCA(t, nil, nil)); !errors.Is(err, pki.ErrNodeRunning) {
			t.Fatalf("err %v", err)
		}
		if got := changed(before, f.snapshot(t)); len(got) != 0 {
			t.Errorf("changed %v", got)
		}
	})
}

func TestUndo(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	s0 := f.snapshot(t)
	if _, err := f.m.RefreshCert(ctx, "ca.crt"); err != nil {
		t.Fatal(err)
	}
	s1 := f.snapshot(t)
	if _, err := f.m.RefreshCert(ctx, "front-proxy-client.crt"); err != nil {
		t.Fatal(err)
	}
	if got := changed(s1, f.snapshot(t)); !slices.Equal(got, []string{f.l.Cert("front-proxy-client")}) {
		t.Fatalf("front-proxy refresh changed %v", got)
	}
	for _, want := range []map[string]string{s1, s0} {
		if _, err := f.m.Undo(ctx); err != nil {
			t.Fatal(err)
		}
		if got := changed(want, f.snapshot(t)); len(got) != 0 {
			t.Fatalf("undo left %v different", got)
		}
	}
	if _, err := f.m.Undo(ctx); err == nil || !strings.Contains(err.Error(), "no backup to restore") {
		t.Fatalf("third undo: %v", err)
	}
	if entries, _ := os.ReadDir(f.l.CertsBackupDir()); len(entries) != 0 {
		t.Errorf("undo left backups: %v", entries)
	}
}

func TestUndoRefusals(t *testing.T) {
	ctx := context.Background()
	t.Run("broken set", func(t *testing.T) {
		f := newFixture(t)
		if _, err := f.m.RefreshCert(ctx, "server.crt"); err != nil {
			t.Fatal(err)
		}
		res, err := f.m.RefreshCert(ctx, "ca.crt")
		if err != nil {
			t.Fatal(err)
		}
		// Without the CA refresh's backup, undo would bring back a
		// server.crt the current CA did not sign.
		os.RemoveAll(res.Backup)
		before := f.snapshot(t, f.l.CertsDir(), f.l.CredentialsDir(), f.l.CertsBackupDir())
		_, err = f.m.Undo(ctx)
		if err == nil || !strings.Contains(err.Error(), "would leave a broken set") {
			t.Fatalf("err %v", err)
		}
		if got := changed(before, f.snapshot(t, f.l.CertsDir(), f.l.CredentialsDir(), f.l.CertsBackupDir())); len(got) != 0 {
			t.Errorf("changed %v", got)
		}
	})
	t.Run("CA undo on a running node", func(t *testing.T) {
		f := newFixture(t)
		if _, err := f.m.RefreshCert(ctx, "ca.crt"); err != nil {
			t.Fatal(err)
		}
		f.m.Running = func() (int, error) { return 7, nil }
		if _, err := f.m.Undo(ctx); !errors.Is(err, pki.ErrNodeRunning) {
			t.Fatalf("err %v", err)
		}
		// A leaf undo is fine while running.
		f.m.Running = nil
		if _, err := f.m.RefreshCert(ctx, "server.crt"); err != nil {
			t.Fatal(err)
		}
		f.m.Running = func() (int, error) { return 7, nil }
		if _, err := f.m.Undo(ctx); err != nil {
			t.Fatal(err)
		}
	})
}

func TestBackupsArePruned(t *testing.T) {
	f := newFixture(t)
	f.m.KeepBackups = 3
	for i := range 5 {
		f.now = t0.Add(time.Duration(i) * time.Second) // same name prefix must not collide
		if _, err := f.m.RefreshCert(context.Background(), "server.crt"); err != nil {
			t.Fatal(err)
		}
	}
	entries, err := os.ReadDir(f.l.CertsBackupDir())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if len(names) != 3 || !strings.HasPrefix(names[0], "0003-") || !strings.HasPrefix(names[2], "0005-") {
		t.Errorf("backups %v", names)
	}
	st, _ := os.Stat(f.l.CertsBackupDir())
	if st.Mode().Perm() != 0o700 {
		t.Errorf("certs-backup mode %o", st.Mode().Perm())
	}
}

func TestRenew(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	leaves := 0
	for _, s := range pki.Table {
		if !s.KeyOnly && !s.IsCA() {
			leaves++
		}
	}

	f.now = t0.Add(300 * 24 * time.Hour) // 65 days left
	before := f.snapshot(t)
	rep, err := f.m.Renew(ctx, pki.DefaultRenewBefore)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Renewed) != 0 || rep.Result != nil || len(changed(before, f.snapshot(t))) != 0 {
		t.Fatalf("renewed %v with 65 days left", rep.Renewed)
	}
	if want := t0.Add(pki.Year - pki.DefaultRenewBefore); !rep.NextAt.Equal(want) || rep.Next == "" {
		t.Errorf("next renewal %s at %s, want %s", rep.Next, rep.NextAt, want)
	}

	f.now = t0.Add(340 * 24 * time.Hour) // 25 days left
	rep, err = f.m.Renew(ctx, pki.DefaultRenewBefore)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Renewed) != leaves || len(rep.Blocked) != 0 {
		t.Fatalf("renewed %v blocked %v, want all %d leaves", rep.Renewed, rep.Blocked, leaves)
	}
	after := f.snapshot(t)
	for _, s := range pki.Table {
		if s.KeyOnly {
			continue
		}
		c := f.cert(t, s.Name)
		if s.IsCA() {
			if after[f.l.Cert(s.Name)] != before[f.l.Cert(s.Name)] {
				t.Errorf("CA %s renewed automatically", s.Name)
			}
			continue
		}
		if c.NotAfter != f.now.Add(pki.Year) {
			t.Errorf("%s expires %s", s.Name, c.NotAfter)
		}
		if after[f.l.Key(s.Name)] != before[f.l.Key(s.Name)] {
			t.Errorf("%s.key changed", s.Name)
		}
	}
	if !rep.NextAt.Equal(f.now.Add(pki.Year - pki.DefaultRenewBefore)) {
		t.Errorf("next renewal at %s", rep.NextAt)
	}
	ca, client, _ := loadKubeconfigCerts(t, f.l.AdminKubeconfig())
	if !client.Equal(f.cert(t, "admin")) || !ca.Equal(f.cert(t, "ca")) {
		t.Error("client.config does not carry the renewed admin certificate")
	}
}

func TestRenewBlockedByCA(t *testing.T) {
	f := newFixture(t)
	// A CA that expires in 20 days caps every leaf it signs.
	dir := newCA(t, func(c *x509.Certificate) { c.NotAfter = t0.Add(20 * 24 * time.Hour) }, nil)
	if _, err := f.m.InstallCA(context.Background(), dir); err != nil {
		t.Fatal(err)
	}
	rep, err := f.m.Renew(context.Background(), pki.DefaultRenewBefore)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Renewed) != 0 || len(rep.Blocked) != len(pki.Signed("ca")) {
		t.Errorf("renewed %v blocked %v", rep.Renewed, rep.Blocked)
	}
	if slices.Contains(rep.Blocked, rep.Next) {
		t.Errorf("next renewal names a blocked certificate %s", rep.Next)
	}
}

func TestRenewKeepsSANsWithBrokenTemplate(t *testing.T) {
	f := newFixture(t)
	f.appendTemplate(t, "DNS.6 = mydomain.com")
	if _, err := f.m.RefreshCert(context.Background(), "server.crt"); err != nil {
		t.Fatal(err)
	}
	f.appendTemplate(t, "DNS.7 broken")
	f.now = t0.Add(340 * 24 * time.Hour)
	rep, err := f.m.Renew(context.Background(), pki.DefaultRenewBefore)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Template == nil || !strings.Contains(rep.Template.Error(), "csr.conf.template:27:") {
		t.Errorf("template error %v", rep.Template)
	}
	c := f.cert(t, "server")
	if !c.NotAfter.Equal(f.now.Add(pki.Year)) || c.VerifyHostname("mydomain.com") != nil {
		t.Errorf("server.crt not renewed with its SANs: %s %v", c.NotAfter, c.DNSNames)
	}
}

func TestSyncSANs(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	if res, err := f.m.SyncSANs(ctx); err != nil || res != nil {
		t.Fatalf("nothing changed, yet: %+v %v", res, err)
	}
	f.ips = []net.IP{net.ParseIP("192.0.2.10"), net.ParseIP("198.51.100.7")}
	res, err := f.m.SyncSANs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, s := range pki.Table {
		if s.SANs == pki.TemplateSANs || s.SANs == pki.HostSANs {
			want = append(want, s.Name)
		}
	}
	if !slices.Equal(res.Issued, want) {
		t.Errorf("re-issued %v, want %v", res.Issued, want)
	}
	for _, name := range want {
		if err := f.cert(t, name).VerifyHostname("198.51.100.7"); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	// A broken template holds back server.crt only.
	f.appendTemplate(t, "DNS.6 bad")
	f.ips = f.ips[:1]
	res, err = f.m.SyncSANs(ctx)
	if err == nil || !strings.Contains(err.Error(), "csr.conf.template:") {
		t.Errorf("template error %v", err)
	}
	if res == nil || slices.Contains(res.Issued, "server") || len(res.Issued) != len(want)-1 {
		t.Errorf("re-issued %+v", res)
	}
	if f.cert(t, "server").VerifyHostname("198.51.100.7") != nil {
		t.Error("server.crt changed despite the broken template")
	}
}

// TestRefreshCrashAtEveryPoint kills a CA refresh after every file
// operation and checks that recovery leaves the old set or the new one.
func TestRefreshCrashAtEveryPoint(t *testing.T) {
	base := newFixture(t)
	userKubeconfig(t, base)
	old := base.snapshot(t)
	errCrash := errors.New("crash")
	for n := 1; ; n++ {
		if n > 500 {
			t.Fatal("refresh never completed")
		}
		f := newFixture(t)
		copyTree(t, base.l.Root, f.l.Root)
		count := 0
		f.m.AfterOp = func() error {
			count++
			if count == n {
				return errCrash
			}
			return nil
		}
		_, err := f.m.RefreshCert(context.Background(), "ca.crt")
		completed := err == nil
		if err != nil && !errors.Is(err, fsutil.ErrInterrupted) {
			t.Fatalf("op %d: %v", n, err)
		}
		f.m.AfterOp = nil
		if _, err := f.m.Recover(context.Background()); err != nil {
			t.Fatal(err)
		}
		now := f.snapshot(t)
		rebase := map[string]string{}
		for p, d := range now {
			rebase[strings.Replace(p, f.l.Root, base.l.Root, 1)] = d
		}
		if maps.Equal(rebase, old) {
			if completed {
				t.Fatal("a completed refresh left the old set")
			}
			continue
		}
		// Otherwise it must be the whole new set: every chain verifies
		// against the new CA and the backup holds the old one.
		if rebase[base.l.Cert("ca")] == old[base.l.Cert("ca")] {
			t.Fatalf("op %d: mixed set: files changed but ca.crt did not: %v", n, changed(old, rebase))
		}
		if _, err := f.m.RefreshCert(context.Background(), "server.crt"); err != nil {
			t.Fatalf("op %d: the recovered set does not load: %v", n, err)
		}
		ca, client, _ := loadKubeconfigCerts(t, f.l.UserKubeconfig("alice"))
		if err := verifies(client, f.cert(t, "ca"), x509.ExtKeyUsageClientAuth, f.now); err != nil || !ca.Equal(f.cert(t, "ca")) {
			t.Fatalf("op %d: alice.config not moved to the new CA: %v", n, err)
		}
		if completed {
			t.Logf("a CA refresh takes %d file operations; each was interrupted once", n-1)
			return
		}
	}
}

func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	if err := os.RemoveAll(dst); err != nil {
		t.Fatal(err)
	}
	err := filepath.WalkDir(src, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		info, err := e.Info()
		if err != nil {
			return err
		}
		if e.IsDir() {
			return os.MkdirAll(target, info.Mode().Perm())
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, data, info.Mode().Perm())
	})
	if err != nil {
		t.Fatal(err)
	}
}

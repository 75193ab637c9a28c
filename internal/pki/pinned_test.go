package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"maps"
	"os"
	"slices"
	"testing"
	"time"
)

// TestIssuedCertificatesPinned issues the table to disk and checks the
// parsed files against literals, not against Table's own fields: the README
// promises CAs for 10 years and leaves for 1.
func TestIssuedCertificatesPinned(t *testing.T) {
	const (
		caLife   = 3650 * 24 * time.Hour
		leafLife = 365 * 24 * time.Hour
	)
	var (
		server = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		client = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
		both   = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	)
	type want struct {
		signer string // "" for a self-signed CA
		cn     string
		org    []string
		usages []x509.ExtKeyUsage
	}
	wants := map[string]want{
		"ca":             {cn: "kubeseed-ca"},
		"front-proxy-ca": {cn: "kubeseed-front-proxy-ca"},
		"etcd-ca":        {cn: "kubeseed-etcd-ca"},

		"server":                        {"ca", "kube-apiserver", nil, server},
		"apiserver-kubelet-client":      {"ca", "kube-apiserver-kubelet-client", nil, client},
		"auth-webhook":                  {"ca", "kubeseed-auth-webhook", nil, server},
		"apiserver-auth-webhook-client": {"ca", "kube-apiserver-auth-webhook-client", nil, client},
		"front-proxy-client":            {"front-proxy-ca", "front-proxy-client", nil, client},
		"etcd-server":                   {"etcd-ca", "etcd-server", nil, both},
		"etcd-peer":                     {"etcd-ca", "etcd-peer", nil, both},
		"apiserver-etcd-client":         {"etcd-ca", "kube-apiserver-etcd-client", nil, client},
		"kube-controller-manager":       {"ca", "kube-controller-manager", nil, server},
		"kube-scheduler":                {"ca", "kube-scheduler", nil, server},
		"cluster-agent":                 {"ca", "kubeseed-cluster-agent", nil, server},
		"kubelet-serving":               {"ca", "system:node:node-a", nil, server},

		"admin":      {"ca", "admin", []string{"system:masters"}, client},
		"controller": {"ca", "system:kube-controller-manager", nil, client},
		"scheduler":  {"ca", "system:kube-scheduler", nil, client},
		"kubelet":    {"ca", "system:node:node-a", []string{"system:nodes"}, client},
		"proxy":      {"ca", "system:kube-proxy", nil, client},
	}
	const keyOnly = "serviceaccount"

	// Every spec in the table is pinned here, and nothing more.
	var names []string
	for _, s := range Table {
		names = append(names, s.Name)
	}
	for _, n := range names {
		if _, ok := wants[n]; !ok && n != keyOnly {
			t.Errorf("Table has %s, which this test does not pin", n)
		}
	}
	for n := range wants {
		if !slices.Contains(names, n) {
			t.Errorf("Table lacks %s", n)
		}
	}

	now := time.Date(2026, 3, 1, 8, 30, 0, 0, time.UTC)
	s := Store{Dir: t.TempDir()}
	if _, _, err := s.Ensure(Table, testInputs(t), now); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(s.KeyPath(keyOnly)); err != nil {
		t.Errorf("%s key: %v", keyOnly, err)
	}
	if _, err := os.Stat(s.CertPath(keyOnly)); !os.IsNotExist(err) {
		t.Errorf("%s is a bare key, but %s exists (%v)", keyOnly, s.CertPath(keyOnly), err)
	}

	certs := map[string]*x509.Certificate{}
	for n := range wants {
		c, err := LoadCert(s.CertPath(n))
		if err != nil {
			t.Fatal(err)
		}
		certs[n] = c
	}
	for _, n := range slices.Sorted(maps.Keys(wants)) {
		w := wants[n]
		t.Run(n, func(t *testing.T) {
			c := certs[n]
			isCA := w.signer == ""
			if c.Subject.CommonName != w.cn {
				t.Errorf("CN %q, want %q", c.Subject.CommonName, w.cn)
			}
			if !slices.Equal(c.Subject.Organization, w.org) {
				t.Errorf("O %q, want %q", c.Subject.Organization, w.org)
			}
			if c.IsCA != isCA || c.BasicConstraintsValid != isCA {
				t.Errorf("IsCA %v (basic constraints %v), want %v", c.IsCA, c.BasicConstraintsValid, isCA)
			}
			life, ku := leafLife, x509.KeyUsageDigitalSignature
			if isCA {
				life, ku = caLife, x509.KeyUsageDigitalSignature|x509.KeyUsageCertSign|x509.KeyUsageCRLSign
			}
			if got := c.NotAfter.Sub(now); got != life {
				t.Errorf("lifetime %s, want %s", got, life)
			}
			if got := now.Sub(c.NotBefore); got != 5*time.Minute {
				t.Errorf("NotBefore %s before issue, want 5m", got)
			}
			if c.KeyUsage != ku {
				t.Errorf("key usage %b, want %b", c.KeyUsage, ku)
			}
			if !slices.Equal(c.ExtKeyUsage, w.usages) {
				t.Errorf("ext key usages %v, want %v", c.ExtKeyUsage, w.usages)
			}
			if pub, ok := c.PublicKey.(*ecdsa.PublicKey); !ok || pub.Curve != elliptic.P256() {
				t.Errorf("public key %T, want ECDSA P-256", c.PublicKey)
			}
			signer := n
			if !isCA {
				signer = w.signer
			}
			ca := certs[signer]
			if err := c.CheckSignatureFrom(ca); err != nil {
				t.Errorf("not signed by %s: %v", signer, err)
			}
			if c.Issuer.CommonName != ca.Subject.CommonName {
				t.Errorf("issuer %q, want %q", c.Issuer.CommonName, ca.Subject.CommonName)
			}
		})
	}
}

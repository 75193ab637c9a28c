package pki

import (
	"crypto/x509"
	"net"
	"slices"
	"testing"
	"time"
)

func testInputs(t *testing.T) Inputs {
	t.Helper()
	tmpl, err := ParseTemplate("csr.conf.template", DefaultTemplate(), map[string]string{"SERVICE_IP": "10.152.183.1"})
	if err != nil {
		t.Fatal(err)
	}
	return Inputs{NodeName: "node-a", HostIPs: []net.IP{net.ParseIP("192.0.2.10"), net.ParseIP("fd00::10")}, Template: tmpl}
}

// issueAll issues the whole table into memory, CAs first.
func issueAll(t *testing.T, in Inputs, now time.Time) map[string]*KeyPair {
	t.Helper()
	out := map[string]*KeyPair{}
	for _, spec := range Table {
		kp, err := Issue(spec, in, out[spec.CA], now)
		if err != nil {
			t.Fatalf("%s: %v", spec.Name, err)
		}
		out[spec.Name] = kp
	}
	return out
}

func TestTableIsWellFormed(t *testing.T) {
	seen := map[string]bool{}
	kubeconfigs := map[string]bool{}
	for _, spec := range Table {
		if seen[spec.Name] {
			t.Errorf("duplicate spec %s", spec.Name)
		}
		if spec.CA != "" && !seen[spec.CA] {
			t.Errorf("%s is signed by %s, which must come earlier in the table", spec.Name, spec.CA)
		}
		if spec.CA != "" {
			if ca, ok := Lookup(spec.CA); !ok || !ca.IsCA() {
				t.Errorf("%s: signer %s is not a CA", spec.Name, spec.CA)
			}
		}
		if spec.Kubeconfig != "" {
			if kubeconfigs[spec.Kubeconfig] {
				t.Errorf("two specs write %s", spec.Kubeconfig)
			}
			kubeconfigs[spec.Kubeconfig] = true
			if !slices.Contains(spec.Usages, x509.ExtKeyUsageClientAuth) {
				t.Errorf("%s has a kubeconfig but no client auth usage", spec.Name)
			}
		}
		seen[spec.Name] = true
	}
	for _, want := range []string{"client.config", "controller.config", "scheduler.config", "kubelet.config", "proxy.config"} {
		if !kubeconfigs[want] {
			t.Errorf("no spec writes %s", want)
		}
	}
}

func TestIssuedCertificates(t *testing.T) {
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	in := testInputs(t)
	pairs := issueAll(t, in, now)

	for _, spec := range Table {
		t.Run(spec.Name, func(t *testing.T) {
			kp := pairs[spec.Name]
			if spec.KeyOnly {
				if kp.Cert != nil || kp.Key == nil {
					t.Fatal("a bare key spec must yield a key and no certificate")
				}
				return
			}
			c := kp.Cert
			if err := Verify(spec, kp, pairs[spec.CA]); err != nil {
				t.Fatalf("verify: %v", err)
			}
			if got := c.NotAfter.Sub(now); got != spec.Lifetime {
				t.Errorf("lifetime %s, want %s", got, spec.Lifetime)
			}
			if c.NotBefore.After(now) {
				t.Errorf("NotBefore %s is after issue time", c.NotBefore)
			}
			if c.IsCA != spec.IsCA() {
				t.Errorf("IsCA = %v", c.IsCA)
			}
			if spec.IsCA() {
				if c.KeyUsage&x509.KeyUsageCertSign == 0 {
					t.Error("CA without CertSign")
				}
			} else {
				if !slices.Equal(c.ExtKeyUsage, spec.Usages) {
					t.Errorf("ext key usages %v, want %v", c.ExtKeyUsage, spec.Usages)
				}
				if c.KeyUsage&x509.KeyUsageCertSign != 0 {
					t.Error("leaf may sign certificates")
				}
				// The chain must verify at "now" for the usages it is for.
				pool := x509.NewCertPool()
				pool.AddCert(pairs[spec.CA].Cert)
				if _, err := c.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: now, KeyUsages: spec.Usages}); err != nil {
					t.Errorf("chain: %v", err)
				}
			}
		})
	}

	t.Run("identities", func(t *testing.T) {
		cases := []struct{ name, cn, org string }{
			{"admin", "admin", "system:masters"},
			{"kubelet", "system:node:node-a", "system:nodes"},
			{"proxy", "system:kube-proxy", ""},
			{"controller", "system:kube-controller-manager", ""},
			{"scheduler", "system:kube-scheduler", ""},
			{"apiserver-auth-webhook-client", "kube-apiserver-auth-webhook-client", ""},
		}
		for _, c := range cases {
			s := pairs[c.name].Cert.Subject
			if s.CommonName != c.cn {
				t.Errorf("%s CN %q, want %q", c.name, s.CommonName, c.cn)
			}
			if got := firstOrEmpty(s.Organization); got != c.org {
				t.Errorf("%s O %q, want %q", c.name, got, c.org)
			}
		}
	})

	t.Run("server SANs", func(t *testing.T) {
		c := pairs["server"].Cert
		wantDNS := []string{"kubernetes", "kubernetes.default", "kubernetes.default.svc",
			"kubernetes.default.svc.cluster", "kubernetes.default.svc.cluster.local", "localhost"}
		if !slices.Equal(c.DNSNames, wantDNS) {
			t.Errorf("DNS SANs %v, want %v", c.DNSNames, wantDNS)
		}
		wantIPs := []string{"127.0.0.1", "10.152.183.1", "192.0.2.10", "fd00::10"}
		if got := ipStrings(c.IPAddresses); !slices.Equal(got, wantIPs) {
			t.Errorf("IP SANs %v, want %v", got, wantIPs)
		}
		for _, host := range append(wantDNS, wantIPs...) {
			if err := c.VerifyHostname(host); err != nil {
				t.Errorf("VerifyHostname(%s): %v", host, err)
			}
		}
	})

	t.Run("host SANs", func(t *testing.T) {
		c := pairs["etcd-server"].Cert
		if !slices.Equal(c.DNSNames, []string{"localhost", "node-a", EtcdSocketName}) {
			t.Errorf("DNS SANs %v", c.DNSNames)
		}
		if got := ipStrings(c.IPAddresses); !slices.Equal(got, []string{"127.0.0.1", "192.0.2.10", "fd00::10"}) {
			t.Errorf("IP SANs %v", got)
		}
	})

	t.Run("loopback SANs", func(t *testing.T) {
		c := pairs["auth-webhook"].Cert
		if !slices.Equal(c.DNSNames, []string{"localhost"}) || !slices.Equal(ipStrings(c.IPAddresses), []string{"127.0.0.1"}) {
			t.Errorf("SANs %v %v, want localhost and 127.0.0.1 only", c.DNSNames, ipStrings(c.IPAddresses))
		}
	})

	t.Run("user certificate", func(t *testing.T) {
		spec := UserSpec("alice", []string{"devs", "ops"}, 30*24*time.Hour)
		kp, err := Issue(spec, Inputs{}, pairs["ca"], now)
		if err != nil {
			t.Fatal(err)
		}
		if err := Verify(spec, kp, pairs["ca"]); err != nil {
			t.Fatal(err)
		}
		s := kp.Cert.Subject
		// DER sorts a SET, so the order of O values is not kept.
		if s.CommonName != "alice" || !slices.Equal(slices.Sorted(slices.Values(s.Organization)), []string{"devs", "ops"}) {
			t.Errorf("subject %v", s)
		}
		if got := kp.Cert.NotAfter.Sub(now); got != 30*24*time.Hour {
			t.Errorf("lifetime %s", got)
		}
		if len(kp.Cert.DNSNames)+len(kp.Cert.IPAddresses) != 0 {
			t.Errorf("a user certificate has SANs")
		}
	})

	t.Run("etcd trusts only its own CA", func(t *testing.T) {
		pool := x509.NewCertPool()
		pool.AddCert(pairs["etcd-ca"].Cert)
		_, err := pairs["admin"].Cert.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
		if err == nil {
			t.Error("the admin certificate verifies against the etcd CA")
		}
	})
}

func TestTemplateWithoutPlaceholderOmitsHostIPs(t *testing.T) {
	in := testInputs(t)
	in.Template.HasPlaceholder = false
	an, err := Table[indexOf(t, "server")].AltNames(in)
	if err != nil {
		t.Fatal(err)
	}
	if got := ipStrings(an.IPs); !slices.Equal(got, []string{"127.0.0.1", "10.152.183.1"}) {
		t.Errorf("IPs %v", got)
	}
}

func TestVerifyRejectsMismatches(t *testing.T) {
	now := time.Now()
	in := testInputs(t)
	pairs := issueAll(t, in, now)
	server, _ := Lookup("server")
	swapped := &KeyPair{Cert: pairs["server"].Cert, Key: pairs["admin"].Key}
	if err := Verify(server, swapped, pairs["ca"]); err == nil {
		t.Error("a key that does not match its certificate verified")
	}
	if err := Verify(server, pairs["server"], pairs["etcd-ca"]); err == nil {
		t.Error("a certificate verified against the wrong CA")
	}
}

func TestLeafNeverOutlivesCA(t *testing.T) {
	now := time.Now()
	in := testInputs(t)
	ca, _ := Lookup("ca")
	ca.Lifetime = 30 * 24 * time.Hour
	caPair, err := Issue(ca, in, nil, now)
	if err != nil {
		t.Fatal(err)
	}
	server, _ := Lookup("server")
	kp, err := Issue(server, in, caPair, now)
	if err != nil {
		t.Fatal(err)
	}
	if kp.Cert.NotAfter.After(caPair.Cert.NotAfter) {
		t.Errorf("leaf expires %s after its CA %s", kp.Cert.NotAfter, caPair.Cert.NotAfter)
	}
}

func indexOf(t *testing.T, name string) int {
	for i, s := range Table {
		if s.Name == name {
			return i
		}
	}
	t.Fatalf("no spec %s", name)
	return -1
}

func firstOrEmpty(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

func ipStrings(ips []net.IP) []string {
	var out []string
	for _, ip := range ips {
		out = append(out, ip.String())
	}
	return out
}

package netconf

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kubeseed/kubeseed/internal/datadir"
)

func layoutWith(t *testing.T, files map[string]string) datadir.Layout {
	t.Helper()
	l := datadir.Layout{Root: t.TempDir()}
	for name, data := range files {
		p := l.Args(name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return l
}

const kubeletYAML = "clusterDNS:\n- 10.152.183.10\nclusterDomain: cluster.local\n"

func TestRead(t *testing.T) {
	cases := []struct {
		name               string
		files              map[string]string
		svcIP, dns, domain string
		wantErr            []string
	}{
		{name: "first start: defaults", files: nil, svcIP: "10.152.183.1", dns: "10.152.183.10", domain: "cluster.local"},
		{name: "edited range and DNS", files: map[string]string{
			"kube-apiserver":          "--service-cluster-ip-range=10.96.0.0/16\n",
			"kube-controller-manager": "--service-cluster-ip-range=10.96.0.0/16\n",
			"kubelet.yaml":            "clusterDNS: [10.96.0.10]\nclusterDomain: example.internal\n",
		}, svcIP: "10.96.0.1", dns: "10.96.0.10", domain: "example.internal"},
		{name: "dual stack: the first range", files: map[string]string{
			"kube-apiserver": "--service-cluster-ip-range=10.152.183.0/24,fd00::/108\n",
			"kubelet.yaml":   kubeletYAML,
		}, svcIP: "10.152.183.1", dns: "10.152.183.10", domain: "cluster.local"},
		{name: "range flag missing", files: map[string]string{"kube-apiserver": "--secure-port=16443\n"},
			wantErr: []string{"args/kube-apiserver", "--service-cluster-ip-range is not set"}},
		{name: "bad range", files: map[string]string{"kube-apiserver": "--service-cluster-ip-range=10.152.183.0/33\n"},
			wantErr: []string{"args/kube-apiserver", "10.152.183.0/33"}},
		{name: "range not at its start", files: map[string]string{"kube-apiserver": "--service-cluster-ip-range=10.152.183.5/24\n"},
			wantErr: []string{"did you mean 10.152.183.0/24"}},
		{name: "controller-manager disagrees", files: map[string]string{
			"kube-apiserver":          "--service-cluster-ip-range=10.96.0.0/16\n",
			"kube-controller-manager": "--service-cluster-ip-range=10.152.183.0/24\n",
		}, wantErr: []string{"args/kube-controller-manager", "differs from 10.96.0.0/16"}},
		{name: "DNS outside the range", files: map[string]string{
			"kube-apiserver": "--service-cluster-ip-range=10.96.0.0/16\n",
			"kubelet.yaml":   kubeletYAML,
		}, wantErr: []string{"args/kubelet.yaml", "field clusterDNS", "10.152.183.10", "10.96.0.0/16"}},
		{name: "DNS on the kubernetes Service IP", files: map[string]string{"kubelet.yaml": "clusterDNS: [10.152.183.1]\nclusterDomain: cluster.local\n"},
			wantErr: []string{"field clusterDNS"}},
		{name: "DNS not an IP", files: map[string]string{"kubelet.yaml": "clusterDNS: [dns.local]\nclusterDomain: cluster.local\n"},
			wantErr: []string{"field clusterDNS", "not an IP"}},
		{name: "DNS unset", files: map[string]string{"kubelet.yaml": "clusterDomain: cluster.local\n"},
			wantErr: []string{"args/kubelet.yaml", "clusterDNS is not set"}},
		{name: "bad domain", files: map[string]string{"kubelet.yaml": "clusterDNS: [10.152.183.10]\nclusterDomain: Bad_Domain\n"},
			wantErr: []string{"field clusterDomain", "Bad_Domain"}},
		{name: "malformed YAML", files: map[string]string{"kubelet.yaml": "clusterDNS: [\n"},
			wantErr: []string{"args/kubelet.yaml"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			n, err := Read(layoutWith(t, c.files))
			if len(c.wantErr) > 0 {
				if err == nil {
					t.Fatalf("no error; got %+v", n)
				}
				for _, w := range c.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q lacks %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if n.ServiceIP.String() != c.svcIP || n.ClusterDNS.String() != c.dns || n.ClusterDomain != c.domain {
				t.Errorf("got %s %s %s; want %s %s %s", n.ServiceIP, n.ClusterDNS, n.ClusterDomain, c.svcIP, c.dns, c.domain)
			}
		})
	}
}

func TestDefaultIsWhatReadGivesANewNode(t *testing.T) {
	n, err := Read(datadir.Layout{Root: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	d := Default()
	if n.ServiceCIDR.String() != d.ServiceCIDR.String() || !n.ServiceIP.Equal(d.ServiceIP) || !n.ClusterDNS.Equal(d.ClusterDNS) || n.ClusterDomain != d.ClusterDomain {
		t.Errorf("Default() = %+v; Read of an empty data dir = %+v", d, n)
	}
}

func TestCheckRange(t *testing.T) {
	l := layoutWith(t, map[string]string{"kube-apiserver": "--service-cluster-ip-range=10.96.0.0/16\n",
		"kubelet.yaml": "clusterDNS: [10.96.0.10]\nclusterDomain: cluster.local\n"})
	n, err := Read(l)
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckRange(l, n); err != nil {
		t.Fatalf("no record yet: %v", err)
	}
	if err := os.MkdirAll(l.VarDir(), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(l.ServiceRangeRecord(), []byte("10.96.0.0/16\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := CheckRange(l, n); err != nil {
		t.Fatalf("same range: %v", err)
	}
	if err := os.WriteFile(l.ServiceRangeRecord(), []byte("10.152.183.0/24\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	err = CheckRange(l, n)
	for _, w := range []string{"args/kube-apiserver", "10.96.0.0/16", "started with 10.152.183.0/24", "kubeseed reset"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("changed range: error %v lacks %q", err, w)
		}
	}
}

// FuzzRead feeds kubelet.yaml contents: Read never panics, and what it
// accepts has its DNS IP inside the service range.
func FuzzRead(f *testing.F) {
	for _, seed := range []string{kubeletYAML, "clusterDNS: [10.152.183.200]\nclusterDomain: a.b\n", "clusterDNS: 5\n", "{}", "- x\n", "clusterDNS: [\"::1\"]\nclusterDomain: x\n"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data string) {
		l := layoutWith(t, map[string]string{"kubelet.yaml": data})
		n, err := Read(l)
		if err != nil {
			return
		}
		if !n.ServiceCIDR.Contains(n.ClusterDNS) || n.ClusterDomain == "" {
			t.Fatalf("accepted %q: %+v", data, n)
		}
	})
}

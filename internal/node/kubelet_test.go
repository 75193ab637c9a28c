package node

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/kubeseed/kubeseed/internal/datadir"
	"github.com/kubeseed/kubeseed/internal/defaults"
	"github.com/kubeseed/kubeseed/internal/hostinfo"
)

// newKubelet makes a data dir holding kubelet.yaml: the default one, plus
// extra lines as a user would append them.
func newKubelet(t *testing.T, a hostinfo.Adaptations, extra string) (*Kubelet, string) {
	t.Helper()
	l := datadir.Layout{Root: t.TempDir()}
	if err := l.Ensure(); err != nil {
		t.Fatal(err)
	}
	path := l.Args("kubelet.yaml")
	if err := os.WriteFile(path, append(defaults.KubeletConfig(l, 0), extra...), 0o644); err != nil {
		t.Fatal(err)
	}
	return NewKubelet(l, a), path
}

func TestKubeletConfigAdaptations(t *testing.T) {
	const (
		systemd  = "systemd"
		cgroupfs = "cgroupfs"
	)
	tests := []struct {
		name       string
		a          hostinfo.Adaptations
		user       string // appended to the default kubelet.yaml
		driver     string
		failV1     bool
		renderedV1 string // failCgroupV1 in run/kubelet.yaml; "" for absent
	}{
		{"systemd, v2", hostinfo.Adaptations{Systemd: true}, "", systemd, true, ""},
		{"no systemd, v2", hostinfo.Adaptations{}, "", cgroupfs, true, ""},
		{"systemd, v1", hostinfo.Adaptations{Systemd: true, CgroupV1: true}, "", systemd, false, "false"},
		{"no systemd, v1", hostinfo.Adaptations{CgroupV1: true}, "", cgroupfs, false, "false"},
		// What the user sets wins, even against the host.
		{"user driver on systemd host", hostinfo.Adaptations{Systemd: true}, "cgroupDriver: cgroupfs\n", cgroupfs, true, ""},
		{"user driver without systemd", hostinfo.Adaptations{}, "cgroupDriver: systemd\n", systemd, true, ""},
		{"user failCgroupV1 on v1", hostinfo.Adaptations{CgroupV1: true}, "failCgroupV1: true\n", cgroupfs, true, "true"},
		{"user failCgroupV1 on v2", hostinfo.Adaptations{Systemd: true}, "failCgroupV1: false\n", systemd, false, "false"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, path := newKubelet(t, tt.a, tt.user)
			cfg, err := k.loadConfig(context.Background(), path)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.CgroupDriver != tt.driver {
				t.Errorf("cgroupDriver %q, want %q", cfg.CgroupDriver, tt.driver)
			}
			if cfg.FailCgroupV1 != tt.failV1 {
				t.Errorf("failCgroupV1 %v, want %v", cfg.FailCgroupV1, tt.failV1)
			}

			// run/kubelet.yaml holds the merge, private to root.
			out := k.layout.Run("kubelet.yaml")
			st, err := os.Stat(out)
			if err != nil {
				t.Fatal(err)
			}
			if st.Mode().Perm() != 0o600 {
				t.Errorf("%s mode %o, want 600", out, st.Mode().Perm())
			}
			data, _ := os.ReadFile(out)
			var doc map[string]any
			if err := yaml.Unmarshal(data, &doc); err != nil {
				t.Fatal(err)
			}
			if doc["cgroupDriver"] != tt.driver {
				t.Errorf("rendered cgroupDriver %v, want %q", doc["cgroupDriver"], tt.driver)
			}
			gotV1 := ""
			if v, set := doc["failCgroupV1"]; set {
				gotV1 = fmt.Sprint(v)
			}
			if gotV1 != tt.renderedV1 {
				t.Errorf("rendered failCgroupV1 %q, want %q", gotV1, tt.renderedV1)
			}
			// The user's file is left as written.
			if src, _ := os.ReadFile(path); string(src) != string(defaults.KubeletConfig(k.layout, 0))+tt.user {
				t.Error("args/kubelet.yaml was modified")
			}
		})
	}
}

func TestKubeletConfigExpandsDataDir(t *testing.T) {
	k, path := newKubelet(t, hostinfo.Adaptations{Systemd: true}, "")
	cfg, err := k.loadConfig(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	r := k.layout.Root
	for _, c := range []struct{ name, got, want string }{
		{"tlsCertFile", cfg.TLSCertFile, r + "/certs/kubelet-serving.crt"},
		{"tlsPrivateKeyFile", cfg.TLSPrivateKeyFile, r + "/certs/kubelet-serving.key"},
		{"clientCAFile", cfg.Authentication.X509.ClientCAFile, r + "/certs/ca.crt"},
		{"containerRuntimeEndpoint", cfg.ContainerRuntimeEndpoint, "unix://" + r + "/run/containerd.sock"},
		{"cgroupRoot", cfg.CgroupRoot, defaults.HostNamesFor(k.layout).CgroupRoot},
		{"clusterDNS", strings.Join(cfg.ClusterDNS, ","), "10.152.183.10"},
		{"clusterDomain", cfg.ClusterDomain, "cluster.local"},
	} {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.name, c.got, c.want)
		}
	}
	if len(cfg.EvictionHard) == 0 {
		t.Error("evictionHard has no defaults")
	}
}

func TestKubeletConfigErrors(t *testing.T) {
	for _, tt := range []struct {
		name, user string
		want       []string
	}{
		{"unknown variable", "staticPodPath: ${NOPE}/pods\n", []string{"kubelet.yaml", "${NOPE}"}},
		{"not YAML", "cgroupDriver: [\n", []string{"kubelet.yaml"}},
		{"bad value", "cgroupDriver: 42\n", []string{"kubelet.yaml"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			k, path := newKubelet(t, hostinfo.Adaptations{}, tt.user)
			_, err := k.loadConfig(context.Background(), path)
			for _, w := range tt.want {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("err = %v, want one containing %q", err, w)
				}
			}
		})
	}
	for _, text := range []string{"", "# nothing here\n"} {
		k, path := newKubelet(t, hostinfo.Adaptations{}, "")
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := k.loadConfig(context.Background(), path); err == nil || !strings.Contains(err.Error(), "kubelet.yaml is empty") {
			t.Errorf("kubelet.yaml holding %q: err = %v", text, err)
		}
	}
	k, _ := newKubelet(t, hostinfo.Adaptations{}, "")
	if _, err := k.loadConfig(context.Background(), filepath.Join(k.layout.Root, "nope.yaml")); err == nil || !strings.Contains(err.Error(), "read kubelet config") {
		t.Errorf("missing file: err = %v", err)
	}
}

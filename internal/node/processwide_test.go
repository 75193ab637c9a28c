package node

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"k8s.io/component-base/featuregate"

	"github.com/kubeseed/kubeseed/internal/defaults"
	"github.com/kubeseed/kubeseed/internal/hostinfo"
)

func testGates(t *testing.T) featuregate.MutableFeatureGate {
	t.Helper()
	g := featuregate.NewFeatureGate()
	if err := g.Add(map[featuregate.Feature]featuregate.FeatureSpec{
		"Off": {Default: false, PreRelease: featuregate.Alpha},
		"On":  {Default: true, PreRelease: featuregate.Beta},
	}); err != nil {
		t.Fatal(err)
	}
	if err := g.SetFromMap(map[string]bool{"Off": true}); err != nil { // as args/kube-apiserver would
		t.Fatal(err)
	}
	return g
}

func TestCheckProcessWide(t *testing.T) {
	const gates = "featureGates: feature gates are process-wide: set them in args/kube-apiserver"
	const logging = "logging: logging is process-wide: set it in args/kube-apiserver"
	for _, tt := range []struct {
		name, yaml string
		want       string // after "PATH:"; "" to accept
	}{
		{"neither", "kind: KubeletConfiguration\nport: 10250\n", ""},
		{"empty gates", "kind: KubeletConfiguration\nfeatureGates: {}\n", ""},
		{"gates equal to the process's", "kind: KubeletConfiguration\nfeatureGates:\n  Off: true\n  On: true\n", ""},
		{"a gate the process has otherwise", "kind: KubeletConfiguration\nport: 1\nfeatureGates:\n  On: false\n", "3: " + gates + " (On: false here, true in the process)"},
		{"a gate the apiserver set", "featureGates:\n  Off: false\n", "1: " + gates + " (Off: false here, true in the process)"},
		{"an unknown gate", "featureGates:\n  Nope: true\n", `1: featureGates: unrecognized feature gate "Nope"`},
		{"not a map of bools", "featureGates:\n  On: maybe\n", "1: featureGates: "},
		{"empty logging", "logging: {}\n", ""},
		{"null logging", "logging:\n", ""},
		{"logging", "kind: KubeletConfiguration\nlogging:\n  verbosity: 4\n", "2: " + logging},
		{"logging format only", "logging:\n  format: json\n", "1: " + logging},
		{"JSON", "{\"kind\": \"KubeProxyConfiguration\",\n \"featureGates\": {\"On\": false}}", "2: " + gates},
		{"not a mapping", "- a\n", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := checkProcessWide("/d/args/kubelet.yaml", []byte(tt.yaml), testGates(t))
			if tt.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if want := "/d/args/kubelet.yaml:" + tt.want; err == nil || !strings.HasPrefix(err.Error(), want) {
				t.Fatalf("err = %v\nwant  %s", err, want)
			}
		})
	}
}

// kubelet.yaml's featureGates used to be applied to the whole process.
func TestKubeletConfigRefusesOwnGates(t *testing.T) {
	k, path := newKubelet(t, hostinfo.Adaptations{}, "featureGates:\n  AllAlpha: true\n")
	line := strings.Count(string(defaults.KubeletConfig(k.layout, 0)), "\n") + 1
	_, err := k.loadConfig(context.Background(), path)
	want := path + ":" + strconv.Itoa(line) + ": featureGates: feature gates are process-wide: set them in args/kube-apiserver"
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("err = %v\nwant  %s", err, want)
	}
}

func TestKubeProxyRefusesProcessWide(t *testing.T) {
	for _, tt := range []struct{ name, args, config, want string }{
		{"--feature-gates", "--feature-gates=AllAlpha=true\n", "", "kube-proxy:2: --feature-gates: feature gates are process-wide: set them in args/kube-apiserver"},
		{"-v", "--v=4\n", "", "kube-proxy:2: --v: logging is process-wide: set it in args/kube-apiserver"},
		{"--config featureGates", "", "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\nfeatureGates:\n  AllAlpha: true\n", "proxy.yaml:3: featureGates: feature gates are process-wide"},
		{"--config logging", "", "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\nlogging:\n  verbosity: 5\n", "proxy.yaml:3: logging: logging is process-wide"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			k, _ := newKubelet(t, hostinfo.Adaptations{}, "")
			l := k.layout
			extra := tt.args
			if tt.config != "" {
				cfg := filepath.Join(l.Root, "proxy.yaml")
				if err := os.WriteFile(cfg, []byte(tt.config), 0o644); err != nil {
					t.Fatal(err)
				}
				extra = "--config=" + cfg + "\n"
			}
			if err := os.WriteFile(l.Args(defaults.KubeProxyComponent), []byte("# kube-proxy\n"+extra), 0o644); err != nil {
				t.Fatal(err)
			}
			err := NewKubeProxy(l).Init(context.Background())
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v\nwant  …%s", err, tt.want)
			}
		})
	}
}

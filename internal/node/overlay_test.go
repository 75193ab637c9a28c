package node

import (
	"os"
	"strings"
	"testing"

	"github.com/kubeseed/kubeseed/internal/datadir"
	"github.com/kubeseed/kubeseed/internal/defaults"
)

func TestOverlayConfig(t *testing.T) {
	cases := []struct {
		name    string
		edit    func(string) string
		nodeIP  string
		wantErr string
	}{
		{name: "defaults", edit: func(s string) string { return s }},
		{name: "a node IP", edit: func(s string) string { return s + "--node-ip=192.0.2.7\n" }, nodeIP: "192.0.2.7"},
		{name: "a bad node IP", edit: func(s string) string { return s + "--node-ip=nope\n" }, wantErr: `--node-ip="nope" is not an IP address`},
		{name: "an unknown flag", edit: func(s string) string { return s + "--backend=host-gw\n" }, wantErr: "unknown flag for overlay"},
		{name: "a bad port", edit: func(s string) string { return strings.Replace(s, "--port=4789", "--port=x", 1) }, wantErr: "--port"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			l, err := datadir.New(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			if err := os.MkdirAll(l.ArgsDir(), 0o755); err != nil {
				t.Fatal(err)
			}
			kubelet := defaults.KubeletArgs(l, "node-a")
			if err := os.WriteFile(kubelet.Path, kubelet.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			f := defaults.OverlayArgs(l, defaults.ClusterCIDR)
			if err := os.WriteFile(f.Path, []byte(c.edit(string(f.Bytes()))), 0o644); err != nil {
				t.Fatal(err)
			}
			cfg, err := OverlayConfig(l)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) || !strings.Contains(err.Error(), f.Path) {
					t.Fatalf("error %v, want one naming %s with %q", err, f.Path, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.NodeName != "node-a" || cfg.Port != 4789 || cfg.VNI != 1 || cfg.ClusterCIDR != defaults.ClusterCIDR ||
				!strings.HasPrefix(cfg.Kubeconfig, l.Root+"/") {
				t.Errorf("config %+v", cfg)
			}
			if got := cfg.NodeIP.String(); c.nodeIP != "" && got != c.nodeIP || c.nodeIP == "" && cfg.NodeIP != nil {
				t.Errorf("node IP %v, want %q", cfg.NodeIP, c.nodeIP)
			}
		})
	}
}

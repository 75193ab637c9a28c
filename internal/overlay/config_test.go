package overlay

import (
	"encoding/json"
	"net"
	"strings"
	"testing"

	"github.com/flannel-io/flannel/pkg/backend/vxlan"
	"github.com/flannel-io/flannel/pkg/subnet"
)

func goodConfig() Config {
	return Config{
		Kubeconfig:  "/var/lib/kubeseed/credentials/kubelet.kubeconfig",
		NodeName:    "node-1",
		NodeIP:      net.ParseIP("192.168.1.10"),
		ClusterCIDR: "10.1.0.0/16",
		Port:        4789,
		VNI:         1,
	}
}

func TestValidate(t *testing.T) {
	cases := []struct {
		name    string
		edit    func(*Config)
		wantErr []string // substrings; nil means valid
	}{
		{name: "kubeseed defaults", edit: func(*Config) {}},
		{name: "IPv4-in-IPv6 node IP", edit: func(c *Config) { c.NodeIP = net.ParseIP("::ffff:192.168.1.10") }},
		{name: "no kubeconfig", edit: func(c *Config) { c.Kubeconfig = " " }, wantErr: []string{"Kubeconfig: must be set"}},
		{name: "no node name", edit: func(c *Config) { c.NodeName = "" }, wantErr: []string{"NodeName: must be set"}},
		{name: "bad node name", edit: func(c *Config) { c.NodeName = "Node_1" }, wantErr: []string{"NodeName: \"Node_1\""}},
		{name: "no node IP: the Node's InternalIP", edit: func(c *Config) { c.NodeIP = nil }},
		{name: "IPv6 node IP", edit: func(c *Config) { c.NodeIP = net.ParseIP("fd00::1") }, wantErr: []string{"NodeIP: fd00::1: only IPv4"}},
		{name: "loopback node IP", edit: func(c *Config) { c.NodeIP = net.ParseIP("127.0.0.1") }, wantErr: []string{"NodeIP: 127.0.0.1: peers cannot send"}},
		{name: "unspecified node IP", edit: func(c *Config) { c.NodeIP = net.IPv4zero }, wantErr: []string{"NodeIP: 0.0.0.0"}},
		{name: "node IP inside the cluster range", edit: func(c *Config) { c.NodeIP = net.ParseIP("10.1.3.4") }, wantErr: []string{"NodeIP: 10.1.3.4 lies inside ClusterCIDR 10.1.0.0/16"}},
		{name: "no cluster CIDR", edit: func(c *Config) { c.ClusterCIDR = "" }, wantErr: []string{"ClusterCIDR: must be set"}},
		{name: "cluster CIDR not a network", edit: func(c *Config) { c.ClusterCIDR = "10.1.2.0/16" }, wantErr: []string{"ClusterCIDR: 10.1.2.0/16: not a network address (did you mean 10.1.0.0/16?)"}},
		{name: "cluster CIDR garbage", edit: func(c *Config) { c.ClusterCIDR = "10.1.0.0" }, wantErr: []string{"ClusterCIDR: invalid CIDR address"}},
		{name: "IPv6 cluster CIDR", edit: func(c *Config) { c.ClusterCIDR = "fd00::/48" }, wantErr: []string{"ClusterCIDR: fd00::/48: only IPv4"}},
		{name: "tiny cluster CIDR", edit: func(c *Config) { c.ClusterCIDR = "10.1.0.0/29" }, wantErr: []string{"ClusterCIDR: 10.1.0.0/29: too small"}},
		{name: "port 0 is not the kernel default here", edit: func(c *Config) { c.Port = 0 }, wantErr: []string{"Port: 0", "8472"}},
		{name: "port too large", edit: func(c *Config) { c.Port = 65536 }, wantErr: []string{"Port: 65536"}},
		{name: "VNI 0", edit: func(c *Config) { c.VNI = 0 }, wantErr: []string{"VNI: 0"}},
		{name: "VNI beyond 24 bits", edit: func(c *Config) { c.VNI = 1 << 24 }, wantErr: []string{"VNI: 16777216"}},
		{name: "every error at once", edit: func(c *Config) { *c = Config{} },
			wantErr: []string{"Kubeconfig:", "NodeName:", "ClusterCIDR:", "Port:", "VNI:"}},
		{name: "node IP and cluster CIDR both bad", edit: func(c *Config) { c.ClusterCIDR = ""; c.NodeIP = net.IPv4bcast },
			wantErr: []string{"ClusterCIDR: must be set", "NodeIP: 255.255.255.255: peers cannot send"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := goodConfig()
			tc.edit(&c)
			o, err := New(c)
			if tc.wantErr == nil {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				if c.NodeIP != nil && (o.nodeIP.To4() == nil || len(o.nodeIP) != net.IPv4len) || o.cluster.String() != "10.1.0.0/16" {
					t.Fatalf("nodeIP %v cluster %v", o.nodeIP, o.cluster)
				}
				return
			}
			if err == nil {
				t.Fatal("New accepted it")
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

// TestNetConf reads the rendered net-conf back the way flannel does.
func TestNetConf(t *testing.T) {
	cases := []struct {
		cluster   string
		port, vni int
	}{
		{"10.1.0.0/16", 4789, 1},
		{"10.42.0.0/16", 8472, 4096},
	}
	for _, tc := range cases {
		t.Run(tc.cluster, func(t *testing.T) {
			_, n, _ := net.ParseCIDR(tc.cluster)
			raw, err := renderNetConf(n, tc.port, tc.vni)
			if err != nil {
				t.Fatal(err)
			}
			sc, err := subnet.ParseConfig(string(raw))
			if err != nil {
				t.Fatalf("flannel rejects %s: %v", raw, err)
			}
			if sc.BackendType != "vxlan" || !sc.EnableIPv4 || sc.EnableIPv6 || sc.Network.String() != tc.cluster {
				t.Errorf("flannel reads %+v from %s", sc, raw)
			}
			// Port must be in the JSON: absent, flannel uses the kernel's 8472.
			var keys map[string]json.RawMessage
			if err := json.Unmarshal(sc.Backend, &keys); err != nil {
				t.Fatal(err)
			}
			if _, ok := keys["Port"]; !ok {
				t.Errorf("backend %s has no Port", sc.Backend)
			}
			// The vxlan backend's own type, case-insensitive like its parser.
			var vc vxlan.VXLANConfig
			if err := json.Unmarshal(sc.Backend, &vc); err != nil {
				t.Fatal(err)
			}
			want := vxlan.VXLANConfig{VNI: tc.vni, Port: tc.port}
			if vc != want {
				t.Errorf("vxlan backend reads %+v, want %+v", vc, want)
			}
		})
	}
}

func TestMTUAndDevice(t *testing.T) {
	for _, tc := range []struct{ host, pod int }{{1500, 1450}, {9001, 8951}, {1450, 1400}} {
		if got := MTU(tc.host); got != tc.pod {
			t.Errorf("MTU(%d) = %d, want %d", tc.host, got, tc.pod)
		}
	}
	if got := DeviceName(1); got != "flannel.1" {
		t.Errorf("DeviceName(1) = %q", got)
	}
}

package overlay

import (
	"context"
	"errors"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	corev1 "k8s.io/api/core/v1"
)

func wantErrLike(t *testing.T, err error, want string) {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Fatalf("unexpected error: %v", err)
	case want != "" && err == nil:
		t.Fatalf("no error, want one with %q", want)
	case want != "" && !strings.Contains(err.Error(), want):
		t.Fatalf("error %q lacks %q", err, want)
	}
}

func TestCheckDevice(t *testing.T) {
	nodeIP := net.ParseIP("192.168.1.10").To4()
	good := func() *netlink.Vxlan {
		return &netlink.Vxlan{
			LinkAttrs: netlink.LinkAttrs{Name: "flannel.1", Flags: net.FlagUp},
			VxlanId:   1, Port: 4789, SrcAddr: nodeIP,
		}
	}
	cases := []struct {
		name string
		link func() netlink.Link
		want string
	}{
		{name: "as configured", link: func() netlink.Link { return good() }},
		{name: "not vxlan", link: func() netlink.Link {
			return &netlink.Dummy{LinkAttrs: netlink.LinkAttrs{Name: "flannel.1"}}
		}, want: "is dummy, not vxlan"},
		{name: "other VNI", link: func() netlink.Link { l := good(); l.VxlanId = 2; return l }, want: "VNI 2, want 1"},
		{name: "kernel default port", link: func() netlink.Link { l := good(); l.Port = 8472; return l }, want: "port 8472, want 4789"},
		{name: "other source", link: func() netlink.Link { l := good(); l.SrcAddr = net.ParseIP("10.0.0.1"); return l }, want: "sends from 10.0.0.1"},
		{name: "down", link: func() netlink.Link { l := good(); l.Flags = 0; return l }, want: "is down"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			wantErrLike(t, checkDevice(tc.link(), 1, 4789, nodeIP), tc.want)
		})
	}
}

func TestCheckPublished(t *testing.T) {
	nodeIP := net.ParseIP("192.168.1.10")
	mac, _ := net.ParseMAC("12:c6:65:89:b4:e3")
	good := func() map[string]string {
		return map[string]string{
			"flannel.alpha.coreos.com/kube-subnet-manager": "true",
			"flannel.alpha.coreos.com/backend-type":        "vxlan",
			"flannel.alpha.coreos.com/public-ip":           "192.168.1.10",
			"flannel.alpha.coreos.com/backend-data":        `{"VNI":1,"VtepMAC":"12:c6:65:89:b4:e3"}`,
		}
	}
	cases := []struct {
		name string
		edit func(map[string]string)
		want string
	}{
		{name: "published", edit: func(map[string]string) {}},
		{name: "nothing yet", edit: func(m map[string]string) { clear(m) }, want: "kube-subnet-manager is \"\""},
		{name: "other backend", edit: func(m map[string]string) { m["flannel.alpha.coreos.com/backend-type"] = "host-gw" }, want: "backend-type is \"host-gw\""},
		{name: "public IP overridden", edit: func(m map[string]string) { m["flannel.alpha.coreos.com/public-ip"] = "203.0.113.7" }, want: "want the NodeIP 192.168.1.10"},
		{name: "backend data garbage", edit: func(m map[string]string) { m["flannel.alpha.coreos.com/backend-data"] = "null-ish" }, want: "backend-data \"null-ish\""},
		{name: "stale MAC", edit: func(m map[string]string) {
			m["flannel.alpha.coreos.com/backend-data"] = `{"VNI":1,"VtepMAC":"aa:bb:cc:dd:ee:ff"}`
		}, want: "VtepMAC \"aa:bb:cc:dd:ee:ff\", the device has 12:c6:65:89:b4:e3"},
		{name: "other VNI", edit: func(m map[string]string) {
			m["flannel.alpha.coreos.com/backend-data"] = `{"VNI":7,"VtepMAC":"12:c6:65:89:b4:e3"}`
		}, want: "VNI 7, want 1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := good()
			tc.edit(m)
			wantErrLike(t, checkPublished(m, nodeIP, 1, mac), tc.want)
		})
	}
}

func TestNodePodCIDR(t *testing.T) {
	_, cluster, _ := net.ParseCIDR("10.1.0.0/16")
	cases := []struct {
		name    string
		spec    corev1.NodeSpec
		want    string
		wantErr string
		pending bool
	}{
		{name: "not allocated yet", spec: corev1.NodeSpec{}, pending: true, wantErr: "no IPv4 spec.podCIDR"},
		{name: "podCIDR only", spec: corev1.NodeSpec{PodCIDR: "10.1.3.0/24"}, want: "10.1.3.0/24"},
		{name: "podCIDRs wins", spec: corev1.NodeSpec{PodCIDR: "10.1.3.0/24", PodCIDRs: []string{"10.1.3.0/24"}}, want: "10.1.3.0/24"},
		{name: "dual stack, IPv6 first", spec: corev1.NodeSpec{PodCIDRs: []string{"fd00:1::/64", "10.1.4.0/24"}}, want: "10.1.4.0/24"},
		{name: "IPv6 only", spec: corev1.NodeSpec{PodCIDRs: []string{"fd00:1::/64"}}, pending: true, wantErr: "no IPv4"},
		{name: "outside the cluster range", spec: corev1.NodeSpec{PodCIDR: "10.244.1.0/24"}, wantErr: "10.244.1.0/24 is outside ClusterCIDR 10.1.0.0/16"},
		{name: "wider than the cluster range", spec: corev1.NodeSpec{PodCIDR: "10.0.0.0/8"}, wantErr: "outside ClusterCIDR"},
		{name: "garbage", spec: corev1.NodeSpec{PodCIDR: "10.1.3.0"}, wantErr: "spec.podCIDRs \"10.1.3.0\""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := nodePodCIDR(&corev1.Node{Spec: tc.spec}, cluster)
			wantErrLike(t, err, tc.wantErr)
			if errors.Is(err, errPodCIDRPending) != tc.pending {
				t.Errorf("pending = %v, want %v", errors.Is(err, errPodCIDRPending), tc.pending)
			}
			if tc.want != "" && got.String() != tc.want {
				t.Errorf("got %v, want %s", got, tc.want)
			}
		})
	}
}

func TestPickInterface(t *testing.T) {
	ip := net.ParseIP("192.168.1.10")
	lo := ifaceAddrs{iface: net.Interface{Index: 1, Name: "lo", MTU: 65536, Flags: net.FlagUp | net.FlagLoopback}, addrs: []net.IP{net.ParseIP("127.0.0.1")}}
	eth0 := ifaceAddrs{iface: net.Interface{Index: 2, Name: "eth0", MTU: 1500, Flags: net.FlagUp}, addrs: []net.IP{net.ParseIP("fe80::1"), ip}}
	cases := []struct {
		name    string
		all     []ifaceAddrs
		ip      net.IP
		want    string
		wantErr string
	}{
		{name: "found", all: []ifaceAddrs{lo, eth0}, ip: ip, want: "eth0"},
		{name: "absent", all: []ifaceAddrs{lo, eth0}, ip: net.ParseIP("192.168.1.99"), wantErr: "192.168.1.99 is on no interface"},
		{name: "loopback", all: []ifaceAddrs{lo}, ip: net.ParseIP("127.0.0.1"), wantErr: "loopback interface lo"},
		{name: "down", all: []ifaceAddrs{{iface: net.Interface{Name: "eth1", MTU: 1500}, addrs: []net.IP{ip}}}, ip: ip, wantErr: "eth1, which is down"},
		{name: "tiny MTU", all: []ifaceAddrs{{iface: net.Interface{Name: "eth1", MTU: 50, Flags: net.FlagUp}, addrs: []net.IP{ip}}}, ip: ip, wantErr: "MTU 50"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := pickInterface(tc.all, tc.ip)
			wantErrLike(t, err, tc.wantErr)
			if got.Name != tc.want {
				t.Errorf("got %q, want %q", got.Name, tc.want)
			}
		})
	}
}

// TestWithEnv mutates the process environment, so it is not parallel.
func TestWithEnv(t *testing.T) {
	const key = "KUBESEED_OVERLAY_TEST_NODE_NAME"
	seen := func() (string, bool) { return os.LookupEnv(key) }

	t.Run("unset: set during fn, unset after", func(t *testing.T) {
		var during string
		err := withEnv(key, "node-1", func() error { during, _ = seen(); return nil })
		if err != nil || during != "node-1" {
			t.Fatalf("err %v, during %q", err, during)
		}
		if v, ok := seen(); ok {
			t.Fatalf("left %s=%q", key, v)
		}
	})
	t.Run("same value kept", func(t *testing.T) {
		t.Setenv(key, "node-1")
		if err := withEnv(key, "node-1", func() error { return nil }); err != nil {
			t.Fatal(err)
		}
		if v, _ := seen(); v != "node-1" {
			t.Fatalf("now %q", v)
		}
	})
	t.Run("other value refused, fn not run", func(t *testing.T) {
		t.Setenv(key, "node-2")
		ran := false
		err := withEnv(key, "node-1", func() error { ran = true; return nil })
		wantErrLike(t, err, `KUBESEED_OVERLAY_TEST_NODE_NAME="node-2" is set`)
		if ran {
			t.Fatal("fn ran")
		}
	})
	t.Run("fn's error returned, env restored", func(t *testing.T) {
		boom := errors.New("boom")
		if err := withEnv(key, "node-1", func() error { return boom }); !errors.Is(err, boom) {
			t.Fatalf("got %v", err)
		}
		if _, ok := seen(); ok {
			t.Fatal("env left set")
		}
	})
}

func TestLifecycleWithoutAPIServer(t *testing.T) {
	c := goodConfig()
	c.Kubeconfig = t.TempDir() + "/missing.kubeconfig"
	o, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	wantErrLike(t, o.Ready(ctx), "overlay not ready (not started)")

	runErr := o.Run(context.Background())
	wantErrLike(t, runErr, "missing.kubeconfig")
	wantErrLike(t, o.Ready(context.Background()), "overlay stopped: overlay kubeconfig")
	if err := o.Run(context.Background()); !errors.Is(err, errRunTwice) {
		t.Fatalf("second Run: %v", err)
	}
}

func TestRunCanceledIsClean(t *testing.T) {
	c := goodConfig()
	c.Kubeconfig = t.TempDir() + "/missing.kubeconfig"
	o, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := o.Run(ctx); err != nil {
		t.Fatalf("Run after cancel: %v, want nil (a requested stop)", err)
	}
}

package hostinfo

import (
	"errors"
	"net"
	"slices"
	"strings"
	"testing"
)

func TestIsOverlay(t *testing.T) {
	for _, tt := range []struct {
		name    string
		overlay bool
	}{
		// CNI, overlay and container-engine interfaces.
		{"cni0", true},
		{"cni-kubeseed0", true},
		{"cni-podman0", true},
		{"flannel.1", true},
		{"flannel-v6.1", true},
		{"vxlan.calico", true},
		{"vxlan-v6.calico", true},
		{"cali123abc", true},
		{"podman0", true},
		{"lxdbr0", true},
		{"incusbr0", true},
		{"antrea-gw0", true},
		{"ovn-k8s-mp0", true},
		{"wireguard.cali", true},
		{"nodelocaldns", true},
		{"veth1a2b3c", true},
		{"docker0", true},
		{"br-0123456789ab", true}, // docker user network
		{"cilium_host", true},
		{"cilium_net", true},
		{"cilium_vxlan", true},
		{"tunl0", true},
		{"kube-ipvs0", true},
		{"kube-bridge", true},
		{"weave", true},
		{"lxc1234", true},
		{"lxcbr0", true},
		{"virbr0", true},
		{"wg0", true},
		{"genev_sys_6081", true},
		{"tap0", true},
		{"ifb0", true},
		// Host interfaces.
		{"eth0", false},
		{"ens3", false},
		{"enp0s3", false},
		{"eno1", false},
		{"wlan0", false},
		{"wlp2s0", false},
		{"br0", false}, // a host bridge carries the host's address
		{"bond0", false},
		{"eth0.100", false},
		{"lo", false}, // loopback is dropped by its flag, not its name
	} {
		if got := IsOverlay(tt.name); got != tt.overlay {
			t.Errorf("IsOverlay(%q) = %v, want %v", tt.name, got, tt.overlay)
		}
	}
}

func ipnet(s string) *net.IPNet {
	ip, n, err := net.ParseCIDR(s)
	if err != nil {
		panic(err)
	}
	n.IP = ip
	return n
}

func TestHostIPs(t *testing.T) {
	up := net.FlagUp | net.FlagBroadcast | net.FlagMulticast
	ifaces := []net.Interface{
		{Name: "lo", Flags: net.FlagUp | net.FlagLoopback},
		{Name: "eth0", Flags: up},
		{Name: "ens3", Flags: up},
		{Name: "br0", Flags: up},
		{Name: "wlan0", Flags: up},
		{Name: "eth1", Flags: net.FlagBroadcast}, // down
		{Name: "cni0", Flags: up},
		{Name: "cni-kubeseed0", Flags: up},
		{Name: "flannel.1", Flags: up},
		{Name: "vxlan.calico", Flags: up},
		{Name: "cali123", Flags: up},
		{Name: "veth9f8e7d", Flags: up},
		{Name: "docker0", Flags: up},
		{Name: "br-0123456789ab", Flags: up},
		{Name: "cilium_host", Flags: up},
		{Name: "tunl0", Flags: up},
		{Name: "kube-ipvs0", Flags: up},
		{Name: "weave", Flags: up},
		{Name: "lxc12ab", Flags: up},
		{Name: "wg0", Flags: up | net.FlagPointToPoint},
		{Name: "genev_sys_6081", Flags: up},
	}
	addrs := map[string][]net.Addr{
		"lo": {ipnet("127.0.0.1/8"), ipnet("::1/128")},
		"eth0": {
			ipnet("192.0.2.10/24"),
			ipnet("169.254.3.4/16"), // IPv4 link-local
			ipnet("fe80::1/64"),     // IPv6 link-local
			ipnet("febf::1/64"),     // still inside fe80::/10
			ipnet("2001:db8::10/64"),
			&net.IPAddr{IP: net.ParseIP("198.51.100.9")}, // not an IPNet: ignored
		},
		"ens3":  {ipnet("10.0.0.2/8"), ipnet("127.0.1.1/8")},      // loopback on a real NIC
		"br0":   {ipnet("172.20.0.1/16"), ipnet("192.0.2.10/24")}, // duplicate of eth0
		"wlan0": {ipnet("fd00::5/64"), ipnet("fec0::1/64")},       // fec0:: is outside fe80::/10
		"eth1":  {ipnet("203.0.113.1/24")},
	}
	for _, ifc := range ifaces {
		if _, ok := addrs[ifc.Name]; !ok {
			addrs[ifc.Name] = []net.Addr{ipnet("10.1.0.1/16"), ipnet("fd42::1/64")}
		}
	}
	var asked []string
	got, err := hostIPs(ifaces, func(ifc net.Interface) ([]net.Addr, error) {
		asked = append(asked, ifc.Name)
		return addrs[ifc.Name], nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Sorted as strings, de-duplicated.
	want := []string{"10.0.0.2", "172.20.0.1", "192.0.2.10", "2001:db8::10", "fd00::5", "fec0::1"}
	if s := ipStrings(got); !slices.Equal(s, want) {
		t.Errorf("hostIPs = %v, want %v", s, want)
	}
	if wantAsked := []string{"eth0", "ens3", "br0", "wlan0"}; !slices.Equal(asked, wantAsked) {
		t.Errorf("addresses read for %v, want only %v", asked, wantAsked)
	}
}

func TestHostIPsErrors(t *testing.T) {
	ifaces := []net.Interface{
		{Name: "cni0", Flags: net.FlagUp},
		{Name: "eth0", Flags: net.FlagUp},
	}
	_, err := hostIPs(ifaces, func(ifc net.Interface) ([]net.Addr, error) {
		if ifc.Name == "cni0" {
			t.Error("addresses of an overlay interface were read")
		}
		return nil, errors.New("boom")
	})
	if err == nil || !strings.Contains(err.Error(), "eth0") || !strings.Contains(err.Error(), "boom") {
		t.Errorf("err = %v, want one naming eth0", err)
	}
	got, err := hostIPs(nil, nil)
	if err != nil || len(got) != 0 {
		t.Errorf("no interfaces: %v, %v", got, err)
	}
}

func ipStrings(ips []net.IP) []string {
	var out []string
	for _, ip := range ips {
		out = append(out, ip.String())
	}
	return out
}

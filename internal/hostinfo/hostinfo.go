// Package hostinfo answers what the node is called and which addresses it has.
package hostinfo

import (
	"fmt"
	"net"
	"os"
	"sort"
	"strings"

	utilnet "k8s.io/apimachinery/pkg/util/net"
)

// overlayPrefixes name interfaces that CNI plugins and overlays create. Their
// addresses come and go with pods, so they never belong in a certificate.
var overlayPrefixes = []string{
	"cni", "cali", "flannel", "vxlan", "veth", "docker", "br-", "cilium",
	"kube-", "tunl", "weave", "lxc", "virbr", "genev", "wg", "tap", "ifb",
	"podman", "lxdbr", "incusbr", "antrea-", "ovn-k8s", "wireguard", "nodelocaldns",
}

// IsOverlay reports whether an interface name belongs to a CNI or overlay.
func IsOverlay(name string) bool {
	for _, p := range overlayPrefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// DefaultIP is the IP of the interface holding the default route, the
// address the apiserver advertises.
func DefaultIP() (net.IP, error) {
	ip, err := utilnet.ChooseHostInterface()
	if err != nil {
		return nil, fmt.Errorf("find the default-route IP (does the host have a default route? `ip route`): %w", err)
	}
	return ip, nil
}

// HostIPs lists every non-loopback, non-link-local address on interfaces
// that are up and not CNI or overlay interfaces, sorted and de-duplicated.
func HostIPs() ([]net.IP, error) {
	ifaces, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("list interfaces: %w", err)
	}
	return hostIPs(ifaces, func(ifc net.Interface) ([]net.Addr, error) { return ifc.Addrs() })
}

// hostIPs is HostIPs over the given interfaces; addrsOf is asked only for the
// interfaces kept. A seam for tests.
func hostIPs(ifaces []net.Interface, addrsOf func(net.Interface) ([]net.Addr, error)) ([]net.IP, error) {
	seen := map[string]bool{}
	var ips []net.IP
	for _, ifc := range ifaces {
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 || IsOverlay(ifc.Name) {
			continue
		}
		addrs, err := addrsOf(ifc)
		if err != nil {
			return nil, fmt.Errorf("addresses of %s: %w", ifc.Name, err)
		}
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if !ok {
				continue
			}
			ip := ipn.IP
			if ip.IsLoopback() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() {
				continue
			}
			if !seen[ip.String()] {
				seen[ip.String()] = true
				ips = append(ips, ip)
			}
		}
	}
	sort.Slice(ips, func(i, j int) bool { return ips[i].String() < ips[j].String() })
	return ips, nil
}

// NodeName is the lower-cased hostname, as the kubelet would register it.
func NodeName() (string, error) {
	h, err := os.Hostname()
	if err != nil {
		return "", fmt.Errorf("hostname: %w", err)
	}
	return strings.ToLower(h), nil
}

// MTUOf is the MTU of the interface holding ip.
func MTUOf(ip net.IP) (int, error) {
	ifaces, err := net.Interfaces()
	if err != nil {
		return 0, fmt.Errorf("list interfaces: %w", err)
	}
	for _, ifc := range ifaces {
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && n.IP.Equal(ip) {
				return ifc.MTU, nil
			}
		}
	}
	return 0, fmt.Errorf("no interface holds %s", ip)
}

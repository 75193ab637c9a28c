package overlay

import (
	"net"
	"slices"

	corev1 "k8s.io/api/core/v1"
)

// nodeInternalIPv4s returns the distinct IPv4 InternalIPs of nodes, sorted:
// the sources allowed to send VXLAN to this node. flannel announces the
// InternalIP as each node's public-ip, so that is where peers' packets
// come from.
func nodeInternalIPv4s(nodes []*corev1.Node) []string {
	var ips []string
	for _, n := range nodes {
		for _, a := range n.Status.Addresses {
			if a.Type != corev1.NodeInternalIP {
				continue
			}
			ip := parseIPv4(a.Address)
			if ip == nil {
				continue // IPv6 or garbage: the set is hash:ip family inet
			}
			ips = append(ips, ip.String())
		}
	}
	slices.Sort(ips)
	return slices.Compact(ips)
}

// ipsetDiff says which entries turn have into want. Both are IPv4
// addresses in any textual form; the result is canonical and sorted.
func ipsetDiff(want, have []string) (add, del []string) {
	w, h := canonicalSet(want), canonicalSet(have)
	for ip := range w {
		if _, ok := h[ip]; !ok {
			add = append(add, ip)
		}
	}
	for ip := range h {
		if _, ok := w[ip]; !ok {
			del = append(del, ip)
		}
	}
	slices.Sort(add)
	slices.Sort(del)
	return add, del
}

func canonicalSet(ips []string) map[string]struct{} {
	m := make(map[string]struct{}, len(ips))
	for _, s := range ips {
		if ip := parseIPv4(s); ip != nil {
			m[ip.String()] = struct{}{}
		}
	}
	return m
}

// parseIPv4 is ip's 4-byte form, nil if it is not IPv4.
func parseIPv4(s string) net.IP { return net.ParseIP(s).To4() }

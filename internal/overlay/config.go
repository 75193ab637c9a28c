package overlay

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// Config is what one node's overlay needs. Nothing has a default: flannel's
// defaults (port 0 = the kernel's 8472) are not kubeseed's.
type Config struct {
	// Kubeconfig is the node's kubelet kubeconfig (system:node:<name>).
	Kubeconfig string
	NodeName   string
	// NodeIP is the node's InternalIP; VXLAN leaves from the interface
	// holding it, and peers send to it. Nil: the Node's InternalIP, once
	// the kubelet registered it.
	NodeIP      net.IP
	ClusterCIDR string
	Port        int
	VNI         int
}

// encapOverhead is what VXLAN over IPv4 adds to every packet: outer
// Ethernet 14 + IPv4 20 + UDP 8 + VXLAN 8. flannel subtracts the same.
const encapOverhead = 50

// MTU is the pod MTU over an interface of hostMTU: the VXLAN device's MTU,
// which the CNI config must use so pods never send what cannot be carried.
func MTU(hostMTU int) int { return hostMTU - encapOverhead }

// DeviceName is the VXLAN link flannel creates for vni.
func DeviceName(vni int) string { return fmt.Sprintf("flannel.%d", vni) }

// validate checks c and returns the parsed cluster range and the IPv4 node
// address; every error names the field.
func (c Config) validate() (*net.IPNet, net.IP, error) {
	var errs []error
	if strings.TrimSpace(c.Kubeconfig) == "" {
		errs = append(errs, fieldErr("Kubeconfig", "must be set (the node's kubelet kubeconfig)"))
	}
	if c.NodeName == "" {
		errs = append(errs, fieldErr("NodeName", "must be set"))
	} else if msgs := validation.IsDNS1123Subdomain(c.NodeName); len(msgs) > 0 {
		errs = append(errs, fieldErr("NodeName", "%q: %s", c.NodeName, strings.Join(msgs, "; ")))
	}
	cluster, err := parseClusterCIDR(c.ClusterCIDR)
	if err != nil {
		errs = append(errs, fieldErr("ClusterCIDR", "%w", err))
	}
	var nodeIP net.IP
	if c.NodeIP != nil {
		if nodeIP, err = checkNodeIP(c.NodeIP, cluster); err != nil {
			errs = append(errs, fieldErr("NodeIP", "%w", err))
		}
	}
	if c.Port < 1 || c.Port > 65535 {
		errs = append(errs, fieldErr("Port", "%d: must be 1-65535 (kubeseed uses 4789; 0 would mean the kernel's 8472)", c.Port))
	}
	if c.VNI < 1 || c.VNI > 1<<24-1 {
		errs = append(errs, fieldErr("VNI", "%d: must be 1-16777215", c.VNI))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, nil, fmt.Errorf("overlay config: %w", err)
	}
	return cluster, nodeIP, nil
}

// checkNodeIP returns ip's 4-byte form if peers can send VXLAN to it;
// cluster, if known, must not hold it: routes for the cluster range would
// capture the VXLAN packets themselves.
func checkNodeIP(ip net.IP, cluster *net.IPNet) (net.IP, error) {
	switch {
	case ip.To4() == nil:
		return nil, fmt.Errorf("%s: only IPv4 is supported", ip)
	case ip.IsUnspecified() || ip.IsLoopback() || ip.IsMulticast() || ip.Equal(net.IPv4bcast):
		return nil, fmt.Errorf("%s: peers cannot send to it", ip)
	case cluster != nil && cluster.Contains(ip):
		return nil, fmt.Errorf("%s lies inside ClusterCIDR %s", ip, cluster)
	}
	return ip.To4(), nil
}

// fieldErr is an error about one Config field, named first.
func fieldErr(field, format string, args ...any) error {
	return fmt.Errorf("%s: "+format, append([]any{field}, args...)...)
}

// maxClusterPrefix is flannel's smallest useful network (/28).
const maxClusterPrefix = 28

func parseClusterCIDR(s string) (*net.IPNet, error) {
	if s == "" {
		return nil, errors.New("must be set (e.g. 10.1.0.0/16)")
	}
	ip, n, err := net.ParseCIDR(s)
	if err != nil {
		return nil, err
	}
	if ip.To4() == nil {
		return nil, fmt.Errorf("%s: only IPv4 is supported", s)
	}
	if !ip.Equal(n.IP) {
		return nil, fmt.Errorf("%s: not a network address (did you mean %s?)", s, n)
	}
	if ones, _ := n.Mask.Size(); ones > maxClusterPrefix {
		return nil, fmt.Errorf("%s: too small, at most /%d", s, maxClusterPrefix)
	}
	return n, nil
}

// netConf is flannel's net-conf.json, as flanneld reads it.
type netConf struct {
	Network    string
	EnableIPv4 bool
	EnableIPv6 bool
	Backend    netConfBackend
}

// netConfBackend is flannel's vxlan backend section. Port is always
// written: flannel's 0 means the kernel's default, 8472, not IANA's 4789.
type netConfBackend struct {
	Type          string
	VNI           int
	Port          int
	Learning      bool
	DirectRouting bool
}

// renderNetConf is the net-conf flannel's kube subnet manager reads:
// IPv4 only, vxlan without learning (flannel programs every FDB entry) and
// without direct routing (every cross-node packet goes through VXLAN and so
// through the 4789 filter).
func renderNetConf(cluster *net.IPNet, port, vni int) ([]byte, error) {
	return json.Marshal(netConf{
		Network:    cluster.String(),
		EnableIPv4: true,
		Backend:    netConfBackend{Type: "vxlan", VNI: vni, Port: port},
	})
}

// Package netconf reads a node's cluster network settings back from its
// args files, which are their source of truth: the service range (and so
// the kubernetes Service IP in the server certificate), the cluster DNS IP
// and the cluster domain (the DNS addon's Service and zone).
package netconf

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/kubeseed/kubeseed/internal/args"
	"github.com/kubeseed/kubeseed/internal/datadir"
	"github.com/kubeseed/kubeseed/internal/defaults"
)

// Network is what the args files say.
type Network struct {
	// ServiceCIDR is the primary (first) range of --service-cluster-ip-range.
	ServiceCIDR *net.IPNet
	// ServiceIP is the kubernetes Service's IP: the range's first address.
	ServiceIP net.IP
	// ClusterDNS is the first of kubelet.yaml's clusterDNS: the DNS
	// addon's Service IP.
	ClusterDNS    net.IP
	ClusterDomain string
}

// Read parses the settings from l's args files. A file that does not exist
// yet (a first start) stands for the default kubeseed writes.
func Read(l datadir.Layout) (Network, error) {
	var n Network
	apiPath := l.Args(defaults.APIServerComponent)
	cidr, err := flagOr(apiPath, "service-cluster-ip-range", defaults.ServiceCIDR)
	if err != nil {
		return n, err
	}
	if n.ServiceCIDR, n.ServiceIP, err = parseRange(cidr); err != nil {
		return n, fmt.Errorf("%s: --service-cluster-ip-range=%s: %w", apiPath, cidr, err)
	}
	kcmPath := l.Args(defaults.ControllerManagerComponent)
	kcm, err := flagOr(kcmPath, "service-cluster-ip-range", cidr)
	if err != nil {
		return n, err
	}
	if kcm != cidr {
		return n, fmt.Errorf("%s: --service-cluster-ip-range=%s differs from %s in %s; the two must be equal", kcmPath, kcm, cidr, apiPath)
	}

	yamlPath := l.Args(defaults.KubeletConfigFile)
	dnsIP, domain := defaults.ClusterDNS, defaults.ClusterDomain
	data, err := os.ReadFile(yamlPath)
	if err != nil && !os.IsNotExist(err) {
		return n, err
	}
	if err == nil {
		var doc struct {
			ClusterDNS    []string `json:"clusterDNS"`
			ClusterDomain string   `json:"clusterDomain"`
		}
		if err := yaml.Unmarshal(data, &doc); err != nil {
			return n, fmt.Errorf("%s: %w", yamlPath, err)
		}
		if len(doc.ClusterDNS) == 0 {
			return n, fmt.Errorf("%s: field clusterDNS is not set; pods need it to find the cluster DNS (the default is [%s])", yamlPath, defaults.ClusterDNS)
		}
		if doc.ClusterDomain == "" {
			return n, fmt.Errorf("%s: field clusterDomain is not set (the default is %s)", yamlPath, defaults.ClusterDomain)
		}
		dnsIP, domain = doc.ClusterDNS[0], doc.ClusterDomain
	}
	if n.ClusterDNS = net.ParseIP(dnsIP); n.ClusterDNS == nil {
		return n, fmt.Errorf("%s: field clusterDNS: %q is not an IP address", yamlPath, dnsIP)
	}
	if !n.ServiceCIDR.Contains(n.ClusterDNS) || n.ClusterDNS.Equal(n.ServiceIP) {
		return n, fmt.Errorf("%s: field clusterDNS: %s is not a free address of the service range %s (--service-cluster-ip-range in %s); the DNS addon's Service needs one", yamlPath, dnsIP, n.ServiceCIDR, apiPath)
	}
	if err := validDomain(domain); err != nil {
		return n, fmt.Errorf("%s: field clusterDomain: %w", yamlPath, err)
	}
	n.ClusterDomain = domain
	return n, nil
}

// flagOr is the flag's value in the args file at path, def when the file
// does not exist, and an error when the file exists without the flag.
func flagOr(path, flag, def string) (string, error) {
	f, err := args.Load(path)
	if errors.Is(err, fs.ErrNotExist) {
		return def, nil
	}
	if err != nil {
		return "", err
	}
	v, ok := f.Get(flag)
	if !ok {
		return "", fmt.Errorf("%s: --%s is not set; kubeseed reads the cluster's service range from it (the default is %s)", path, flag, defaults.ServiceCIDR)
	}
	return strings.TrimSpace(v), nil
}

// parseRange parses the first CIDR of a (possibly dual-stack) list and
// returns it with its first usable address.
func parseRange(v string) (*net.IPNet, net.IP, error) {
	first := strings.TrimSpace(strings.Split(v, ",")[0])
	ip, cidr, err := net.ParseCIDR(first)
	if err != nil {
		return nil, nil, err
	}
	if !ip.Equal(cidr.IP) {
		return nil, nil, fmt.Errorf("%s is not the start of a range (did you mean %s?)", first, cidr)
	}
	ones, bits := cidr.Mask.Size()
	if bits-ones < 2 {
		return nil, nil, fmt.Errorf("%s is too small for Services", first)
	}
	svc := make(net.IP, len(cidr.IP))
	copy(svc, cidr.IP)
	svc[len(svc)-1]++
	if v4 := svc.To4(); v4 != nil {
		svc = v4
	}
	return cidr, svc, nil
}

// validDomain accepts a DNS name of labels: letters, digits and '-'.
func validDomain(d string) error {
	if len(d) > 253 {
		return fmt.Errorf("%q is longer than 253 characters", d)
	}
	for _, label := range strings.Split(d, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("%q is not a DNS domain", d)
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
				return fmt.Errorf("%q is not a DNS domain (lower-case letters, digits, '-' and '.')", d)
			}
		}
	}
	return nil
}

// RecordedRange is the service range a node was first started with. The
// kubernetes Service keeps its IP, so a later change of the range cannot
// take effect.
func RecordedRange(l datadir.Layout) (string, error) {
	data, err := os.ReadFile(l.ServiceRangeRecord())
	if os.IsNotExist(err) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(data)), nil
}

// CheckRange refuses a service range other than the recorded one.
func CheckRange(l datadir.Layout, n Network) error {
	rec, err := RecordedRange(l)
	if err != nil || rec == "" {
		return err
	}
	if rec != n.ServiceCIDR.String() {
		return fmt.Errorf("%s: --service-cluster-ip-range is %s, but this node was started with %s (recorded in %s). The kubernetes Service keeps its IP in the old range, and the server certificate would name the new one, so in-cluster clients would fail: put %s back, or run `kubeseed reset` to start over with the new range",
			l.Args(defaults.APIServerComponent), n.ServiceCIDR, rec, l.ServiceRangeRecord(), rec)
	}
	return nil
}

// Default is the network of a new node: kubeseed's defaults.
func Default() Network {
	cidr, svc, err := parseRange(defaults.ServiceCIDR)
	if err != nil {
		panic(err) // a constant
	}
	return Network{ServiceCIDR: cidr, ServiceIP: svc, ClusterDNS: net.ParseIP(defaults.ClusterDNS), ClusterDomain: defaults.ClusterDomain}
}

package node

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/kubeseed/kubeseed/internal/args"
	"github.com/kubeseed/kubeseed/internal/datadir"
	"github.com/kubeseed/kubeseed/internal/defaults"
	"github.com/kubeseed/kubeseed/internal/hostclaim"
)

var (
	// A cgroup path segment, a CNI network name (the CNI spec's pattern)
	// and a Linux interface name (at most 15 bytes).
	cgroupSegment = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)
	cniName       = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$`)
	interfaceName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,14}$`)
)

// HostNamesOf reads the names a node uses outside its data dir from the
// files that set them: cgroupRoot and podLogsDir in args/kubelet.yaml, and
// the network and bridge names in its CNI config. What a file does not say
// falls back to what the kubelet or kubeseed would use. Every name is
// checked before anyone creates or deletes by it: an edited file cannot
// point reset at the host's root cgroup or outside CNI's cache.
func HostNamesOf(l datadir.Layout) (defaults.HostNames, error) {
	names := defaults.HostNamesFor(l)
	kubeletYAML := l.Args(defaults.KubeletConfigFile)
	if data, err := os.ReadFile(kubeletYAML); err == nil {
		var doc struct {
			CgroupRoot *string `json:"cgroupRoot"`
			PodLogsDir *string `json:"podLogsDir"`
		}
		if err := yaml.Unmarshal(data, &doc); err != nil {
			return names, fmt.Errorf("%s: %w", kubeletYAML, err)
		}
		// Without cgroupRoot the kubelet puts pods in the host's root
		// cgroup, which every node would share.
		names.CgroupRoot = ""
		if doc.CgroupRoot != nil {
			names.CgroupRoot = *doc.CgroupRoot
		}
		// An absent podLogsDir is added at start (bootstrap's kubelet.yaml
		// migration), so it is the data dir's.
		if doc.PodLogsDir != nil {
			if names.PodLogsDir, err = args.Expand(*doc.PodLogsDir, l.Vars()); err != nil {
				return names, fmt.Errorf("%s: field podLogsDir: %w", kubeletYAML, err)
			}
		}
	} else if !os.IsNotExist(err) {
		return names, err
	}
	if err := ValidCgroupRoot(names.CgroupRoot); err != nil {
		return names, fmt.Errorf("%s: field cgroupRoot: %w", kubeletYAML, err)
	}
	if p := names.PodLogsDir; !filepath.IsAbs(p) || filepath.Clean(p) != p || p == "/" {
		return names, fmt.Errorf("%s: field podLogsDir %q: must be a clean absolute path other than /", kubeletYAML, p)
	}
	// The template of this version, or the static config of an older
	// data dir not yet migrated.
	confs := []string{l.Args(defaults.CNITemplateFile)}
	if _, err := os.Stat(confs[0]); os.IsNotExist(err) {
		confs, _ = filepath.Glob(filepath.Join(l.Args(defaults.LegacyCNIConfDir), "*.conflist"))
	}
	if len(confs) == 0 {
		return names, nil
	}
	data, err := os.ReadFile(confs[0])
	if os.IsNotExist(err) {
		return names, nil
	}
	if err != nil {
		return names, err
	}
	var conf struct {
		Name    string `json:"name"`
		Plugins []struct {
			Type   string `json:"type"`
			Bridge string `json:"bridge"`
		} `json:"plugins"`
	}
	if err := json.Unmarshal(data, &conf); err != nil {
		return names, fmt.Errorf("%s: %w", confs[0], err)
	}
	names.Network = conf.Name
	if !cniName.MatchString(names.Network) {
		return names, fmt.Errorf("%s: field name %q: a CNI network name is letters, digits, '_', '.' and '-', starting with a letter or digit", confs[0], names.Network)
	}
	for _, p := range conf.Plugins {
		if p.Type == "bridge" && p.Bridge != "" {
			names.Bridge = p.Bridge
		}
	}
	if !interfaceName.MatchString(names.Bridge) {
		return names, fmt.Errorf("%s: field bridge %q: an interface name is 1-15 letters, digits, '_', '.' or '-'", confs[0], names.Bridge)
	}
	return names, nil
}

// ValidCgroupRoot accepts a kubelet cgroupRoot kubeseed may create and
// remove: an absolute path of plain names, never the root itself.
func ValidCgroupRoot(root string) error {
	if !strings.HasPrefix(root, "/") || root == "/" || filepath.Clean(root) != root {
		return fmt.Errorf("%q: must be a clean absolute cgroup path below the root, such as /kubeseed", root)
	}
	for _, seg := range strings.Split(root[1:], "/") {
		if !cgroupSegment.MatchString(seg) {
			return fmt.Errorf("%q: segment %q is not a plain name (letters, digits, '_', '.', '-')", root, seg)
		}
	}
	return nil
}

// Claim kinds: what two live nodes on one host must never share.
const (
	ClaimPodNetwork = "the pod network of network namespace"
	ClaimCgroupRoot = "cgroup root"
	ClaimCNINetwork = "CNI network"
	ClaimPodLogs    = "pod log directory"
)

// Claims lists what the node with these names owns on the host while it
// runs. The pod network (bridge, kube-proxy's and the bridge plugin's
// iptables rules) belongs to the network namespace the node runs in.
func Claims(names defaults.HostNames) ([]hostclaim.Claim, error) {
	netns, err := hostclaim.NetnsID()
	if err != nil {
		return nil, err
	}
	return []hostclaim.Claim{
		{Kind: ClaimPodNetwork, Key: netns},
		{Kind: ClaimCgroupRoot, Key: names.CgroupRoot},
		{Kind: ClaimCNINetwork, Key: names.Network},
		{Kind: ClaimPodLogs, Key: names.PodLogsDir},
	}, nil
}

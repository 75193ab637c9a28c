package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/spf13/pflag"
	"github.com/vishvananda/netlink"
	"k8s.io/klog/v2"
	proxyapp "k8s.io/kubernetes/cmd/kube-proxy/app"
	"sigs.k8s.io/yaml"

	"github.com/kubeseed/kubeseed/internal/containerruntime"
	"github.com/kubeseed/kubeseed/internal/datadir"
	"github.com/kubeseed/kubeseed/internal/defaults"
)

// CleanupHost removes what a stopped node leaves on the host outside its
// data dir, for `kubeseed reset`: mounts under the data dir, the kubelet's
// cgroups, kube-proxy's iptables rules, the pod bridge, CNI's result cache
// and the shim socket directory. It reports what it removed.
func CleanupHost(ctx context.Context, l datadir.Layout) ([]string, error) {
	var done []string
	var errs []error
	if n, err := UnmountUnder(l.Root); err != nil {
		errs = append(errs, err)
	} else if n > 0 {
		done = append(done, fmt.Sprintf("%d mounts under %s", n, l.Root))
	}
	names := HostNamesOf(l)
	if err := RemoveCgroupRoot(names.CgroupRoot); err != nil {
		errs = append(errs, err)
	} else {
		done = append(done, "cgroups "+names.CgroupRoot)
	}
	if err := cleanupProxyRules(ctx); err != nil {
		errs = append(errs, fmt.Errorf("kube-proxy rules: %w", err))
	} else {
		done = append(done, "kube-proxy's iptables rules")
	}
	// The kubelet's canary chains are not kube-proxy's to clean up.
	for _, table := range []string{"nat", "mangle", "filter"} {
		_ = exec.CommandContext(ctx, "iptables", "-t", table, "-X", "KUBE-KUBELET-CANARY").Run()
	}
	if link, err := netlink.LinkByName(names.Bridge); err == nil {
		if err := netlink.LinkDel(link); err != nil {
			errs = append(errs, fmt.Errorf("delete interface %s: %w", names.Bridge, err))
		} else {
			done = append(done, "interface "+names.Bridge)
		}
	}
	results, _ := filepath.Glob(filepath.Join(CNIResultsDir, names.Network+"-*"))
	for _, r := range results {
		if err := os.Remove(r); err != nil {
			errs = append(errs, err)
		}
	}
	if len(results) > 0 {
		done = append(done, fmt.Sprintf("%d CNI result files", len(results)))
	}
	if err := os.RemoveAll(containerruntime.ShimSocketDir(l)); err != nil {
		errs = append(errs, err)
	}
	return done, errors.Join(errs...)
}

// CNIResultsDir is where libcni caches each attachment's result, named
// <network>-<container>-<interface>.
const CNIResultsDir = "/var/lib/cni/results"

// HostNamesOf reads the names a node uses outside its data dir from the
// files that set them: cgroupRoot in args/kubelet.yaml, and the network
// and bridge names in its CNI config. What a file does not say falls back
// to the defaults for this data dir.
func HostNamesOf(l datadir.Layout) defaults.HostNames {
	names := defaults.HostNamesFor(l)
	if data, err := os.ReadFile(l.Args(defaults.KubeletConfigFile)); err == nil {
		var doc struct {
			CgroupRoot string `json:"cgroupRoot"`
		}
		if yaml.Unmarshal(data, &doc) == nil && doc.CgroupRoot != "" {
			names.CgroupRoot = doc.CgroupRoot
		}
	}
	confs, _ := filepath.Glob(filepath.Join(l.Args(defaults.CNIConfDir), "*.conflist"))
	if len(confs) > 0 {
		if data, err := os.ReadFile(confs[0]); err == nil {
			var conf struct {
				Name    string `json:"name"`
				Plugins []struct {
					Type   string `json:"type"`
					Bridge string `json:"bridge"`
				} `json:"plugins"`
			}
			if json.Unmarshal(data, &conf) == nil {
				if conf.Name != "" {
					names.Network = conf.Name
				}
				for _, p := range conf.Plugins {
					if p.Type == "bridge" && p.Bridge != "" {
						names.Bridge = p.Bridge
					}
				}
			}
		}
	}
	return names
}

// cleanupProxyRules runs upstream kube-proxy's own --cleanup.
func cleanupProxyRules(ctx context.Context) error {
	o := proxyapp.NewOptions()
	fs := pflag.NewFlagSet("kube-proxy", pflag.ContinueOnError)
	o.AddFlags(fs)
	if err := fs.Parse([]string{"--cleanup"}); err != nil {
		return err
	}
	if err := o.Complete(fs); err != nil {
		return err
	}
	klog.FromContext(ctx).V(2).Info("cleaning up kube-proxy rules")
	return o.Run(ctx)
}

package node

import (
	"context"
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
	root := cgroupRootOf(l)
	if err := RemoveCgroupRoot(root); err != nil {
		errs = append(errs, err)
	} else {
		done = append(done, "cgroups "+root)
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
	if link, err := netlink.LinkByName(defaults.CNIBridge); err == nil {
		if err := netlink.LinkDel(link); err != nil {
			errs = append(errs, fmt.Errorf("delete interface %s: %w", defaults.CNIBridge, err))
		} else {
			done = append(done, "interface "+defaults.CNIBridge)
		}
	}
	results, _ := filepath.Glob(filepath.Join("/var/lib/cni/results", defaults.CNINetworkName+"-*"))
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

// cgroupRootOf reads cgroupRoot from args/kubelet.yaml.
func cgroupRootOf(l datadir.Layout) string {
	data, err := os.ReadFile(l.Args(defaults.KubeletConfigFile))
	if err != nil {
		return defaults.CgroupRoot
	}
	var doc struct {
		CgroupRoot string `json:"cgroupRoot"`
	}
	if yaml.Unmarshal(data, &doc) != nil || doc.CgroupRoot == "" {
		return defaults.CgroupRoot
	}
	return doc.CgroupRoot
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

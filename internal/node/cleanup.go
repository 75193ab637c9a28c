package node

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"github.com/vishvananda/netlink"
	"k8s.io/klog/v2"
	proxyapp "k8s.io/kubernetes/cmd/kube-proxy/app"

	"github.com/kubeseed/kubeseed/internal/containerruntime"
	"github.com/kubeseed/kubeseed/internal/datadir"
	"github.com/kubeseed/kubeseed/internal/hostclaim"
	"github.com/kubeseed/kubeseed/internal/overlay"
)

// CleanupHost removes what a stopped node leaves on the host outside its
// data dir, for `kubeseed reset`: mounts under the data dir, the kubelet's
// cgroups, kube-proxy's iptables rules, the overlay, the pod bridge, CNI's result cache,
// the kubelet's links in /var/log/containers and the shim socket
// directory. It reads every name from the node's files and checks it
// before it deletes anything, and leaves alone what another live node
// holds (see package hostclaim), saying so in skipped.
func CleanupHost(ctx context.Context, l datadir.Layout) (done, skipped []string, err error) {
	names, err := HostNamesOf(l)
	if err != nil {
		return nil, nil, fmt.Errorf("%w; fix that file so reset knows what to remove (nothing was removed)", err)
	}
	claims, err := Claims(names)
	if err != nil {
		return nil, nil, err
	}
	heldBy := map[string]string{} // claim kind: who holds it
	for _, c := range claims {
		h, held, err := hostclaim.HeldBy(hostclaim.Dir, c)
		if err != nil {
			return nil, nil, err
		}
		if held && h.DataDir != l.Root {
			heldBy[c.Kind] = fmt.Sprintf("%s %s is in use by the node on %s (pid %d)", c.Kind, c.Key, h.DataDir, h.PID)
			skipped = append(skipped, heldBy[c.Kind])
		}
	}
	var errs []error
	if n, err := UnmountUnder(l.Root); err != nil {
		errs = append(errs, err)
	} else if n > 0 {
		done = append(done, fmt.Sprintf("%d mounts under %s", n, l.Root))
	}
	if heldBy[ClaimCgroupRoot] == "" {
		// Pods of a node that died without stopping them still run.
		if n, err := KillCgroupProcesses(names.CgroupRoot, 10*time.Second); err != nil {
			errs = append(errs, err)
		} else if n > 0 {
			done = append(done, fmt.Sprintf("%d pod processes left running", n))
		}
		if n := containerruntime.KillShims(l); n > 0 {
			done = append(done, fmt.Sprintf("%d container shims left running", n))
		}
		if err := RemoveCgroupRoot(names.CgroupRoot); err != nil {
			errs = append(errs, err)
		} else {
			done = append(done, "cgroups "+names.CgroupRoot)
		}
	}
	if heldBy[ClaimPodNetwork] == "" {
		if err := cleanupProxyRules(ctx); err != nil {
			errs = append(errs, fmt.Errorf("kube-proxy rules: %w", err))
		} else {
			done = append(done, "kube-proxy's iptables rules")
		}
		// The kubelet's canary chains are not kube-proxy's to clean up.
		for _, table := range []string{"nat", "mangle", "filter"} {
			_ = exec.CommandContext(ctx, "iptables", "-t", table, "-X", "KUBE-KUBELET-CANARY").Run()
		}
		// The overlay is per network namespace too: its device, flannel's
		// chains and the VXLAN filter.
		if err := overlay.CleanUp(); err != nil {
			errs = append(errs, fmt.Errorf("overlay: %w", err))
		} else {
			done = append(done, "the overlay's VXLAN device, iptables rules and ipset "+overlay.IPSetName)
		}
		if link, err := netlink.LinkByName(names.Bridge); err == nil {
			if err := netlink.LinkDel(link); err != nil {
				errs = append(errs, fmt.Errorf("delete interface %s: %w", names.Bridge, err))
			} else {
				done = append(done, "interface "+names.Bridge)
			}
		}
	}
	if heldBy[ClaimCNINetwork] == "" {
		results, _ := filepath.Glob(filepath.Join(CNIResultsDir, names.Network+"-*"))
		for _, r := range results {
			if err := os.Remove(r); err != nil {
				errs = append(errs, err)
			}
		}
		if len(results) > 0 {
			done = append(done, fmt.Sprintf("%d CNI result files", len(results)))
		}
	}
	if n, err := removeContainerLogLinks(names.PodLogsDir); err != nil {
		errs = append(errs, err)
	} else if n > 0 {
		done = append(done, fmt.Sprintf("%d links in %s", n, ContainerLogLinksDir))
	}
	if err := os.RemoveAll(containerruntime.ShimSocketDir(l)); err != nil {
		errs = append(errs, err)
	}
	return done, skipped, errors.Join(errs...)
}

// ContainerLogLinksDir is where the kubelet links every container's log
// (a fixed path upstream), pointing into its podLogsDir.
const ContainerLogLinksDir = "/var/log/containers"

// removeContainerLogLinks removes the links of ContainerLogLinksDir that
// point into podLogsDir, and no other.
func removeContainerLogLinks(podLogsDir string) (int, error) {
	entries, err := os.ReadDir(ContainerLogLinksDir)
	if os.IsNotExist(err) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	n := 0
	var errs []error
	for _, e := range entries {
		link := filepath.Join(ContainerLogLinksDir, e.Name())
		target, err := os.Readlink(link)
		if err != nil || !strings.HasPrefix(target, podLogsDir+"/") {
			continue
		}
		if err := os.Remove(link); err != nil {
			errs = append(errs, err)
			continue
		}
		n++
	}
	return n, errors.Join(errs...)
}

// CNIResultsDir is where libcni caches each attachment's result, named
// <network>-<container>-<interface>.
const CNIResultsDir = "/var/lib/cni/results"

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

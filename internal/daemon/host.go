package daemon

import (
	"context"
	"fmt"
	"os"

	"k8s.io/klog/v2"
)

// hostSysctls are the kernel settings pod networking needs; the bridge one
// exists only where br_netfilter is available.
var hostSysctls = []struct {
	path     string
	optional bool
}{
	{"/proc/sys/net/ipv4/ip_forward", false},
	{"/proc/sys/net/bridge/bridge-nf-call-iptables", true},
	{"/proc/sys/net/bridge/bridge-nf-call-ip6tables", true},
}

// prepareHost turns on forwarding for pod traffic.
func prepareHost(ctx context.Context) error {
	for _, s := range hostSysctls {
		if err := os.WriteFile(s.path, []byte("1"), 0o644); err != nil {
			if s.optional && os.IsNotExist(err) {
				klog.FromContext(ctx).Info("sysctl not available; pod-to-Service traffic on the same bridge may bypass iptables", "sysctl", s.path)
				continue
			}
			return fmt.Errorf("set %s: %w (kubeseed must run as root)", s.path, err)
		}
	}
	return nil
}

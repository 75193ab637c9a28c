package dns

import (
	"context"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
	"k8s.io/klog/v2"

	"github.com/kubeseed/kubeseed/internal/datadir"
	"github.com/kubeseed/kubeseed/internal/netconf"
)

// HostResolvConf is where the forwarders come from by default; the kubelet
// gives pods with dnsPolicy Default the same file.
const HostResolvConf = "/etc/resolv.conf"

// Objects renders the addon for c on the node l, with the cluster DNS IP
// and domain its args files set, logging a fallback forwarder choice.
func Objects(ctx context.Context, l datadir.Layout, c Config) ([]*unstructured.Unstructured, []string, error) {
	n, err := netconf.Read(l)
	if err != nil {
		return nil, nil, err
	}
	ups, note := c.ResolvedUpstreams(HostResolvConf)
	if note != "" {
		klog.FromContext(ctx).Info("DNS forwarders: host resolvers unusable in pods", "choice", ups, "why", note)
	}
	objs, err := Render(ParamsFor(n, ups))
	return objs, ups, err
}

// Reconcile makes the cluster match config/dns: the addon applied when
// enabled (with the host's resolvers read afresh), deleted when disabled.
// Every start runs it.
func Reconcile(ctx context.Context, l datadir.Layout, dc dynamic.Interface) error {
	c, err := LoadConfig(l)
	if err != nil {
		return err
	}
	objs, ups, err := Objects(ctx, l, c)
	if err != nil {
		return err
	}
	if !c.Enabled {
		return Delete(ctx, dc, objs)
	}
	if err := Apply(ctx, dc, objs); err != nil {
		return err
	}
	klog.FromContext(ctx).V(1).Info("DNS addon applied", "upstreams", ups)
	return nil
}

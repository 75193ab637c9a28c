package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"

	"github.com/spf13/pflag"
	"k8s.io/klog/v2"

	"github.com/kubeseed/kubeseed/internal/args"
	"github.com/kubeseed/kubeseed/internal/containerruntime"
	"github.com/kubeseed/kubeseed/internal/datadir"
	"github.com/kubeseed/kubeseed/internal/defaults"
	"github.com/kubeseed/kubeseed/internal/overlay"
	"github.com/kubeseed/kubeseed/internal/supervisor"
)

// Overlay runs the node's share of the cluster pod network (flannel's
// VXLAN backend in-process) and the filter that lets only cluster nodes
// send to its UDP port.
type Overlay struct {
	layout datadir.Layout
	net    *overlay.Overlay
	run    *supervisor.Runner
}

// NewOverlay returns the component; it reads args/overlay at Init.
func NewOverlay(l datadir.Layout) *Overlay {
	return &Overlay{layout: l, run: supervisor.NewRunner(defaults.OverlayComponent, 0)}
}

func (o *Overlay) Name() string { return defaults.OverlayComponent }

// ReadyBefore: pods on this node need no overlay; only other nodes' pods do.
func (o *Overlay) ReadyBefore() string  { return supervisor.NodeReady }
func (o *Overlay) Exited() <-chan error { return o.run.Exited() }

// Init parses args/overlay; the node name is the kubelet's.
func (o *Overlay) Init(ctx context.Context) error {
	cfg, err := OverlayConfig(o.layout)
	if err != nil {
		return err
	}
	if o.net, err = overlay.New(cfg); err != nil {
		return fmt.Errorf("%s: %w", o.layout.Args(defaults.OverlayComponent), err)
	}
	return nil
}

// OverlayConfig reads args/overlay (and the node name from args/kubelet).
func OverlayConfig(l datadir.Layout) (overlay.Config, error) {
	f, err := args.Load(l.Args(defaults.OverlayComponent))
	if err != nil {
		return overlay.Config{}, err
	}
	var cfg overlay.Config
	var nodeIP string
	fs := pflag.NewFlagSet(defaults.OverlayComponent, pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&cfg.Kubeconfig, "kubeconfig", "", "the node's kubelet kubeconfig")
	fs.StringVar(&cfg.ClusterCIDR, "cluster-cidr", "", "the cluster's pod range")
	fs.IntVar(&cfg.Port, "port", 0, "VXLAN UDP port")
	fs.IntVar(&cfg.VNI, "vni", 0, "VXLAN network identifier")
	fs.StringVar(&nodeIP, "node-ip", "", "the address peers send to; default the Node's InternalIP")
	if err := f.Apply(l.Vars(), func(name, value string, _ bool) error {
		if fs.Lookup(name) == nil {
			return errors.New("unknown flag for overlay (it takes --kubeconfig, --cluster-cidr, --port, --vni, --node-ip)")
		}
		return fs.Set(name, value)
	}); err != nil {
		return overlay.Config{}, err
	}
	if nodeIP != "" {
		if cfg.NodeIP = net.ParseIP(nodeIP); cfg.NodeIP == nil {
			return overlay.Config{}, fmt.Errorf("%s: --node-ip=%q is not an IP address", f.Path, nodeIP)
		}
	}
	if cfg.NodeName, err = NameOf(l); err != nil {
		return overlay.Config{}, err
	}
	return cfg, nil
}

// Start runs the overlay until Stop.
func (o *Overlay) Start(ctx context.Context) error {
	o.run.Start(ctx, o.net.Run)
	return nil
}

// Ready waits until the VXLAN device is up and the Node announces it, and
// makes the pods' CNI config follow the Node's range.
func (o *Overlay) Ready(ctx context.Context) error {
	if err := o.net.Ready(ctx); err != nil {
		return err
	}
	changed, err := containerruntime.EnsureCNIRange(o.layout, o.net.PodCIDR())
	if err != nil {
		return fmt.Errorf("the pods' CNI config for %s: %w", o.net.PodCIDR(), err)
	}
	if changed {
		klog.FromContext(ctx).Info("The Node's pod range changed; rendered the CNI config for it", "podCIDR", o.net.PodCIDR())
	}
	return nil
}

// Stop ends the overlay. The device, routes and filter stay until `kubeseed
// reset`, so pods keep their network across a restart.
func (o *Overlay) Stop(ctx context.Context) error { return o.run.Stop(ctx) }

// NameOf is the node's name: the kubelet's --hostname-override.
func NameOf(l datadir.Layout) (string, error) {
	f, err := args.Load(l.Args(defaults.KubeletComponent))
	if err != nil {
		return "", err
	}
	name, ok := f.Get("hostname-override")
	if !ok || name == "" {
		return "", fmt.Errorf("%s: no --hostname-override", f.Path)
	}
	return name, nil
}

package features

import (
	"context"
	"fmt"
	"strings"
	"time"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/kubeseed/kubeseed/internal/addons/dns"
	"github.com/kubeseed/kubeseed/internal/controlplane"
	"github.com/kubeseed/kubeseed/internal/netconf"
)

// DNS switches the CoreDNS addon. Its state is config/dns; on a running
// node the objects are applied or deleted at once, and every start applies
// that state again.
type DNS struct {
	// Timeout bounds the wait for CoreDNS to be Ready after enable.
	Timeout time.Duration
	Clients func(n Node) (kubernetes.Interface, dynamic.Interface, error)
}

// NewDNS returns the feature with its defaults.
func NewDNS() *DNS {
	return &DNS{Timeout: 3 * time.Minute, Clients: adminClients}
}

func adminClients(n Node) (kubernetes.Interface, dynamic.Interface, error) {
	cs, err := controlplane.AdminClient(n.Layout)
	if err != nil {
		return nil, nil, err
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", n.Layout.AdminKubeconfig())
	if err != nil {
		return nil, nil, fmt.Errorf("load %s: %w", n.Layout.AdminKubeconfig(), err)
	}
	cfg.UserAgent = "kubeseed"
	dc, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", n.Layout.AdminKubeconfig(), err)
	}
	return cs, dc, nil
}

func (*DNS) Name() string { return "dns" }
func (*DNS) Description() string {
	return "CoreDNS at kubelet.yaml's clusterDNS for its clusterDomain (on by default; --upstream IP,... sets its forwarders)"
}

// Options: --upstream.
func (*DNS) Options() []string { return []string{"upstream"} }

// Status reads config/dns.
func (d *DNS) Status(n Node) (Status, error) {
	c, err := dns.LoadConfig(n.Layout)
	if err != nil {
		return Status{}, err
	}
	up := "forwarding to the host's resolvers"
	if len(c.Upstreams) > 0 {
		up = "forwarding to " + strings.Join(c.Upstreams, ",")
	}
	return Status{Enabled: c.Enabled, Detail: up}, nil
}

// Enable is EnableWith without options.
func (d *DNS) Enable(ctx context.Context, n Node) error {
	return d.EnableWith(ctx, n, nil)
}

// EnableWith enables the addon, or changes its forwarders when it is on.
// opts["upstream"] is validated before anything changes.
func (d *DNS) EnableWith(ctx context.Context, n Node, opts map[string]string) error {
	old, err := dns.LoadConfig(n.Layout)
	if err != nil {
		return err
	}
	c := dns.Config{Enabled: true, Upstreams: old.Upstreams}
	for k, v := range opts {
		if k != "upstream" {
			return fmt.Errorf("dns has no option --%s", k)
		}
		if v == "auto" {
			c.Upstreams = nil
			continue
		}
		if c.Upstreams, err = dns.ParseUpstreams("--upstream", v); err != nil {
			return err
		}
	}
	if old.Enabled && strings.Join(old.Upstreams, ",") == strings.Join(c.Upstreams, ",") && opts != nil {
		fmt.Fprintln(n.Out, "dns is already enabled with these forwarders; nothing to do")
		return nil
	}
	objs, ups, err := dns.Objects(ctx, n.Layout, c)
	if err != nil {
		return err
	}
	if !n.Running {
		if err := dns.SaveConfig(n.Layout, c); err != nil {
			return err
		}
		fmt.Fprintf(n.Out, "DNS will be deployed at the next start, forwarding to %s (%s updated)\n", strings.Join(ups, ","), n.Layout.Config(dns.ConfigFile))
		return nil
	}
	cs, dc, err := d.Clients(n)
	if err != nil {
		return err
	}
	if err := dns.Apply(ctx, dc, objs); err != nil {
		return fmt.Errorf("%w; is the node ready? (`kubeseed status`)", err)
	}
	// Saved once applied: a failed apply leaves the file, and so the next
	// start, as they were.
	if err := dns.SaveConfig(n.Layout, c); err != nil {
		return err
	}
	n.Progress("applied the DNS addon; waiting for CoreDNS to be Ready")
	wctx, cancel := context.WithTimeout(ctx, d.Timeout)
	defer cancel()
	if err := dns.WaitReady(wctx, cs, n.Progress); err != nil {
		return err
	}
	netw, err := netconf.Read(n.Layout)
	if err != nil {
		return err
	}
	fmt.Fprintf(n.Out, "DNS enabled: CoreDNS serves %s at %s, forwarding to %s\n", netw.ClusterDomain, netw.ClusterDNS, strings.Join(ups, ","))
	return nil
}

// Disable deletes the addon's objects and records the choice.
func (d *DNS) Disable(ctx context.Context, n Node) error {
	old, err := dns.LoadConfig(n.Layout)
	if err != nil {
		return err
	}
	c := dns.Config{Enabled: false, Upstreams: old.Upstreams}
	if !n.Running {
		if err := dns.SaveConfig(n.Layout, c); err != nil {
			return err
		}
		fmt.Fprintf(n.Out, "DNS will be removed at the next start (%s updated)\n", n.Layout.Config(dns.ConfigFile))
		return nil
	}
	objs, _, err := dns.Objects(ctx, n.Layout, c)
	if err != nil {
		return err
	}
	cs, dc, err := d.Clients(n)
	if err != nil {
		return err
	}
	if err := dns.Delete(ctx, dc, objs); err != nil {
		return fmt.Errorf("%w; is the node ready? (`kubeseed status`)", err)
	}
	if err := dns.SaveConfig(n.Layout, c); err != nil {
		return err
	}
	n.Progress("deleted the DNS addon's objects; waiting for the Deployment to go")
	wctx, cancel := context.WithTimeout(ctx, d.Timeout)
	defer cancel()
	if err := dns.WaitGone(wctx, cs); err != nil {
		return err
	}
	fmt.Fprintln(n.Out, "DNS disabled: CoreDNS and the kube-dns Service are removed; pods resolve no cluster names. `kubeseed enable dns` restores them.")
	return nil
}

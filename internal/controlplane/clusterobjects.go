package controlplane

import (
	"context"
	"fmt"
	"time"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"

	"github.com/kubeseed/kubeseed/internal/addons/dns"
	"github.com/kubeseed/kubeseed/internal/authz"
	"github.com/kubeseed/kubeseed/internal/datadir"
)

// ClusterObjects applies the cluster-level objects kubeseed needs (RBAC
// bindings for its own identities, the DNS addon unless disabled) once kube-apiserver serves. It is
// idempotent, so it runs at every start.
type ClusterObjects struct {
	layout  datadir.Layout
	client  kubernetes.Interface
	dynamic dynamic.Interface
	exited  chan error
}

// NewClusterObjects returns the component.
func NewClusterObjects(l datadir.Layout) *ClusterObjects {
	return &ClusterObjects{layout: l, exited: make(chan error, 1)}
}

func (c *ClusterObjects) Name() string         { return "cluster-objects" }
func (c *ClusterObjects) Exited() <-chan error { return c.exited }

// Init builds an admin client from credentials/client.config.
func (c *ClusterObjects) Init(ctx context.Context) error {
	cs, err := AdminClient(c.layout)
	if err != nil {
		return err
	}
	c.client = cs
	cfg, err := clientcmd.BuildConfigFromFlags("", c.layout.AdminKubeconfig())
	if err != nil {
		return fmt.Errorf("load %s: %w", c.layout.AdminKubeconfig(), err)
	}
	cfg.UserAgent = "kubeseed"
	if c.dynamic, err = dynamic.NewForConfig(cfg); err != nil {
		return fmt.Errorf("%s: %w", c.layout.AdminKubeconfig(), err)
	}
	return nil
}

// Start does nothing: the work is in Ready, which the supervisor waits for.
func (c *ClusterObjects) Start(ctx context.Context) error { return nil }

// Ready applies the objects, retrying until ctx ends. A bad config/dns
// fails at once: retrying cannot fix it.
func (c *ClusterObjects) Ready(ctx context.Context) error {
	if _, err := dns.LoadConfig(c.layout); err != nil {
		return fmt.Errorf("%w; fix or delete that file (deleting it enables DNS with the host's resolvers)", err)
	}
	for {
		err := authz.EnsureClusterObjects(ctx, c.client)
		if err == nil {
			err = dns.Reconcile(ctx, c.layout, c.dynamic)
		}
		if err == nil {
			return nil
		}
		klog.FromContext(ctx).V(1).Info("Retrying cluster objects", "err", err)
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %v)", ctx.Err(), err)
		case <-time.After(time.Second):
		}
	}
}

// Stop is a no-op.
func (c *ClusterObjects) Stop(ctx context.Context) error { return nil }

// AdminClient is a clientset authenticated as the cluster admin.
func AdminClient(l datadir.Layout) (kubernetes.Interface, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", l.AdminKubeconfig())
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", l.AdminKubeconfig(), err)
	}
	cfg.UserAgent = "kubeseed"
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", l.AdminKubeconfig(), err)
	}
	return cs, nil
}

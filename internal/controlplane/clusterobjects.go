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
	"github.com/kubeseed/kubeseed/internal/health"
	"github.com/kubeseed/kubeseed/internal/supervisor"
)

// ClusterObjects applies the cluster-level objects kubeseed needs (RBAC
// bindings for its own identities, the DNS addon unless disabled) once
// kube-apiserver serves. It is idempotent, so it runs at every start.
type ClusterObjects struct {
	layout  datadir.Layout
	client  kubernetes.Interface
	dynamic dynamic.Interface
	run     *supervisor.Runner
	applied chan error // the outcome, once
}

// NewClusterObjects returns the component.
func NewClusterObjects(l datadir.Layout) *ClusterObjects {
	return &ClusterObjects{layout: l, run: supervisor.NewRunner("cluster-objects", 0), applied: make(chan error, 1)}
}

func (c *ClusterObjects) Name() string { return "cluster-objects" }

// Init builds an admin client from credentials/client.config and checks
// config/dns: retrying cannot fix a bad one.
func (c *ClusterObjects) Init(ctx context.Context) error {
	if _, err := dns.LoadConfig(c.layout); err != nil {
		return fmt.Errorf("%w; fix or delete that file (deleting it enables DNS with the host's resolvers)", err)
	}
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

// Start applies the objects in the background, retrying until they are
// applied or Stop. The job's end is not an exit: Ready reports it.
func (c *ClusterObjects) Start(ctx context.Context) error {
	c.run.Start(ctx, func(ctx context.Context) error {
		c.applied <- c.apply(ctx)
		return nil
	})
	return nil
}

func (c *ClusterObjects) apply(ctx context.Context) error {
	err := health.Poll(ctx, time.Second, func(ctx context.Context) error {
		err := authz.EnsureClusterObjects(ctx, c.client)
		if err == nil {
			err = dns.Reconcile(ctx, c.layout, c.dynamic)
		}
		if err != nil {
			klog.FromContext(ctx).V(1).Info("Retrying cluster objects", "err", err)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("apply the cluster objects: %w", err)
	}
	return nil
}

// Ready waits until the objects are applied.
func (c *ClusterObjects) Ready(ctx context.Context) error {
	select {
	case err := <-c.applied:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Stop ends the retries, if they still run.
func (c *ClusterObjects) Stop(ctx context.Context) error { return c.run.Stop(ctx) }

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

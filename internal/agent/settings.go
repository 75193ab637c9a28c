package agent

import (
	"context"
	"fmt"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"

	"github.com/kubeseed/kubeseed/internal/authz"
	"github.com/kubeseed/kubeseed/internal/cluster"
	"github.com/kubeseed/kubeseed/internal/datadir"
	"github.com/kubeseed/kubeseed/internal/defaults"
	"github.com/kubeseed/kubeseed/internal/fsutil"
)

// authorizationSync keeps the node's authorization config at the cluster's
// mode: `kubeseed enable rbac` on any control plane applies to all, and two
// control planes with different files never undo each other.
type authorizationSync struct {
	layout   datadir.Layout
	settings *cluster.Settings
	kube     kubernetes.Interface
}

const authzSetting = cluster.SettingAuthorizationMode

// run reconciles once at start (retrying while etcd is unreachable), then
// follows the cluster's setting.
func (s *authorizationSync) run(ctx context.Context) {
	log := klog.FromContext(ctx).WithName("authorization-sync")
	for ctx.Err() == nil {
		err := s.reconcile(ctx)
		if err == nil {
			break
		}
		log.Error(err, "Could not agree the authorization mode with the cluster; retrying")
		select {
		case <-ctx.Done():
		case <-time.After(2 * time.Second):
		}
	}
	s.settings.Watch(ctx, authzSetting, func(v string) error { return s.apply(ctx, authz.Mode(v)) },
		func(err error) { log.Error(err, "Following the cluster's authorization mode") })
}

func (s *authorizationSync) reconcile(ctx context.Context) error {
	local, err := AuthorizationMode(s.layout)
	if err != nil {
		// A chain the user wrote by hand is theirs to keep.
		klog.FromContext(ctx).Info("Not following the cluster's authorization mode", "reason", err)
		return nil
	}
	synced, err := cluster.ReadSynced(s.layout, authzSetting)
	if err != nil {
		return err
	}
	value, set, err := s.settings.Get(ctx, authzSetting)
	if err != nil {
		return err
	}
	want, publish := cluster.Reconcile(string(local), synced, value, set)
	if publish {
		if err := s.settings.Set(ctx, authzSetting, want); err != nil {
			return err
		}
		klog.FromContext(ctx).Info("Set the cluster's authorization mode from this node's config", "mode", want)
	}
	return s.apply(ctx, authz.Mode(want))
}

// apply rewrites the local config for mode, which kube-apiserver reloads.
func (s *authorizationSync) apply(ctx context.Context, mode authz.Mode) error {
	if mode != authz.AlwaysAllow && mode != authz.RBAC {
		return fmt.Errorf("the cluster's authorization mode %q is neither %s nor %s", mode, authz.AlwaysAllow, authz.RBAC)
	}
	local, err := AuthorizationMode(s.layout)
	if err != nil {
		return nil
	}
	if local != mode {
		if mode == authz.RBAC {
			if err := authz.EnsureClusterObjects(ctx, s.kube); err != nil {
				return err
			}
		}
		path := s.layout.Config(authz.ConfigFile)
		if err := fsutil.WriteFileAtomic(path, authz.Render(mode, true, defaults.Webhooks(s.layout)), 0o644); err != nil {
			return err
		}
		klog.FromContext(ctx).Info("Applied the cluster's authorization mode", "mode", mode, "file", path)
	}
	return cluster.WriteSynced(s.layout, authzSetting, string(mode))
}

// PublishAuthorizationMode sets the cluster's authorization mode after
// `kubeseed enable/disable rbac` switched this node: every other control
// plane follows.
func PublishAuthorizationMode(ctx context.Context, l datadir.Layout, mode authz.Mode) error {
	cli, _, err := etcdOf(l)
	if err != nil {
		return err
	}
	defer cli.Close()
	if err := cluster.NewSettings(cli).Set(ctx, authzSetting, string(mode)); err != nil {
		return err
	}
	return cluster.WriteSynced(l, authzSetting, string(mode))
}

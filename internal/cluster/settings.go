package cluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/kubeseed/kubeseed/internal/datadir"
	"github.com/kubeseed/kubeseed/internal/fsutil"
)

// settingsPrefix keys the settings every control plane applies, in etcd:
// one node's files must not decide them for the cluster.
const settingsPrefix = "/kubeseed/settings/"

// Setting names.
const (
	SettingAuthorizationMode = "authorization-mode"
)

// Settings is the etcd record of cluster-wide settings.
type Settings struct{ cli *clientv3.Client }

// NewSettings reads and writes the record through cli.
func NewSettings(cli *clientv3.Client) *Settings { return &Settings{cli: cli} }

// Get returns a setting and whether it is set.
func (s *Settings) Get(ctx context.Context, name string) (string, bool, error) {
	resp, err := s.cli.Get(ctx, settingsPrefix+name)
	if err != nil {
		return "", false, fmt.Errorf("read cluster setting %s from etcd: %w", name, err)
	}
	if len(resp.Kvs) == 0 {
		return "", false, nil
	}
	return string(resp.Kvs[0].Value), true, nil
}

// Set sets a setting for every control plane.
func (s *Settings) Set(ctx context.Context, name, value string) error {
	if _, err := s.cli.Put(ctx, settingsPrefix+name, value); err != nil {
		return fmt.Errorf("set cluster setting %s in etcd: %w", name, err)
	}
	return nil
}

// Watch calls apply with a setting's value now and after each change, until
// ctx ends. apply's errors are passed to report, and the watch goes on.
func (s *Settings) Watch(ctx context.Context, name string, apply func(string) error, report func(error)) {
	for ctx.Err() == nil {
		resp, err := s.cli.Get(ctx, settingsPrefix+name)
		if err != nil {
			report(err)
			sleep(ctx)
			continue
		}
		if len(resp.Kvs) > 0 {
			if err := apply(string(resp.Kvs[0].Value)); err != nil {
				report(err)
			}
		}
		for wr := range s.cli.Watch(clientv3.WithRequireLeader(ctx), settingsPrefix+name, clientv3.WithRev(resp.Header.Revision+1)) {
			if err := wr.Err(); err != nil {
				report(err)
				break
			}
			for _, ev := range wr.Events {
				if ev.Type == clientv3.EventTypePut {
					if err := apply(string(ev.Kv.Value)); err != nil {
						report(err)
					}
				}
			}
		}
		sleep(ctx)
	}
}

// SyncedPath records, per setting, the value this node last agreed with the
// cluster: a local file that differs from it was changed here since (while
// the node was stopped, say), and that change is the newest intent.
func SyncedPath(l datadir.Layout, name string) string {
	return filepath.Join(l.VarDir(), "synced-"+name)
}

// ReadSynced returns the recorded value, "" if none.
func ReadSynced(l datadir.Layout, name string) (string, error) {
	data, err := os.ReadFile(SyncedPath(l, name))
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	return strings.TrimSpace(string(data)), err
}

// WriteSynced records value as agreed.
func WriteSynced(l datadir.Layout, name, value string) error {
	return fsutil.WriteFileAtomic(SyncedPath(l, name), []byte(value+"\n"), 0o600)
}

// Reconcile decides a setting at start from the node's local value, the
// value it last agreed (synced, "" for none) and the cluster's: it returns
// the value both should hold and whether the cluster's must be written.
func Reconcile(local, synced, clusterValue string, clusterSet bool) (value string, publish bool) {
	switch {
	case !clusterSet:
		return local, true
	case synced != "" && local != synced:
		return local, local != clusterValue
	default:
		return clusterValue, false
	}
}

func sleep(ctx context.Context) {
	select {
	case <-ctx.Done():
	case <-time.After(time.Second):
	}
}

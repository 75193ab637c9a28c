package datastore

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v3client"
	"go.etcd.io/etcd/server/v3/storage/backend"
	"go.etcd.io/etcd/server/v3/storage/schema"
	"go.uber.org/zap"

	"github.com/kubeseed/kubeseed/internal/cluster"
	"github.com/kubeseed/kubeseed/internal/datadir"
)

// Recovery says what Recover did.
type Recovery struct {
	Member string
	// Removed are the members the cluster had besides this one.
	Removed []string
	// Revision is the datastore's revision kept: every write up to it.
	Revision int64
}

// Recover rebuilds a one-member etcd cluster from this member's data after
// the cluster lost its quorum, keeping the data (etcd's force-new-cluster,
// run once, with the node stopped). The other members' names are recorded
// as removed nodes, so their certificates are refused if they come back.
func Recover(ctx context.Context, l datadir.Layout, now time.Time) (*Recovery, error) {
	e := NewEtcd(l)
	if err := e.Init(ctx); err != nil {
		return nil, err
	}
	before, self, learner, err := membersOf(e.cfg)
	if err != nil {
		return nil, err
	}
	if learner {
		return nil, fmt.Errorf("etcd member %s is a learner: it may lack acknowledged writes; recover from a member that was a voter", self)
	}
	e.cfg.ForceNewCluster = true
	em, err := embed.StartEtcd(e.cfg)
	if err != nil {
		return nil, fmt.Errorf("start etcd to rebuild the cluster (data in %s): %w", e.cfg.Dir, err)
	}
	defer em.Close()
	select {
	case <-em.Server.ReadyNotify():
	case <-em.Server.StopNotify():
		return nil, fmt.Errorf("etcd stopped while rebuilding the cluster; see the log above")
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	rec := &Recovery{Member: self}
	for _, name := range before {
		if name != self {
			rec.Removed = append(rec.Removed, name)
		}
	}
	cli := v3client.New(em.Server)
	defer cli.Close()
	removed := cluster.NewRemovedNodes(cli)
	for _, name := range rec.Removed {
		if err := removed.Add(ctx, name, now); err != nil {
			return nil, err
		}
	}
	resp, err := cli.Get(ctx, "/", clientv3.WithCountOnly())
	if err != nil {
		return nil, fmt.Errorf("read the datastore's revision: %w", err)
	}
	rec.Revision = resp.Header.Revision
	return rec, nil
}

// membersOf reads the membership the member's backend holds, without
// starting it: a member without quorum would never become ready.
func membersOf(cfg *embed.Config) (names []string, self string, learner bool, err error) {
	path := filepath.Join(cfg.Dir, "member", "snap", "db")
	if _, err := os.Stat(path); err != nil {
		return nil, "", false, fmt.Errorf("this node's etcd data: %w", err)
	}
	be := backend.NewDefaultBackend(zap.NewNop(), path)
	defer be.Close()
	members, _ := schema.NewMembershipBackend(zap.NewNop(), be).MustReadMembersFromBackend()
	for _, m := range members {
		name := m.Name
		if name == "" {
			name = m.ID.String()
		}
		names = append(names, name)
		if m.Name == cfg.Name {
			self, learner = name, m.IsLearner
		}
	}
	if self == "" {
		return nil, "", false, fmt.Errorf("etcd's members %v do not include this node's %q (args/etcd --name)", names, cfg.Name)
	}
	sort.Strings(names)
	return names, self, learner, nil
}

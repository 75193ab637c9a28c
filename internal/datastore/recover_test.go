package datastore_test

import (
	"context"
	"net"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v3client"

	"github.com/kubeseed/kubeseed/internal/bootstrap"
	"github.com/kubeseed/kubeseed/internal/cluster"
	"github.com/kubeseed/kubeseed/internal/datadir"
	"github.com/kubeseed/kubeseed/internal/datastore"
)

// TestRecoverAfterQuorumLoss gives a one-member etcd a second voter that
// never answers, so it has no quorum, then recovers it: the data stays,
// the dead member goes and is recorded as a removed node.
func TestRecoverAfterQuorumLoss(t *testing.T) {
	l, err := datadir.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// A port offset of 20000 keeps the test's etcd off a running node's.
	opts := bootstrap.Options{PortOffset: 20000 + int(time.Now().UnixNano()%5000), NodeName: "cp-1", HostIPs: []net.IP{net.IPv4(127, 0, 0, 1)}}
	if _, err := bootstrap.Prepare(ctx, l, opts); err != nil {
		t.Fatal(err)
	}
	e := datastore.NewEtcd(l)
	if err := e.Init(ctx); err != nil {
		t.Fatal(err)
	}
	if err := e.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := e.Ready(ctx); err != nil {
		t.Fatal(err)
	}
	cli := v3client.New(e.Server())
	if _, err := cli.Put(ctx, "/acknowledged", "kept"); err != nil {
		t.Fatal(err)
	}
	// The dead voter: from now on nothing commits.
	if _, err := cli.MemberAdd(ctx, []string{"https://127.0.0.1:1"}); err != nil {
		t.Fatal(err)
	}
	cli.Close()
	if err := e.Stop(ctx); err != nil {
		t.Fatal(err)
	}

	rec, err := datastore.Recover(ctx, l, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if rec.Member != "cp-1" || len(rec.Removed) != 1 || rec.Revision == 0 {
		t.Fatalf("recovery %+v", rec)
	}

	e = datastore.NewEtcd(l)
	if err := e.Init(ctx); err != nil {
		t.Fatal(err)
	}
	if err := e.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = e.Stop(context.Background()) }()
	rctx, rcancel := context.WithTimeout(ctx, 30*time.Second)
	defer rcancel()
	if err := e.Ready(rctx); err != nil {
		t.Fatalf("recovered member not ready: %v", err)
	}
	cli = v3client.New(e.Server())
	defer cli.Close()
	got, err := cli.Get(ctx, "/acknowledged")
	if err != nil || len(got.Kvs) != 1 || string(got.Kvs[0].Value) != "kept" {
		t.Fatalf("the acknowledged write after recover: %v %v", got, err)
	}
	list, err := cli.MemberList(ctx)
	if err != nil || len(list.Members) != 1 {
		t.Fatalf("members after recover: %v %v", list, err)
	}
	if removed, err := cluster.NewRemovedNodes(cli).Has(ctx, rec.Removed[0]); err != nil || !removed {
		t.Errorf("the dropped member %s is not recorded as removed: %v", rec.Removed[0], err)
	}
	if _, err := cli.Put(ctx, "/after", "x", clientv3.WithPrevKV()); err != nil {
		t.Errorf("the recovered member takes writes: %v", err)
	}
}

// Package etcdtest runs a one-member etcd on loopback for unit tests.
package etcdtest

import (
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
)

func freeURL(t *testing.T) url.URL {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return url.URL{Scheme: "http", Host: ln.Addr().String()}
}

// Start runs a one-member etcd on loopback for the test. A free port
// can be taken between our probe and etcd's listen; then try new ports.
func Start(t *testing.T) string {
	t.Helper()
	var lastErr error
	for range 3 {
		cfg := embed.NewConfig()
		cfg.Name = "etcdtest"
		cfg.Dir = t.TempDir()
		// etcd logs errors on every clean shutdown; keep them out of the
		// test output unless the test fails.
		logFile := filepath.Join(t.TempDir(), "etcd.log")
		cfg.LogLevel = "warn"
		cfg.LogOutputs = []string{logFile}
		cfg.UnsafeNoFsync = true
		cu, pu := freeURL(t), freeURL(t)
		cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{cu}, []url.URL{cu}
		cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{pu}, []url.URL{pu}
		cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
		e, err := embed.StartEtcd(cfg)
		if err != nil {
			lastErr = err
			if strings.Contains(err.Error(), "address already in use") {
				continue
			}
			t.Fatalf("start etcd: %v", err)
		}
		t.Cleanup(func() {
			e.Close()
			if t.Failed() {
				b, _ := os.ReadFile(logFile)
				t.Logf("etcd log:\n%s", b)
			}
		})
		select {
		case <-e.Server.ReadyNotify():
			return cu.String()
		case err := <-e.Err():
			t.Fatalf("etcd: %v", err)
		case <-time.After(60 * time.Second):
			t.Fatal("etcd not ready after 60s")
		}
	}
	t.Fatalf("start etcd: %v", lastErr)
	return ""
}

// Client is a client of endpoint, closed when the test ends.
func Client(t *testing.T, endpoint string) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

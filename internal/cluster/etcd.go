package cluster

import (
	"crypto/tls"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/kubeseed/kubeseed/internal/health"
)

// DialEtcd is a client of the cluster's etcd with a client certificate of
// the etcd CA, for the records kubeseed keeps there (join tokens, removed
// nodes).
func DialEtcd(servers []string, caFile, certFile, keyFile string) (*clientv3.Client, error) {
	tlsCfg, err := health.ClientTLS(caFile, certFile, keyFile)
	if err != nil {
		return nil, err
	}
	tlsCfg.MinVersion = tls.VersionTLS12
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   servers,
		TLS:         tlsCfg,
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		return nil, fmt.Errorf("connect to etcd at %v: %w", servers, err)
	}
	return cli, nil
}

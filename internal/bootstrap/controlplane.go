package bootstrap

import (
	"context"
	"crypto/x509"
	"fmt"
	"net"
	"net/url"
	"strings"

	"k8s.io/klog/v2"

	"github.com/kubeseed/kubeseed/internal/args"
	"github.com/kubeseed/kubeseed/internal/authz"
	"github.com/kubeseed/kubeseed/internal/datadir"
	"github.com/kubeseed/kubeseed/internal/defaults"
	"github.com/kubeseed/kubeseed/internal/fsutil"
	"github.com/kubeseed/kubeseed/internal/pki"
)

// ControlPlaneFiles is what a joining control plane writes into its empty
// data dir before its first start: the keys every control plane shares,
// its place in etcd and the cluster's authorization mode. Its first start
// then issues its own leaf certificates with those keys, as a first node's
// does, and renders every other file.
type ControlPlaneFiles struct {
	NodeName   string
	PortOffset int
	// PeerURL is the member's advertised etcd-ha URL, the one the cluster
	// added it under.
	PeerURL string
	// InitialCluster is etcd's --initial-cluster, the joiner included.
	InitialCluster string
	// Keys are PEM files by name ("ca.crt", "ca.key", …): one .key and,
	// but for bare keys, one .crt of each name in shared.
	Keys              map[string][]byte
	AuthorizationMode authz.Mode
}

// WriteControlPlane checks f and writes it. Every input is checked first,
// so on error nothing is written.
func WriteControlPlane(ctx context.Context, l datadir.Layout, f ControlPlaneFiles, shared []string, ca *x509.Certificate) error {
	pairs := map[string]*pki.KeyPair{}
	for _, name := range shared {
		spec, ok := pki.Lookup(name)
		if !ok {
			return fmt.Errorf("no %q in the certificate table", name)
		}
		kp, err := pki.ParseKeyPair(spec, f.Keys[name+".crt"], f.Keys[name+".key"])
		if err != nil {
			return fmt.Errorf("the cluster's %s: %w", name, err)
		}
		if !kp.KeyMatches() {
			return fmt.Errorf("the cluster's %s.crt is not for its %s.key", name, name)
		}
		pairs[name] = kp
	}
	if !pairs["ca"].Cert.Equal(ca) {
		return fmt.Errorf("the cluster's ca.crt is not the CA its agent serves with")
	}
	if f.AuthorizationMode != authz.AlwaysAllow && f.AuthorizationMode != authz.RBAC {
		return fmt.Errorf("authorization mode %q: want %s or %s", f.AuthorizationMode, authz.AlwaysAllow, authz.RBAC)
	}
	if !strings.Contains(f.InitialCluster, f.NodeName+"="+f.PeerURL) {
		return fmt.Errorf("etcd's initial cluster %q lacks this node (%s=%s)", f.InitialCluster, f.NodeName, f.PeerURL)
	}
	nodeIP, err := peerIP(f.PeerURL)
	if err != nil {
		return err
	}
	// The kubelet is told its address, as a worker's is: without it, it
	// looks its node name up in DNS at every status update, and a name that
	// does not resolve costs the resolver's timeout (10 s) each time.
	kubelet := defaults.KubeletArgs(l, f.NodeName)
	kubelet.Set("node-ip", nodeIP)
	etcd := defaults.EtcdArgs(l, f.NodeName, f.PortOffset)
	etcd.Set("initial-advertise-peer-urls", f.PeerURL)
	etcd.Set("initial-cluster", f.InitialCluster)
	etcd.Set("initial-cluster-state", "existing")

	if err := l.Ensure(); err != nil {
		return err
	}
	store := pki.Store{Dir: l.CertsDir()}
	for _, name := range shared {
		spec, _ := pki.Lookup(name)
		if err := store.Save(spec, pairs[name]); err != nil {
			return err
		}
	}
	for _, a := range []*args.File{etcd, kubelet} {
		if err := fsutil.WriteFileAtomic(a.Path, a.Bytes(), 0o644); err != nil {
			return err
		}
	}
	if err := fsutil.WriteFileAtomic(l.Config(authz.ConfigFile), authz.Render(f.AuthorizationMode, false, defaults.Webhooks(l)), 0o644); err != nil {
		return err
	}
	klog.FromContext(ctx).Info("Wrote the joining control plane's shared keys and etcd membership", "dir", l.Root, "node", f.NodeName)
	return nil
}

// peerIP is the address in the member's etcd peer URL: the node's address
// in the cluster.
func peerIP(peerURL string) (string, error) {
	u, err := url.Parse(peerURL)
	if err != nil {
		return "", fmt.Errorf("etcd peer URL %q: %w", peerURL, err)
	}
	if net.ParseIP(u.Hostname()) == nil {
		return "", fmt.Errorf("etcd peer URL %q does not name an IP address", peerURL)
	}
	return u.Hostname(), nil
}

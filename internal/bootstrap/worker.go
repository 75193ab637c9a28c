package bootstrap

import (
	"context"
	"crypto"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"

	"k8s.io/klog/v2"

	"github.com/kubeseed/kubeseed/internal/args"
	"github.com/kubeseed/kubeseed/internal/credentials"
	"github.com/kubeseed/kubeseed/internal/datadir"
	"github.com/kubeseed/kubeseed/internal/defaults"
	"github.com/kubeseed/kubeseed/internal/fsutil"
	"github.com/kubeseed/kubeseed/internal/netconf"
	"github.com/kubeseed/kubeseed/internal/pki"
	"github.com/kubeseed/kubeseed/internal/services"
)

// WorkerCerts are the certificates a worker holds, by pki.Table name: the
// agent signs them for keys made on the worker. No CA key is among them.
var WorkerCerts = []string{"kubelet", "kubelet-serving", "proxy"}

// VerifyWorkerCerts checks the certificates the cluster agent signed for a
// worker, at join or renewal: each is there, for its key, and from ca with
// its table usages.
func VerifyWorkerCerts(ca *x509.Certificate, certs map[string]*x509.Certificate, keys map[string]crypto.Signer) error {
	for _, name := range WorkerCerts {
		spec, ok := pki.Lookup(name)
		c, key := certs[name], keys[name]
		if !ok || c == nil || key == nil {
			return fmt.Errorf("the worker certificate %q is missing", name)
		}
		if err := pki.Verify(spec, &pki.KeyPair{Cert: c, Key: key}, &pki.KeyPair{Cert: ca}); err != nil {
			return fmt.Errorf("the cluster agent's certificate %q: %w", name, err)
		}
	}
	return nil
}

// WorkerFiles is what a joining worker writes into its empty data dir.
type WorkerFiles struct {
	NodeName, NodeIP string
	PortOffset       int
	CA               *x509.Certificate
	Certs            map[string]*x509.Certificate
	Keys             map[string]crypto.Signer
	ClusterCIDR      string
	ClusterDNS       string
	ClusterDomain    string
}

// WriteWorker writes a worker's data dir. Every input is checked first, so
// on error nothing is written.
func WriteWorker(ctx context.Context, l datadir.Layout, w WorkerFiles) error {
	if err := VerifyWorkerCerts(w.CA, w.Certs, w.Keys); err != nil {
		return err
	}
	argFiles := defaults.WorkerArgs(l, w.NodeName, w.NodeIP, w.PortOffset, w.ClusterCIDR)
	configs := defaults.WorkerConfigFiles(l, w.PortOffset, podMTU(ctx, net.ParseIP(w.NodeIP)), w.ClusterDNS, w.ClusterDomain)

	if err := l.Ensure(); err != nil {
		return err
	}
	if err := fsutil.WriteFileAtomic(l.Cert("ca"), pki.EncodeCert(w.CA), 0o600); err != nil {
		return err
	}
	for _, name := range WorkerCerts {
		keyPEM, err := pki.EncodeKey(w.Keys[name])
		if err != nil {
			return err
		}
		if err := fsutil.WriteFileAtomic(l.Key(name), keyPEM, 0o600); err != nil {
			return err
		}
		if err := fsutil.WriteFileAtomic(l.Cert(name), pki.EncodeCert(w.Certs[name]), 0o600); err != nil {
			return err
		}
	}
	for _, f := range argFiles {
		if err := fsutil.WriteFileAtomic(f.Path, f.Bytes(), 0o644); err != nil {
			return err
		}
	}
	for path, data := range configs {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		if err := fsutil.WriteFileAtomic(path, data, 0o644); err != nil {
			return err
		}
	}
	if err := writeWorkerKubeconfigs(l); err != nil {
		return err
	}
	klog.FromContext(ctx).Info("Wrote the worker's data dir", "dir", l.Root, "node", w.NodeName)
	return nil
}

// writeWorkerKubeconfigs points the kubelet and kube-proxy at the local
// load balancer, with their certificates by path.
func writeWorkerKubeconfigs(l datadir.Layout) error {
	f, err := args.Load(l.Args(defaults.APIServerProxyComponent))
	if err != nil {
		return err
	}
	port, err := services.MustLookup("apiserver-proxy").PortIn(f)
	if err != nil {
		return err
	}
	for _, name := range []string{"kubelet", "proxy"} {
		spec, _ := pki.Lookup(name)
		kc := credentials.Kubeconfig{Server: "https://127.0.0.1:" + strconv.Itoa(port), User: name}
		if kc.CAFile, err = relTo(l.CredentialsDir(), l.Cert("ca")); err == nil {
			if kc.CertFile, err = relTo(l.CredentialsDir(), l.Cert(name)); err == nil {
				kc.KeyFile, err = relTo(l.CredentialsDir(), l.Key(name))
			}
		}
		if err != nil {
			return err
		}
		if err := kc.Write(l.Credential(spec.Kubeconfig)); err != nil {
			return fmt.Errorf("kubeconfig %s: %w", spec.Kubeconfig, err)
		}
	}
	return nil
}

// prepareWorker checks a worker's data dir at start. It makes no
// certificates, since those come from the cluster; a worker joined before
// the overlay gets its args/overlay and CNI template migration.
func prepareWorker(ctx context.Context, l datadir.Layout) (*Result, error) {
	files := map[string]*args.File{}
	for _, c := range []string{defaults.ContainerdComponent, defaults.APIServerProxyComponent, defaults.KubeletComponent, defaults.KubeProxyComponent} {
		f, err := args.Load(l.Args(c))
		if err != nil {
			return nil, err
		}
		files[c] = f
	}
	for _, name := range append([]string{"ca"}, WorkerCerts...) {
		if _, err := os.Stat(l.Cert(name)); err != nil {
			return nil, fmt.Errorf("this worker's certificate %s is missing (%w): run `kubeseed reset` and join again", l.Cert(name), err)
		}
	}
	res := &Result{Network: netconf.Default()}
	nodeIP, _ := files[defaults.KubeletComponent].Get("node-ip")
	tmplMig, err := planCNITemplateMigration(ctx, l, net.ParseIP(nodeIP))
	if err != nil {
		return nil, err
	}
	if err := tmplMig.apply(ctx, res); err != nil {
		return nil, err
	}
	if _, err := loadIfExists(l.Args(defaults.OverlayComponent)); err != nil {
		return nil, err
	}
	cidr, ok := files[defaults.KubeProxyComponent].Get("cluster-cidr")
	if !ok {
		cidr = defaults.ClusterCIDR
	}
	ov := defaults.OverlayArgs(l, cidr)
	if err := create(res, ov.Path, ov.Bytes(), 0o644); err != nil {
		return nil, err
	}
	return res, nil
}

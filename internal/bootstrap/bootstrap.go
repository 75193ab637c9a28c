// Package bootstrap prepares a data directory: on first start it creates
// certificates, credentials and args files; on later starts it validates
// what exists and creates only what is missing. It never overwrites.
package bootstrap

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"k8s.io/klog/v2"

	"github.com/kubeseed/kubeseed/internal/args"
	"github.com/kubeseed/kubeseed/internal/authwebhook"
	"github.com/kubeseed/kubeseed/internal/authz"
	"github.com/kubeseed/kubeseed/internal/cluster"
	"github.com/kubeseed/kubeseed/internal/credentials"
	"github.com/kubeseed/kubeseed/internal/datadir"
	"github.com/kubeseed/kubeseed/internal/defaults"
	"github.com/kubeseed/kubeseed/internal/fsutil"
	"github.com/kubeseed/kubeseed/internal/hostinfo"
	"github.com/kubeseed/kubeseed/internal/netconf"
	"github.com/kubeseed/kubeseed/internal/overlay"
	"github.com/kubeseed/kubeseed/internal/pki"
	"github.com/kubeseed/kubeseed/internal/services"
)

// Options are the inputs of a first start; later starts read everything
// from the data dir.
type Options struct {
	PortOffset int
	NodeName   string   // "" means the hostname
	HostIPs    []net.IP // nil means detect
	Now        func() time.Time
}

// Result says what Prepare found and made.
type Result struct {
	FirstStart bool
	Issued     []string
	Created    []string
	// Notices are one-line messages for the user: migrations done.
	Notices []string
	// Network is the cluster network the args files set.
	Network netconf.Network
}

// Prepare makes the data dir ready to start. All user-editable inputs are
// parsed before anything is written, so bad input changes nothing.
func Prepare(ctx context.Context, l datadir.Layout, o Options) (*Result, error) {
	log := klog.FromContext(ctx)
	if o.Now == nil {
		o.Now = time.Now
	}
	if interrupted, err := cluster.Interrupted(l); err != nil {
		return nil, err
	} else if interrupted {
		return nil, fmt.Errorf("%s holds a join that was interrupted: run the `kubeseed join` line again (it discards this one), or `kubeseed reset`", l.Root)
	}
	if st, err := cluster.Load(l); err != nil {
		return nil, err
	} else if st.Role == cluster.Worker {
		return prepareWorker(ctx, l)
	}
	res := &Result{}
	exists, err := fsutil.Exists(l.CertsDir())
	if err != nil {
		return nil, err
	}
	res.FirstStart = !exists
	nodeName := o.NodeName
	if nodeName == "" {
		if nodeName, err = hostinfo.NodeName(); err != nil {
			return nil, err
		}
	}
	hostIPs := o.HostIPs
	if hostIPs == nil {
		if hostIPs, err = hostinfo.HostIPs(); err != nil {
			return nil, err
		}
	}

	// 1. Validate what the user may have edited.
	netw, err := netconf.Read(l)
	if err != nil {
		return nil, err
	}
	if err := netconf.CheckRange(l, netw); err != nil {
		return nil, err
	}
	res.Network = netw
	tmpl, err := loadTemplate(l, netw)
	if err != nil {
		return nil, err
	}
	if err := validateTokens(l); err != nil {
		return nil, err
	}
	argFiles := defaults.Args(l, nodeName, o.PortOffset)
	for _, f := range argFiles {
		if _, err := loadIfExists(f.Path); err != nil {
			return nil, err
		}
	}
	if f, err := loadIfExists(l.Args(defaults.AuthWebhookComponent)); err != nil {
		return nil, err
	} else if f != nil {
		if _, err := authwebhook.ParseArgs(f, l.Vars()); err != nil {
			return nil, err
		}
	}
	passwords, err := planPasswordMigration(l)
	if err != nil {
		return nil, err
	}
	argsMig, err := planArgsMigration(ctx, l)
	if err != nil {
		return nil, err
	}
	kubeletMig, err := planKubeletMigration(l)
	if err != nil {
		return nil, err
	}
	flagMigs, err := planFlagMigrations(l)
	if err != nil {
		return nil, err
	}
	cniMig, err := planCNIMigration(l)
	if err != nil {
		return nil, err
	}
	tmplMig, err := planCNITemplateMigration(ctx, l, nil)
	if err != nil {
		return nil, err
	}

	// 2. Create what is missing.
	if err := l.Ensure(); err != nil {
		return nil, err
	}
	if tmpl == nil {
		if err := create(res, l.CSRTemplate(), pki.DefaultTemplate(), 0o600); err != nil {
			return nil, err
		}
		if tmpl, err = loadTemplate(l, netw); err != nil {
			return nil, err
		}
	}
	if err := argsMig.apply(ctx, l, res); err != nil {
		return nil, err
	}
	if err := kubeletMig.apply(ctx, res); err != nil {
		return nil, err
	}
	for _, m := range flagMigs {
		if err := m.apply(ctx, l, res); err != nil {
			return nil, err
		}
	}
	for _, f := range argFiles {
		if err := create(res, f.Path, f.Bytes(), 0o644); err != nil {
			return nil, err
		}
	}
	for path, data := range defaults.ConfigFiles(l, o.PortOffset, podMTU(ctx, nil)) {
		if path == l.Args(defaults.CNITemplateFile) && cniMig != nil && cniMig.static {
			continue
		}
		if err := create(res, path, data, 0o644); err != nil {
			return nil, err
		}
	}
	if err := cniMig.apply(ctx, l, res); err != nil {
		return nil, err
	}
	if err := tmplMig.apply(ctx, res); err != nil {
		return nil, err
	}
	if err := startAuthorizationChain(ctx, l); err != nil {
		return nil, err
	}
	if _, err := os.Stat(l.TokenFile()); os.IsNotExist(err) {
		res.Created = append(res.Created, l.TokenFile())
	}
	if _, err := credentials.EnsureTokenFile(l.TokenFile()); err != nil {
		return nil, err
	}
	if err := passwords.apply(ctx, l, res); err != nil {
		return nil, err
	}
	store := pki.Store{Dir: l.CertsDir()}
	in := pki.Inputs{NodeName: nodeName, HostIPs: hostIPs, Template: tmpl}
	pairs, issued, err := store.Ensure(pki.Table, in, o.Now())
	if err != nil {
		return nil, err
	}
	res.Issued = issued
	if err := ensureKubeconfigs(res, l, pairs); err != nil {
		return nil, err
	}
	if err := writeWebhookKubeconfigs(l); err != nil {
		return nil, err
	}
	if rec, err := netconf.RecordedRange(l); err != nil {
		return nil, err
	} else if rec == "" {
		if err := fsutil.WriteFileAtomic(l.ServiceRangeRecord(), []byte(netw.ServiceCIDR.String()+"\n"), 0o644); err != nil {
			return nil, err
		}
	}
	if res.FirstStart {
		log.Info("Bootstrapped data dir", "dir", l.Root, "certificates", len(issued), "node", nodeName)
	}
	return res, nil
}

// fallbackPodMTU is the pod MTU when the host's cannot be read: VXLAN over
// the common 1500.
const fallbackPodMTU = 1450

// podMTU is what pods may send so the overlay can carry it: the MTU of the
// interface holding ip (the default route's, if nil) less VXLAN's overhead.
func podMTU(ctx context.Context, ip net.IP) int {
	var err error
	if ip == nil {
		ip, err = hostinfo.DefaultIP()
	}
	mtu := 0
	if err == nil {
		mtu, err = hostinfo.MTUOf(ip)
	}
	if err != nil || overlay.MTU(mtu) < 576 {
		klog.FromContext(ctx).Info("Using the default pod MTU", "mtu", fallbackPodMTU, "reason", err, "hostMTU", mtu)
		return fallbackPodMTU
	}
	return overlay.MTU(mtu)
}

func loadTemplate(l datadir.Layout, n netconf.Network) (*pki.Template, error) {
	data, err := os.ReadFile(l.CSRTemplate())
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return pki.ParseTemplate(l.CSRTemplate(), data, TemplateVars(n))
}

// TemplateVars are the ${NAME} references csr.conf.template may use; the
// kubernetes Service IP comes from the args files' service range.
func TemplateVars(n netconf.Network) map[string]string {
	return map[string]string{"SERVICE_IP": n.ServiceIP.String()}
}

func validateTokens(l datadir.Layout) error {
	data, err := os.ReadFile(l.TokenFile())
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	_, err = credentials.ParseTokens(l.TokenFile(), data)
	return err
}

func loadIfExists(path string) (*args.File, error) {
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return args.Parse(path, data)
}

// startAuthorizationChain replaces a "live" authorization chain, written
// by `kubeseed enable/disable rbac` while kube-apiserver ran, with the
// plain chain of the same mode: the apiserver is not running yet, so the
// entries kept only to satisfy its reload rule can go.
func startAuthorizationChain(ctx context.Context, l datadir.Layout) error {
	path := l.Config(authz.ConfigFile)
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	start, ok := authz.StartForm(data, defaults.Webhooks(l))
	if !ok {
		return nil
	}
	klog.FromContext(ctx).V(1).Info("Rewrote the authorization config with the start chain of its mode", "file", path)
	return fsutil.WriteFileAtomic(path, start, 0o644)
}

// writeWebhookKubeconfigs derives kube-apiserver's kubeconfigs for the
// auth webhook from args/auth-webhook, so they follow the port in that file.
// They hold file paths only, relative to config/ (clientcmd resolves them
// from the kubeconfig's directory), so a moved data dir keeps working.
func writeWebhookKubeconfigs(l datadir.Layout) error {
	f, err := args.Load(l.Args(defaults.AuthWebhookComponent))
	if err != nil {
		return err
	}
	o, err := authwebhook.ParseArgs(f, l.Vars())
	if err != nil {
		return err
	}
	rel := func(path string) string {
		r, err := filepath.Rel(l.ConfigDir(), path)
		if err != nil {
			return path
		}
		return r
	}
	for name, url := range map[string]string{
		defaults.TokenWebhookKubeconfig:        o.URL(),
		defaults.DenyWebhookKubeconfig:         o.DenyURL(),
		defaults.RemovedNodesWebhookKubeconfig: o.RemovedNodesURL(),
	} {
		data, err := authwebhook.ClientKubeconfig(url, rel(l.Cert("ca")),
			rel(l.Cert("apiserver-auth-webhook-client")), rel(l.Key("apiserver-auth-webhook-client")))
		if err != nil {
			return err
		}
		path := l.Config(name)
		if old, err := os.ReadFile(path); err == nil && string(old) == string(data) {
			continue
		}
		if err := fsutil.WriteFileAtomic(path, data, 0o644); err != nil {
			return err
		}
	}
	return nil
}

func create(res *Result, path string, data []byte, mode os.FileMode) error {
	ok, err := fsutil.Exists(path)
	if err != nil || ok {
		return err
	}
	// MkdirAll leaves existing directories' modes alone (certs/ stays 0700).
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("create %s: %w", filepath.Dir(path), err)
	}
	if err := fsutil.WriteFileAtomic(path, data, mode); err != nil {
		return err
	}
	res.Created = append(res.Created, path)
	return nil
}

func ensureKubeconfigs(res *Result, l datadir.Layout, pairs map[string]*pki.KeyPair) error {
	apiFile, err := args.Load(l.Args(defaults.APIServerComponent))
	if err != nil {
		return err
	}
	port, err := services.MustLookup("kube-apiserver").PortIn(apiFile)
	if err != nil {
		return err
	}
	caPEM := pki.EncodeCert(pairs["ca"].Cert)
	for _, spec := range pki.Table {
		if spec.Kubeconfig == "" {
			continue
		}
		path := l.Credential(spec.Kubeconfig)
		ok, err := fsutil.Exists(path)
		if err != nil {
			return err
		}
		if ok {
			continue
		}
		kp := pairs[spec.Name]
		kc := credentials.Kubeconfig{
			Server: "https://127.0.0.1:" + strconv.Itoa(port),
			User:   kp.Cert.Subject.CommonName,
		}
		if spec.EmbedInKubeconfig {
			keyPEM, err := pki.EncodeKey(kp.Key)
			if err != nil {
				return err
			}
			kc.CAPEM, kc.CertPEM, kc.KeyPEM = caPEM, pki.EncodeCert(kp.Cert), keyPEM
		} else {
			// Relative to credentials/, so a copied data dir stays whole.
			kc.CAFile, err = relTo(l.CredentialsDir(), l.Cert(spec.CA))
			if err == nil {
				kc.CertFile, err = relTo(l.CredentialsDir(), l.Cert(spec.Name))
			}
			if err == nil {
				kc.KeyFile, err = relTo(l.CredentialsDir(), l.Key(spec.Name))
			}
			if err != nil {
				return err
			}
		}
		if err := kc.Write(path); err != nil {
			return fmt.Errorf("kubeconfig %s: %w", path, err)
		}
		res.Created = append(res.Created, path)
	}
	return nil
}

func relTo(base, target string) (string, error) {
	r, err := filepath.Rel(base, target)
	if err != nil {
		return "", fmt.Errorf("path of %s relative to %s: %w", target, base, err)
	}
	return r, nil
}

package controlplane

import (
	"context"
	"fmt"
	"strings"

	"k8s.io/klog/v2"

	"github.com/kubeseed/kubeseed/internal/args"
	"github.com/kubeseed/kubeseed/internal/authwebhook"
	"github.com/kubeseed/kubeseed/internal/cluster"
	"github.com/kubeseed/kubeseed/internal/datadir"
	"github.com/kubeseed/kubeseed/internal/defaults"
	"github.com/kubeseed/kubeseed/internal/health"
	"github.com/kubeseed/kubeseed/internal/supervisor"
)

// AuthWebhook serves kube-apiserver's token authentication webhook from
// credentials/known_tokens.csv. It starts before the apiserver.
type AuthWebhook struct {
	layout  datadir.Layout
	opts    *authwebhook.Options
	srv     *authwebhook.Server
	run     *supervisor.Runner
	etcd    etcdFlags
	removed *cluster.RemovedSet
}

// etcdFlags are kube-apiserver's etcd client settings: the webhook reads
// the removed nodes from the same etcd, as the same client.
type etcdFlags struct {
	servers                   []string
	caFile, certFile, keyFile string
}

// NewAuthWebhook returns the component; it reads args/auth-webhook at Init.
func NewAuthWebhook(l datadir.Layout) *AuthWebhook {
	return &AuthWebhook{layout: l, run: supervisor.NewRunner(defaults.AuthWebhookComponent, 0)}
}

func (w *AuthWebhook) Name() string         { return defaults.AuthWebhookComponent }
func (w *AuthWebhook) Exited() <-chan error { return w.run.Exited() }

// Init parses the args file, loads the certificates and the token file.
func (w *AuthWebhook) Init(ctx context.Context) error {
	f, err := args.Load(w.layout.Args(defaults.AuthWebhookComponent))
	if err != nil {
		return err
	}
	o, err := authwebhook.ParseArgs(f, w.layout.Vars())
	if err != nil {
		return err
	}
	store := authwebhook.NewStore(o.TokenAuthFile)
	if _, err := store.Reload(); err != nil {
		return err
	}
	if w.etcd, err = apiserverEtcd(w.layout); err != nil {
		return err
	}
	w.removed = cluster.NewRemovedSet()
	cfg := o.Config()
	cfg.Removed = w.removed.Contains
	srv, err := authwebhook.New(cfg, store)
	if err != nil {
		return fmt.Errorf("%s: %w", f.Path, err)
	}
	klog.FromContext(ctx).V(1).Info("Loaded the token file", "file", o.TokenAuthFile, "tokens", store.Len())
	w.opts, w.srv = o, srv
	return nil
}

// Start binds the port and serves until Stop.
func (w *AuthWebhook) Start(ctx context.Context) error {
	if err := w.srv.Listen(); err != nil {
		return err
	}
	cli, err := cluster.DialEtcd(w.etcd.servers, w.etcd.caFile, w.etcd.certFile, w.etcd.keyFile)
	if err != nil {
		return fmt.Errorf("%s: %w", w.layout.Args(defaults.APIServerComponent), err)
	}
	w.run.Start(ctx, func(ctx context.Context) error {
		defer cli.Close()
		go cluster.NewRemovedNodes(cli).Follow(ctx, w.removed)
		return w.srv.Serve(ctx)
	})
	return nil
}

// apiserverEtcd reads kube-apiserver's etcd flags from its args file.
func apiserverEtcd(l datadir.Layout) (etcdFlags, error) {
	f, err := args.Load(l.Args(defaults.APIServerComponent))
	if err != nil {
		return etcdFlags{}, err
	}
	get := func(name string) (string, error) {
		v, ok := f.Get(name)
		if !ok || v == "" {
			return "", fmt.Errorf("%s: --%s is not set", f.Path, name)
		}
		v, err := args.Expand(v, l.Vars())
		if err != nil {
			return "", fmt.Errorf("%s: --%s: %w", f.Path, name, err)
		}
		return v, nil
	}
	var e etcdFlags
	servers, err := get("etcd-servers")
	if err != nil {
		return e, err
	}
	e.servers = strings.Split(servers, ",")
	for name, dst := range map[string]*string{"etcd-cafile": &e.caFile, "etcd-certfile": &e.certFile, "etcd-keyfile": &e.keyFile} {
		if *dst, err = get(name); err != nil {
			return e, err
		}
	}
	return e, nil
}

// Ready waits for /healthz, presenting kube-apiserver's client certificate.
func (w *AuthWebhook) Ready(ctx context.Context) error {
	tlsCfg, err := health.ClientTLS(w.layout.Cert("ca"), w.layout.Cert("apiserver-auth-webhook-client"), w.layout.Key("apiserver-auth-webhook-client"))
	if err != nil {
		return err
	}
	if err := health.Wait(ctx, w.opts.BaseURL()+authwebhook.HealthPath, tlsCfg); err != nil {
		return err
	}
	// Until the record is read, a removed node would pass.
	select {
	case <-w.removed.Synced():
		return nil
	case <-ctx.Done():
		return fmt.Errorf("auth webhook: the removed nodes were not read from etcd: %w", ctx.Err())
	}
}

// Stop ends serving once requests in flight are answered; kube-apiserver
// has stopped before this runs.
func (w *AuthWebhook) Stop(ctx context.Context) error { return w.run.Stop(ctx) }

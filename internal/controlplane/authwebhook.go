package controlplane

import (
	"context"
	"fmt"

	"k8s.io/klog/v2"

	"github.com/kubeseed/kubeseed/internal/args"
	"github.com/kubeseed/kubeseed/internal/authwebhook"
	"github.com/kubeseed/kubeseed/internal/datadir"
	"github.com/kubeseed/kubeseed/internal/defaults"
	"github.com/kubeseed/kubeseed/internal/health"
	"github.com/kubeseed/kubeseed/internal/supervisor"
)

// AuthWebhook serves kube-apiserver's token authentication webhook from
// credentials/known_tokens.csv. It starts before the apiserver.
type AuthWebhook struct {
	layout datadir.Layout
	opts   *authwebhook.Options
	srv    *authwebhook.Server
	run    *supervisor.Runner
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
	srv, err := authwebhook.New(o.Config(), store)
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
	w.run.Start(ctx, w.srv.Serve)
	return nil
}

// Ready waits for /healthz, presenting kube-apiserver's client certificate.
func (w *AuthWebhook) Ready(ctx context.Context) error {
	tlsCfg, err := health.ClientTLS(w.layout.Cert("ca"), w.layout.Cert("apiserver-auth-webhook-client"), w.layout.Key("apiserver-auth-webhook-client"))
	if err != nil {
		return err
	}
	return health.Wait(ctx, w.opts.BaseURL()+authwebhook.HealthPath, tlsCfg)
}

// Stop ends serving once requests in flight are answered; kube-apiserver
// has stopped before this runs.
func (w *AuthWebhook) Stop(ctx context.Context) error { return w.run.Stop(ctx) }

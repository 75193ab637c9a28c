package controlplane

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"k8s.io/klog/v2"

	"github.com/kubeseed/kubeseed/internal/args"
	"github.com/kubeseed/kubeseed/internal/datadir"
	"github.com/kubeseed/kubeseed/internal/defaults"
	"github.com/kubeseed/kubeseed/internal/health"
	"github.com/kubeseed/kubeseed/internal/tokenwebhook"
)

// TokenWebhook serves kube-apiserver's token authentication webhook from
// credentials/known_tokens.csv. It starts before the apiserver.
type TokenWebhook struct {
	layout datadir.Layout
	opts   *tokenwebhook.Options
	srv    *tokenwebhook.Server
	cancel context.CancelFunc
	exited chan error
}

// NewTokenWebhook returns the component; it reads args/token-webhook at Init.
func NewTokenWebhook(l datadir.Layout) *TokenWebhook {
	return &TokenWebhook{layout: l, exited: make(chan error, 1)}
}

func (w *TokenWebhook) Name() string         { return defaults.TokenWebhookComponent }
func (w *TokenWebhook) Exited() <-chan error { return w.exited }

// Init parses the args file, loads the certificates and the token file.
func (w *TokenWebhook) Init(ctx context.Context) error {
	f, err := args.Load(w.layout.Args(defaults.TokenWebhookComponent))
	if err != nil {
		return err
	}
	o, err := tokenwebhook.ParseArgs(f, w.layout.Vars())
	if err != nil {
		return err
	}
	store := tokenwebhook.NewStore(o.TokenAuthFile)
	if _, err := store.Reload(); err != nil {
		return err
	}
	srv, err := tokenwebhook.New(o.Config(), store)
	if err != nil {
		return fmt.Errorf("%s: %w", f.Path, err)
	}
	klog.FromContext(ctx).V(1).Info("Loaded the token file", "file", o.TokenAuthFile, "tokens", store.Len())
	w.opts, w.srv = o, srv
	return nil
}

// Start binds the port and serves until Stop.
func (w *TokenWebhook) Start(ctx context.Context) error {
	if err := w.srv.Listen(); err != nil {
		return err
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	w.cancel = cancel
	go func() {
		err := w.srv.Serve(runCtx)
		if runCtx.Err() == nil {
			if err == nil {
				err = errors.New("returned unexpectedly")
			}
			w.exited <- err
		}
	}()
	return nil
}

// Ready waits for /healthz, presenting kube-apiserver's client certificate.
func (w *TokenWebhook) Ready(ctx context.Context) error {
	tlsCfg, err := health.ClientTLS(w.layout.Cert("ca"), w.layout.Cert("apiserver-token-webhook-client"), w.layout.Key("apiserver-token-webhook-client"))
	if err != nil {
		return err
	}
	url := strings.TrimSuffix(w.opts.URL(), tokenwebhook.AuthenticatePath) + tokenwebhook.HealthPath
	return health.Wait(ctx, url, tlsCfg)
}

// Stop ends serving; kube-apiserver has stopped before this runs.
func (w *TokenWebhook) Stop(ctx context.Context) error {
	if w.cancel == nil {
		return nil
	}
	w.cancel()
	return w.srv.Shutdown(ctx)
}

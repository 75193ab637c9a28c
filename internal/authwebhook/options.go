package authwebhook

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"

	"github.com/spf13/pflag"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/kubeseed/kubeseed/internal/args"
	"github.com/kubeseed/kubeseed/internal/pki"
)

// Options are the flags of args/auth-webhook.
type Options struct {
	SecurePort     int
	BindAddress    string
	TLSCertFile    string
	TLSKeyFile     string
	ClientCAFile   string
	TokenAuthFile  string
	AllowedClients []string
	ReloadInterval time.Duration
}

// NewOptions returns the defaults.
func NewOptions() *Options {
	return &Options{
		BindAddress:    "127.0.0.1",
		AllowedClients: []string{pki.AuthWebhookClientCN},
		ReloadInterval: time.Second,
	}
}

// AddFlags registers the flags args/auth-webhook may set.
func (o *Options) AddFlags(fs *pflag.FlagSet) {
	fs.IntVar(&o.SecurePort, "secure-port", o.SecurePort, "HTTPS port")
	fs.StringVar(&o.BindAddress, "bind-address", o.BindAddress, "loopback address to listen on")
	fs.StringVar(&o.TLSCertFile, "tls-cert-file", o.TLSCertFile, "serving certificate")
	fs.StringVar(&o.TLSKeyFile, "tls-private-key-file", o.TLSKeyFile, "serving key")
	fs.StringVar(&o.ClientCAFile, "client-ca-file", o.ClientCAFile, "CA that signs the clients' certificates")
	fs.StringVar(&o.TokenAuthFile, "token-auth-file", o.TokenAuthFile, "static token file (token,user,uid[,groups])")
	fs.StringSliceVar(&o.AllowedClients, "allowed-client-names", o.AllowedClients, "client certificate common names that may send TokenReviews")
	fs.DurationVar(&o.ReloadInterval, "reload-interval", o.ReloadInterval, "how often the token file is checked for changes")
}

// Validate checks the options; errors name the flag.
func (o *Options) Validate() error {
	var errs []error
	if o.SecurePort <= 0 || o.SecurePort > 65535 {
		errs = append(errs, fmt.Errorf("--secure-port=%d: not a port", o.SecurePort))
	}
	if ip := net.ParseIP(o.BindAddress); ip == nil || !ip.IsLoopback() {
		errs = append(errs, fmt.Errorf("--bind-address=%s: must be a loopback IP; the webhook serves kube-apiserver on this host only", o.BindAddress))
	}
	for flag, v := range map[string]string{"tls-cert-file": o.TLSCertFile, "tls-private-key-file": o.TLSKeyFile,
		"client-ca-file": o.ClientCAFile, "token-auth-file": o.TokenAuthFile} {
		if v == "" {
			errs = append(errs, fmt.Errorf("--%s is required", flag))
		}
	}
	if len(o.AllowedClients) == 0 {
		errs = append(errs, errors.New("--allowed-client-names is empty: nobody could use the webhook"))
	}
	if o.ReloadInterval < 100*time.Millisecond || o.ReloadInterval > time.Minute {
		errs = append(errs, fmt.Errorf("--reload-interval=%s: must be between 100ms and 1m", o.ReloadInterval))
	}
	return errors.Join(errs...)
}

// Config turns valid options into a server config.
func (o *Options) Config() Config {
	return Config{
		Addr:           net.JoinHostPort(o.BindAddress, strconv.Itoa(o.SecurePort)),
		CertFile:       o.TLSCertFile,
		KeyFile:        o.TLSKeyFile,
		ClientCAFile:   o.ClientCAFile,
		AllowedClients: o.AllowedClients,
		ReloadInterval: o.ReloadInterval,
	}
}

// BaseURL is the webhook's https://host:port.
func (o *Options) BaseURL() string {
	return "https://" + net.JoinHostPort(o.BindAddress, strconv.Itoa(o.SecurePort))
}

// URL is where kube-apiserver sends TokenReviews.
func (o *Options) URL() string { return o.BaseURL() + AuthenticatePath }

// DenyURL is where kube-apiserver sends SubjectAccessReviews for the deny
// authorizer.
func (o *Options) DenyURL() string { return o.BaseURL() + DenyPath }

// RemovedNodesURL is where kube-apiserver asks whether a node was removed.
func (o *Options) RemovedNodesURL() string { return o.BaseURL() + RemovedNodesPath }

// ClientKubeconfig is a kubeconfig for kube-apiserver to reach the webhook
// at url: its CA, and the client certificate to present. Files are
// referenced by path, so no secret is copied into it.
func ClientKubeconfig(url, caFile, certFile, keyFile string) ([]byte, error) {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["auth-webhook"] = &clientcmdapi.Cluster{Server: url, CertificateAuthority: caFile}
	cfg.AuthInfos["kube-apiserver"] = &clientcmdapi.AuthInfo{ClientCertificate: certFile, ClientKey: keyFile}
	cfg.Contexts["auth-webhook"] = &clientcmdapi.Context{Cluster: "auth-webhook", AuthInfo: "kube-apiserver"}
	cfg.CurrentContext = "auth-webhook"
	return clientcmd.Write(*cfg)
}

// ParseArgs reads args/auth-webhook into options, the way the upstream
// components' args files are read: an unknown flag or a bad value is
// reported with the file and line.
func ParseArgs(f *args.File, vars map[string]string) (*Options, error) {
	o := NewOptions()
	fs := pflag.NewFlagSet("auth-webhook", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	o.AddFlags(fs)
	err := f.Apply(vars, func(name, value string, hasValue bool) error {
		if fs.Lookup(name) == nil {
			return errors.New("unknown flag for auth-webhook")
		}
		if !hasValue {
			return errors.New("needs a value")
		}
		return fs.Set(name, value)
	})
	if err != nil {
		return nil, err
	}
	if err := o.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", f.Path, err)
	}
	return o, nil
}

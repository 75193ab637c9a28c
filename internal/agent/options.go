package agent

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/kubeseed/kubeseed/internal/args"
	"github.com/kubeseed/kubeseed/internal/defaults"
)

// Component is the agent's args file and component name.
const Component = defaults.ClusterAgentComponent

// MinWorkerCertLifetime is the shortest --worker-cert-lifetime, for tests
// that watch renewals. A certificate's validity starts 5 minutes back (for
// clock skew) and a worker renews it with a third of that validity left,
// so a shorter one would be due the moment it is signed.
const MinWorkerCertLifetime = 3 * time.Minute

// Options are the flags of args/cluster-agent.
type Options struct {
	SecurePort         int
	BindAddress        string
	TLSCertFile        string
	TLSKeyFile         string
	CACertFile         string
	CAKeyFile          string
	Kubeconfig         string
	EtcdServers        []string
	EtcdCAFile         string
	EtcdCertFile       string
	EtcdKeyFile        string
	WorkerCertLifetime time.Duration
	MaxFailures        int
}

// NewOptions returns the defaults.
func NewOptions() *Options {
	return &Options{BindAddress: "0.0.0.0", WorkerCertLifetime: DefaultWorkerCertLifetime, MaxFailures: 5}
}

// AddFlags registers the flags args/cluster-agent may set.
func (o *Options) AddFlags(fs *pflag.FlagSet) {
	fs.IntVar(&o.SecurePort, "secure-port", o.SecurePort, "HTTPS port")
	fs.StringVar(&o.BindAddress, "bind-address", o.BindAddress, "address to listen on")
	fs.StringVar(&o.TLSCertFile, "tls-cert-file", o.TLSCertFile, "serving certificate, from the cluster CA")
	fs.StringVar(&o.TLSKeyFile, "tls-private-key-file", o.TLSKeyFile, "serving key")
	fs.StringVar(&o.CACertFile, "ca-cert-file", o.CACertFile, "the cluster CA: verifies client certificates")
	fs.StringVar(&o.CAKeyFile, "ca-key-file", o.CAKeyFile, "the cluster CA's key: signs workers' certificates")
	fs.StringVar(&o.Kubeconfig, "kubeconfig", o.Kubeconfig, "kubeconfig for the local kube-apiserver")
	fs.StringSliceVar(&o.EtcdServers, "etcd-servers", o.EtcdServers, "etcd client URLs, where join tokens are kept")
	fs.StringVar(&o.EtcdCAFile, "etcd-cafile", o.EtcdCAFile, "etcd's CA")
	fs.StringVar(&o.EtcdCertFile, "etcd-certfile", o.EtcdCertFile, "client certificate for etcd")
	fs.StringVar(&o.EtcdKeyFile, "etcd-keyfile", o.EtcdKeyFile, "client key for etcd")
	fs.DurationVar(&o.WorkerCertLifetime, "worker-cert-lifetime", o.WorkerCertLifetime, "lifetime of the certificates signed for workers, at join and at each renewal")
	fs.IntVar(&o.MaxFailures, "max-failures-per-minute", o.MaxFailures, "failed join attempts, and apart from them failed certificate renewals, a source address may make per minute")
}

// Validate checks the options; errors name the flag.
func (o *Options) Validate() error {
	var errs []error
	if o.SecurePort <= 0 || o.SecurePort > 65535 {
		errs = append(errs, fmt.Errorf("--secure-port=%d: not a port", o.SecurePort))
	}
	if net.ParseIP(o.BindAddress) == nil {
		errs = append(errs, fmt.Errorf("--bind-address=%s: not an IP address", o.BindAddress))
	}
	for flag, v := range map[string]string{"tls-cert-file": o.TLSCertFile, "tls-private-key-file": o.TLSKeyFile,
		"ca-cert-file": o.CACertFile, "ca-key-file": o.CAKeyFile, "kubeconfig": o.Kubeconfig,
		"etcd-cafile": o.EtcdCAFile, "etcd-certfile": o.EtcdCertFile, "etcd-keyfile": o.EtcdKeyFile} {
		if v == "" {
			errs = append(errs, fmt.Errorf("--%s is required", flag))
		}
	}
	if len(o.EtcdServers) == 0 {
		errs = append(errs, errors.New("--etcd-servers is required"))
	}
	for _, s := range o.EtcdServers {
		u, err := url.Parse(s)
		if err != nil || !(u.Scheme == "https" && u.Host != "" || u.Scheme == "unixs" && u.Path != "") {
			errs = append(errs, fmt.Errorf("--etcd-servers: %q is neither an https:// URL nor a unixs:// socket", s))
		}
	}
	if o.WorkerCertLifetime < MinWorkerCertLifetime || o.WorkerCertLifetime > 365*24*time.Hour {
		errs = append(errs, fmt.Errorf("--worker-cert-lifetime=%s: must be between %s and 8760h (a year)", o.WorkerCertLifetime, MinWorkerCertLifetime))
	}
	if o.MaxFailures < 1 {
		errs = append(errs, fmt.Errorf("--max-failures-per-minute=%d: must be at least 1", o.MaxFailures))
	}
	return errors.Join(errs...)
}

// Addr is the listen address.
func (o *Options) Addr() string { return net.JoinHostPort(o.BindAddress, strconv.Itoa(o.SecurePort)) }

// LocalURL reaches this agent from this host.
func (o *Options) LocalURL() string {
	host := o.BindAddress
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "https://" + net.JoinHostPort(host, strconv.Itoa(o.SecurePort))
}

// ParseArgs reads args/cluster-agent; an unknown flag or a bad value is
// reported with the file and line.
func ParseArgs(f *args.File, vars map[string]string) (*Options, error) {
	o := NewOptions()
	fs := pflag.NewFlagSet(Component, pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	o.AddFlags(fs)
	err := f.Apply(vars, func(name, value string, hasValue bool) error {
		if fs.Lookup(name) == nil {
			return fmt.Errorf("unknown flag for %s (it takes %s)", Component, flagNames(fs))
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

func flagNames(fs *pflag.FlagSet) string {
	var names []string
	fs.VisitAll(func(f *pflag.Flag) { names = append(names, "--"+f.Name) })
	return strings.Join(names, ", ")
}

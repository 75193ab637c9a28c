// Package datastore runs the embedded etcd member.
package datastore

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/pkg/v3/flags"
	"go.etcd.io/etcd/server/v3/embed"
	"go.etcd.io/etcd/server/v3/etcdserver"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/klog/v2"

	"github.com/kubeseed/kubeseed/internal/args"
	"github.com/kubeseed/kubeseed/internal/datadir"
	"github.com/kubeseed/kubeseed/internal/defaults"
	"github.com/kubeseed/kubeseed/internal/fsutil"
)

// Etcd is the embedded etcd member.
type Etcd struct {
	layout datadir.Layout
	cfg    *embed.Config
	etcd   *embed.Etcd
	exited chan error
	// stopping is set once Stop runs: the member's stop is then ours.
	stopping atomic.Bool
}

// NewEtcd returns the component; it reads args/etcd at Init.
func NewEtcd(l datadir.Layout) *Etcd {
	return &Etcd{layout: l, exited: make(chan error, 1)}
}

func (e *Etcd) Name() string         { return "etcd" }
func (e *Etcd) Exited() <-chan error { return e.exited }

// ParseArgs turns args/etcd into an embed.Config using etcd's own flag
// definitions, so the file accepts exactly etcd's flags.
func ParseArgs(f *args.File, vars map[string]string) (*embed.Config, error) {
	cfg := embed.NewConfig()
	fs := flag.NewFlagSet("etcd", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	cfg.AddFlags(fs)
	clusterState := flags.NewSelectiveStringValue(embed.ClusterStateFlagNew, embed.ClusterStateFlagExisting)
	fs.Var(clusterState, "initial-cluster-state", "new or existing")
	err := f.Apply(vars, func(name, value string, hasValue bool) error {
		fl := fs.Lookup(name)
		if fl == nil {
			return errors.New("unknown flag for etcd")
		}
		if !hasValue {
			if bf, ok := fl.Value.(interface{ IsBoolFlag() bool }); !ok || !bf.IsBoolFlag() {
				return errors.New("needs a value")
			}
			value = "true"
		}
		return fs.Set(name, value)
	})
	if err != nil {
		return nil, err
	}
	// etcd keeps lists in flag values and copies them to the config after
	// parsing, as etcdmain does; every one it copies is copied here, or the
	// args file would be silently ignored (--cipher-suites was).
	cfg.ListenPeerUrls = flags.UniqueURLsFromFlag(fs, "listen-peer-urls")
	cfg.AdvertisePeerUrls = flags.UniqueURLsFromFlag(fs, "initial-advertise-peer-urls")
	cfg.ListenClientUrls = flags.UniqueURLsFromFlag(fs, "listen-client-urls")
	cfg.ListenClientHttpUrls = flags.UniqueURLsFromFlag(fs, "listen-client-http-urls")
	cfg.AdvertiseClientUrls = flags.UniqueURLsFromFlag(fs, "advertise-client-urls")
	cfg.ListenMetricsUrls = flags.UniqueURLsFromFlag(fs, "listen-metrics-urls")
	cfg.DiscoveryCfg.Endpoints = flags.UniqueStringsFromFlag(fs, "discovery-endpoints")
	cfg.CORS = flags.UniqueURLsMapFromFlag(fs, "cors")
	cfg.HostWhitelist = flags.UniqueStringsMapFromFlag(fs, "host-whitelist")
	cfg.ClientTLSInfo.AllowedHostnames = flags.StringsFromFlag(fs, "client-cert-allowed-hostname")
	cfg.PeerTLSInfo.AllowedCNs = flags.StringsFromFlag(fs, "peer-cert-allowed-cn")
	cfg.PeerTLSInfo.AllowedHostnames = flags.StringsFromFlag(fs, "peer-cert-allowed-hostname")
	cfg.CipherSuites = flags.StringsFromFlag(fs, "cipher-suites")
	cfg.MaxConcurrentStreams = flags.Uint32FromFlag(fs, "max-concurrent-streams")
	cfg.ClusterState = clusterState.String()
	fs.Visit(func(fl *flag.Flag) { cfg.FlagsExplicitlySet[fl.Name] = true })
	cfg.Logger = "zap"
	cfg.LogOutputs = []string{"stderr"}
	if cfg.FlagsExplicitlySet["log-outputs"] {
		cfg.LogOutputs = flags.UniqueStringsFromFlag(fs, "log-outputs")
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", f.Path, err)
	}
	return cfg, nil
}

// Init parses and validates args/etcd.
func (e *Etcd) Init(ctx context.Context) error {
	f, err := args.Load(e.layout.Args(defaults.EtcdComponent))
	if err != nil {
		return err
	}
	cfg, err := ParseArgs(f, e.layout.Vars())
	if err != nil {
		return err
	}
	// Only root may reach a socket in a directory only root may enter.
	for _, dir := range socketDirs(cfg) {
		if err := fsutil.EnsureDir(dir, 0o700); err != nil {
			return fmt.Errorf("etcd's socket directory: %w", err)
		}
	}
	e.cfg = cfg
	return nil
}

// socketDirs are the directories of cfg's unix client sockets.
func socketDirs(cfg *embed.Config) []string {
	var out []string
	for _, u := range cfg.ListenClientUrls {
		if u.Scheme == "unix" || u.Scheme == "unixs" {
			out = append(out, filepath.Dir(u.Host+u.Path))
		}
	}
	return out
}

// Start launches the member.
func (e *Etcd) Start(ctx context.Context) error {
	em, err := embed.StartEtcd(e.cfg)
	if err != nil {
		return fmt.Errorf("start etcd (data in %s): %w", e.cfg.Dir, err)
	}
	e.etcd = em
	go func() {
		select {
		case err, ok := <-em.Err():
			if ok && err != nil {
				e.report(err)
			}
		case <-em.Server.StopNotify():
			if !e.stopping.Load() {
				e.report(e.stoppedByItself())
			}
		}
	}()
	return nil
}

// Server is the running member, for in-process clients.
func (e *Etcd) Server() *etcdserver.EtcdServer { return e.etcd.Server }

// report hands the supervisor the member's failure, once.
func (e *Etcd) report(err error) {
	select {
	case e.exited <- err:
	default:
	}
}

// stoppedByItself explains a member that stopped without Stop: the cluster
// removed it (kubeseed remove-node, or it was replaced), or it failed.
func (e *Etcd) stoppedByItself() error {
	srv := e.etcd.Server
	if srv.Cluster().Member(srv.MemberID()) == nil {
		return fmt.Errorf("this node's etcd member %s was removed from its cluster (kubeseed remove-node): it cannot serve again as it is; run `kubeseed reset` here, then join it anew", srv.MemberID())
	}
	return fmt.Errorf("etcd member %s stopped by itself: if this node was removed from its cluster, run `kubeseed reset` here and join it anew; else the log above says why", srv.MemberID())
}

// Ready waits until the member serves clients. A joining control plane's
// member starts as a learner, which serves almost no client requests, so
// Ready waits on until it is a voter (the cluster agent promotes it once
// it has caught up).
func (e *Etcd) Ready(ctx context.Context) error {
	select {
	case <-e.etcd.Server.ReadyNotify():
	case <-e.etcd.Server.StopNotify():
		return e.stoppedByItself()
	case <-ctx.Done():
		return ctx.Err()
	}
	for _, u := range e.cfg.ListenClientUrls {
		if u.Scheme == "unix" || u.Scheme == "unixs" {
			if err := os.Chmod(u.Host+u.Path, 0o600); err != nil {
				return fmt.Errorf("etcd's socket: %w", err)
			}
		}
	}
	if !e.etcd.Server.IsLearner() {
		return nil
	}
	klog.FromContext(ctx).Info("etcd member is a learner: waiting for the cluster to promote it once it has caught up")
	return wait.PollUntilContextCancel(ctx, 200*time.Millisecond, true, func(context.Context) (bool, error) {
		select {
		case <-e.etcd.Server.StopNotify():
			return false, e.stoppedByItself()
		default:
		}
		return !e.etcd.Server.IsLearner(), nil
	})
}

// Stop closes the member; Close waits for in-flight writes to be persisted.
func (e *Etcd) Stop(ctx context.Context) error {
	if e.etcd == nil {
		return nil
	}
	e.stopping.Store(true)
	done := make(chan struct{})
	go func() { e.etcd.Close(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("etcd did not close in time: %w", ctx.Err())
	}
}

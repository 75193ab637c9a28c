// Package node runs the node components in-process: the kubelet and
// kube-proxy. containerd, a separate process, lives in package
// containerruntime.
package node

import (
	"context"
	"crypto/tls"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/spf13/pflag"
	utilfeature "k8s.io/apiserver/pkg/util/feature"
	cliflag "k8s.io/component-base/cli/flag"
	kubeletapp "k8s.io/kubernetes/cmd/kubelet/app"
	kubeletoptions "k8s.io/kubernetes/cmd/kubelet/app/options"
	"k8s.io/kubernetes/pkg/kubelet"
	kubeletconfig "k8s.io/kubernetes/pkg/kubelet/apis/config"
	kubeletvalidation "k8s.io/kubernetes/pkg/kubelet/apis/config/validation"
	"k8s.io/kubernetes/pkg/kubelet/eviction"
	"k8s.io/kubernetes/pkg/kubelet/kubeletconfig/configfiles"
	utilfs "k8s.io/kubernetes/pkg/util/filesystem"
	"sigs.k8s.io/yaml"

	"github.com/kubeseed/kubeseed/internal/args"
	"github.com/kubeseed/kubeseed/internal/datadir"
	"github.com/kubeseed/kubeseed/internal/defaults"
	"github.com/kubeseed/kubeseed/internal/fsutil"
	"github.com/kubeseed/kubeseed/internal/health"
	"github.com/kubeseed/kubeseed/internal/hostinfo"
	"github.com/kubeseed/kubeseed/internal/supervisor"
)

// Kubelet runs the kubelet in-process. Upstream's command installs a
// process-wide signal handler, so we drive its options and Run directly.
type Kubelet struct {
	layout  datadir.Layout
	adapt   hostinfo.Adaptations
	server  *kubeletoptions.KubeletServer
	deps    *kubelet.Dependencies
	healthz string
	// healthTLS is set when healthz is the secure port's, as admin: the
	// loopback healthz port is turned off (healthzPort: 0).
	healthTLS *tls.Config
	run       *supervisor.Runner
}

// NewKubelet returns the component; it reads args/kubelet and
// args/kubelet.yaml at Init.
func NewKubelet(l datadir.Layout, adapt hostinfo.Adaptations) *Kubelet {
	return &Kubelet{layout: l, adapt: adapt, run: supervisor.NewRunner(defaults.KubeletComponent, 5*time.Second)}
}

func (k *Kubelet) Name() string { return defaults.KubeletComponent }

// ReadyBefore lets kube-proxy start while the kubelet comes up; only the
// node as a whole needs it.
func (k *Kubelet) ReadyBefore() string  { return supervisor.NodeReady }
func (k *Kubelet) Exited() <-chan error { return k.run.Exited() }

// Init parses the flags and the config file and validates them.
func (k *Kubelet) Init(ctx context.Context) error {
	flags := kubeletoptions.NewKubeletFlags()
	fs := pflag.NewFlagSet(defaults.KubeletComponent, pflag.ContinueOnError)
	fs.SetNormalizeFunc(cliflag.WordSepNormalizeFunc)
	// Only the node-level flags: configuration flags are deprecated
	// upstream and belong in kubelet.yaml.
	flags.AddFlags(fs)
	argsPath := k.layout.Args(defaults.KubeletComponent)
	if err := args.ApplyPFlags(argsPath, k.layout.Vars(), defaults.KubeletComponent, fs, args.RefuseProcessWide(defaults.APIServerComponent)); err != nil {
		return err
	}
	if err := kubeletoptions.ValidateKubeletFlags(flags); err != nil {
		return fmt.Errorf("%s: %w", argsPath, err)
	}
	if flags.KubeletConfigFile == "" {
		return fmt.Errorf("%s: --config is required (the kubelet's configuration is in args/%s)", argsPath, defaults.KubeletConfigFile)
	}
	cfg, err := k.loadConfig(ctx, flags.KubeletConfigFile)
	if err != nil {
		return err
	}
	// featureGates needs no SetFromMap: loadConfig took only gates the
	// process already has.
	if err := kubeletvalidation.ValidateKubeletConfiguration(cfg, utilfeature.DefaultFeatureGate); err != nil {
		return fmt.Errorf("%s: %w", flags.KubeletConfigFile, err)
	}
	for _, dir := range []string{flags.RootDirectory, flags.CertDirectory} {
		if err := fsutil.MakeDir(dir, 0o700); err != nil {
			return err
		}
	}
	if err := EnsureCgroupRoot(cfg.CgroupRoot); err != nil {
		return err
	}
	k.server = &kubeletoptions.KubeletServer{KubeletFlags: *flags, KubeletConfiguration: *cfg}
	k.healthz = "http://" + cfg.HealthzBindAddress + ":" + strconv.Itoa(int(cfg.HealthzPort)) + "/healthz"
	if cfg.HealthzPort == 0 {
		tlsCfg, err := health.ClientTLS(k.layout.Cert("ca"), k.layout.Cert("admin"), k.layout.Key("admin"))
		if err != nil {
			return err
		}
		k.healthz, k.healthTLS = "https://127.0.0.1:"+strconv.Itoa(int(cfg.Port))+"/healthz", tlsCfg
	}
	return nil
}

// loadConfig expands ${VAR}s in the user's kubelet.yaml, applies the host
// adaptations the user did not set, and loads it with upstream's loader.
func (k *Kubelet) loadConfig(ctx context.Context, path string) (*kubeletconfig.KubeletConfiguration, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read kubelet config: %w", err)
	}
	text, err := args.Expand(string(raw), k.layout.Vars())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if err := checkProcessWide(path, []byte(text), utilfeature.DefaultMutableFeatureGate); err != nil {
		return nil, err
	}
	var doc map[string]any
	if err := yaml.Unmarshal([]byte(text), &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if doc == nil {
		return nil, fmt.Errorf("%s is empty: it must hold a KubeletConfiguration (apiVersion: kubelet.config.k8s.io/v1beta1); move it away and start again to get the default one", path)
	}
	if _, set := doc["cgroupDriver"]; !set {
		doc["cgroupDriver"] = k.adapt.CgroupDriver()
	}
	if _, set := doc["failCgroupV1"]; !set && k.adapt.CgroupV1 {
		doc["failCgroupV1"] = false
	}
	rendered, err := yaml.Marshal(doc)
	if err != nil {
		return nil, err
	}
	out := k.layout.Run("kubelet.yaml")
	if err := fsutil.WriteFileAtomic(out, rendered, 0o600); err != nil {
		return nil, err
	}
	loader, err := configfiles.NewFsLoader(&utilfs.DefaultFs{}, out)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	cfg, err := loader.Load(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	// As upstream's loader does: EvictionHard has OS-specific defaults.
	if cfg.EvictionHard == nil {
		cfg.EvictionHard = eviction.DefaultEvictionHard
	}
	return cfg, nil
}

// Start builds the dependencies and runs the kubelet until Stop. The
// dependencies run goroutines of their own, on the kubelet's context.
func (k *Kubelet) Start(ctx context.Context) error {
	deps, err := kubeletapp.UnsecuredDependencies(k.run.Context(ctx), k.server, utilfeature.DefaultFeatureGate)
	if err != nil {
		_ = k.run.Stop(ctx)
		return fmt.Errorf("kubelet dependencies: %w", err)
	}
	k.deps = deps
	k.run.Start(ctx, func(ctx context.Context) error {
		return kubeletapp.Run(ctx, k.server, k.deps, utilfeature.DefaultFeatureGate)
	})
	return nil
}

// Ready waits for the kubelet's loopback healthz.
func (k *Kubelet) Ready(ctx context.Context) error {
	return health.Wait(ctx, k.healthz, k.healthTLS)
}

// Stop cancels the kubelet; its containers are stopped by the runtime's Stop.
func (k *Kubelet) Stop(ctx context.Context) error { return k.run.Stop(ctx) }

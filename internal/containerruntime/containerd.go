package containerruntime

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"go.opentelemetry.io/otel/trace/noop"
	criapi "k8s.io/cri-api/pkg/apis"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	criclient "k8s.io/cri-client/pkg"
	"k8s.io/klog/v2"

	"github.com/kubeseed/kubeseed/internal/datadir"
	"github.com/kubeseed/kubeseed/internal/defaults"
	"github.com/kubeseed/kubeseed/internal/embedded"
	"github.com/kubeseed/kubeseed/internal/fsutil"
	"github.com/kubeseed/kubeseed/internal/health"
	"github.com/kubeseed/kubeseed/internal/hostinfo"
	"github.com/kubeseed/kubeseed/internal/procfs"
	"github.com/kubeseed/kubeseed/internal/supervisor"
)

// Restart policy for a crashed containerd: pods keep running in their
// shims meanwhile, so restarting is always worth trying a few times. The
// n-th restart in the window waits n times restartDelay.
const (
	maxRestarts   = 5
	restartWindow = 5 * time.Minute
	restartDelay  = time.Second
)

// Containerd supervises the containerd child process.
type Containerd struct {
	layout datadir.Layout
	adapt  hostinfo.Adaptations
	exe    string // the kubeseed binary, run as `kubeseed containerd`
	opts   Options
	logOut *os.File
	// command builds the containerd process; tests replace it.
	command      func() *exec.Cmd
	restartDelay time.Duration

	mu       sync.Mutex
	cmd      *exec.Cmd
	stopping bool          // set by Stop: no process is spawned after it
	stopped  chan struct{} // closed with stopping, to cut a restart's wait
	restarts []time.Time
	waited   chan struct{} // closed when the current process is reaped
	exited   chan error
}

// New returns the component; it reads args/containerd at Init.
func New(l datadir.Layout, adapt hostinfo.Adaptations) *Containerd {
	c := &Containerd{layout: l, adapt: adapt, logOut: os.Stderr, restartDelay: restartDelay, stopped: make(chan struct{}), exited: make(chan error, 1)}
	c.command = c.containerdCommand
	return c
}

func (c *Containerd) Name() string { return defaults.ContainerdComponent }

// ReadyBefore lets etcd and the control plane start while containerd loads;
// only the kubelet needs it.
func (c *Containerd) ReadyBefore() string { return defaults.KubeletComponent }

var _ supervisor.Overlapped = (*Containerd)(nil)

func (c *Containerd) Exited() <-chan error { return c.exited }

// ShimPath is where the runc shim is installed for containerd to find.
func ShimPath(l datadir.Layout) string { return filepath.Join(l.Root, "bin", embedded.Shim) }

// Init reads args/containerd, checks the host, renders the config and
// installs the shim.
func (c *Containerd) Init(ctx context.Context) error {
	o, err := LoadOptions(c.layout)
	if err != nil {
		return err
	}
	if err := Preflight(o); err != nil {
		return err
	}
	cfg, err := RenderConfig(c.layout, o, c.adapt)
	if err != nil {
		return err
	}
	if err := fsutil.WriteFileAtomic(c.layout.Run("containerd.toml"), cfg, 0o600); err != nil {
		return err
	}
	if err := keepCNIConfig(c.layout); err != nil {
		return err
	}
	if err := installBinary(ShimPath(c.layout), embedded.Shim); err != nil {
		return err
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find the kubeseed binary: %w", err)
	}
	c.opts, c.exe = o, exe
	return nil
}

// installBinary writes an embedded binary to path unless it is already
// there; the check compares digests, so a warm start copies nothing.
func installBinary(path, name string) error {
	want, err := embedded.Digest(name)
	if err != nil {
		return err
	}
	if got, err := embedded.FileDigest(path); err == nil && got == want {
		return nil
	}
	data, err := embedded.Binary(name)
	if err != nil {
		return err
	}
	if err := fsutil.EnsureDir(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return fsutil.WriteFileAtomic(path, data, 0o755)
}

// Start launches containerd and watches it.
func (c *Containerd) Start(ctx context.Context) error {
	return c.spawn(ctx)
}

func (c *Containerd) containerdCommand() *exec.Cmd {
	cmd := exec.Command(c.exe, "containerd", "--config", c.layout.Run("containerd.toml"), "--log-level", c.opts.LogLevel)
	// The shim is found on PATH, next to nothing else of ours.
	cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(ShimPath(c.layout))+":"+os.Getenv("PATH"))
	return cmd
}

// spawn starts a containerd process unless Stop has begun; holding the
// lock from the check to the start means Stop sees every process spawned.
func (c *Containerd) spawn(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopping {
		return nil
	}
	cmd := c.command()
	cmd.Stdout, cmd.Stderr = c.logOut, c.logOut
	// Its own process group keeps a terminal's Ctrl-C for us; Pdeathsig
	// ends it if kubeseed dies without stopping it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start containerd: %w", err)
	}
	waited := make(chan struct{})
	c.cmd, c.waited = cmd, waited
	go c.watch(ctx, cmd, waited)
	return nil
}

// watch restarts containerd when it exits on its own.
func (c *Containerd) watch(ctx context.Context, cmd *exec.Cmd, waited chan struct{}) {
	err := cmd.Wait()
	close(waited)
	c.mu.Lock()
	stopping := c.stopping
	now := time.Now()
	var recent []time.Time
	for _, t := range c.restarts {
		if now.Sub(t) < restartWindow {
			recent = append(recent, t)
		}
	}
	c.restarts = append(recent, now)
	n := len(c.restarts)
	c.mu.Unlock()
	if stopping {
		return
	}
	if n > maxRestarts {
		c.exited <- fmt.Errorf("containerd exited (%v) %d times in %s; giving up", err, n, restartWindow)
		return
	}
	klog.FromContext(ctx).Info("containerd exited unexpectedly; restarting it (pods keep running in their shims)", "err", err, "restart", n)
	delay := time.NewTimer(time.Duration(n) * c.restartDelay)
	defer delay.Stop()
	select {
	case <-c.stopped:
		return
	case <-delay.C:
	}
	if err := c.spawn(ctx); err != nil {
		c.exited <- err
	}
}

// Ready waits for containerd's API and its CRI service, then imports the
// built-in images.
func (c *Containerd) Ready(ctx context.Context) error {
	client, err := Connect(ctx, c.opts.Address)
	if err != nil {
		return err
	}
	defer client.Close()
	if err := waitCRI(ctx, c.opts.Address); err != nil {
		return err
	}
	return ImportBuiltins(ctx, client)
}

// waitCRI waits until the CRI runtime service answers, so the kubelet
// never meets a containerd whose CRI plugin is still loading.
func waitCRI(ctx context.Context, address string) error {
	err := health.Poll(ctx, health.StartPoll, func(ctx context.Context) error {
		rs, err := criService(ctx, address, 2*time.Second)
		if err == nil {
			_, err = rs.Version(ctx, "")
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("containerd's CRI service at %s: %w; check `kubeseed ctr plugins ls` for a CRI plugin that failed to load", address, err)
	}
	return nil
}

// Connect waits for containerd's socket to serve and returns a client in
// the Kubernetes namespace.
func Connect(ctx context.Context, address string) (*containerd.Client, error) {
	var client *containerd.Client
	err := health.Poll(ctx, health.StartPoll, func(ctx context.Context) error {
		c, err := containerd.New(address, containerd.WithDefaultNamespace(Namespace), containerd.WithTimeout(2*time.Second))
		if err != nil {
			return err
		}
		if _, err = c.Version(ctx); err != nil {
			c.Close()
			return err
		}
		client = c
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("containerd at %s: %w", address, err)
	}
	return client, nil
}

// Stop ends every pod sandbox through the CRI (which also tears down their
// networks and mounts), then containerd, then any shim left behind.
func (c *Containerd) Stop(ctx context.Context) error {
	c.mu.Lock()
	if !c.stopping {
		c.stopping = true
		close(c.stopped)
	}
	cmd, waited := c.cmd, c.waited
	c.mu.Unlock()
	if cmd == nil {
		return nil
	}
	log := klog.FromContext(ctx)
	select {
	case <-waited:
		// Crashed and not yet restarted: there is no CRI to ask, and the
		// shims are killed below.
		log.Info("containerd is not running; its pod sandboxes cannot be removed through the CRI")
	default:
		podCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
		if err := removeSandboxes(podCtx, c.opts.Address); err != nil {
			log.Error(err, "could not remove every pod sandbox; continuing")
		}
		cancel()
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-waited:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-waited
		}
	}
	if n := killShims(ShimPath(c.layout)); n > 0 {
		log.Info("killed leftover shims", "count", n)
	}
	for _, p := range []string{c.opts.Address, c.opts.Address + ".ttrpc"} {
		if err := os.Remove(p); err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("remove %s: %w", p, err)
		}
	}
	if err := os.RemoveAll(ShimSocketDir(c.layout)); err != nil {
		return fmt.Errorf("remove shim sockets: %w", err)
	}
	return nil
}

func removeSandboxes(ctx context.Context, address string) error {
	rs, err := criService(ctx, address, 10*time.Second)
	if err != nil {
		return err
	}
	pods, err := rs.ListPodSandbox(ctx, &runtimeapi.PodSandboxFilter{})
	if err != nil {
		return err
	}
	var errs []error
	for _, p := range pods {
		if err := rs.StopPodSandbox(ctx, p.Id); err != nil {
			errs = append(errs, fmt.Errorf("stop sandbox %s: %w", p.Id, err))
			continue
		}
		if err := rs.RemovePodSandbox(ctx, p.Id); err != nil {
			errs = append(errs, fmt.Errorf("remove sandbox %s: %w", p.Id, err))
		}
	}
	return errors.Join(errs...)
}

// KillShims kills the shims of the node on l that outlived it (it died
// without stopping its pods) and returns how many.
func KillShims(l datadir.Layout) int { return killShims(ShimPath(l)) }

// killShims kills processes running our shim binary and returns how many.
func killShims(shim string) int {
	n := 0
	for _, pid := range procfs.PIDs() {
		if exe, err := procfs.Exe(pid); err != nil || exe != shim {
			continue
		}
		if syscall.Kill(pid, syscall.SIGKILL) == nil {
			n++
		}
	}
	return n
}

// criService is a CRI client for containerd's socket.
func criService(ctx context.Context, address string, timeout time.Duration) (criapi.RuntimeService, error) {
	return criclient.NewRemoteRuntimeServiceBuilder().
		WithEndpoint("unix://" + address).
		WithConnectionTimeout(timeout).
		WithTracerProvider(noop.NewTracerProvider()).
		Build(ctx)
}

// Package containerruntime supervises containerd, a child process of
// kubeseed: it renders containerd's config for this host, checks what
// containerd needs, restarts it if it crashes, imports the built-in images,
// and on stop ends every container, shim and socket it started.
package containerruntime

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"

	"github.com/spf13/pflag"

	"github.com/kubeseed/kubeseed/internal/args"
	"github.com/kubeseed/kubeseed/internal/datadir"
	"github.com/kubeseed/kubeseed/internal/defaults"
	"github.com/kubeseed/kubeseed/internal/fsutil"
	"github.com/kubeseed/kubeseed/internal/hostinfo"
)

// Namespace is where the CRI plugin keeps Kubernetes' images and containers.
const Namespace = "k8s.io"

// maxSocketPath keeps the socket under the kernel's sun_path limit (108
// bytes) with room for containerd's ".ttrpc" sibling.
const maxSocketPath = 100

// Options are the values of args/containerd.
type Options struct {
	ConfigTemplate string
	Address        string
	Root           string
	State          string
	MetricsAddress string
	StreamAddress  string
	CNIBinDir      string
	LogLevel       string
}

// LoadOptions parses args/containerd.
func LoadOptions(l datadir.Layout) (Options, error) {
	var o Options
	fs := pflag.NewFlagSet(defaults.ContainerdComponent, pflag.ContinueOnError)
	fs.StringVar(&o.ConfigTemplate, "config-template", "", "containerd config template")
	fs.StringVar(&o.Address, "address", "", "containerd's gRPC socket")
	fs.StringVar(&o.Root, "root", "", "containerd's persistent state")
	fs.StringVar(&o.State, "state", "", "containerd's runtime state")
	fs.StringVar(&o.MetricsAddress, "metrics-address", "", "loopback host:port for metrics")
	fs.StringVar(&o.StreamAddress, "stream-address", "", "loopback host:port of the CRI streaming server")
	fs.StringVar(&o.CNIBinDir, "cni-bin-dir", DefaultCNIBinDir, "where the CNI plugins are installed")
	fs.StringVar(&o.LogLevel, "log-level", "warn", "containerd log level")
	path := l.Args(defaults.ContainerdComponent)
	if err := args.ApplyPFlags(path, l.Vars(), defaults.ContainerdComponent, fs, nil); err != nil {
		return o, err
	}
	for name, v := range map[string]string{"config-template": o.ConfigTemplate, "address": o.Address, "root": o.Root, "state": o.State, "metrics-address": o.MetricsAddress, "stream-address": o.StreamAddress} {
		if v == "" {
			return o, fmt.Errorf("%s: --%s is required", path, name)
		}
	}
	return o, nil
}

// RenderConfig fills the template with paths and host adaptations.
func RenderConfig(l datadir.Layout, o Options, a hostinfo.Adaptations) ([]byte, error) {
	tmpl, err := os.ReadFile(o.ConfigTemplate)
	if err != nil {
		return nil, fmt.Errorf("read containerd config template: %w", err)
	}
	vars := l.Vars()
	vars["ROOT"], vars["STATE"], vars["ADDRESS"], vars["METRICS_ADDRESS"] = o.Root, o.State, o.Address, o.MetricsAddress
	host, port, err := net.SplitHostPort(o.StreamAddress)
	if err != nil {
		return nil, fmt.Errorf("%s: --stream-address: %w", l.Args(defaults.ContainerdComponent), err)
	}
	vars["STREAM_HOST"], vars["STREAM_PORT"] = host, port
	vars["CNI_BIN_DIR"] = o.CNIBinDir
	vars["SHIM_SOCKET_DIR"] = ShimSocketDir(l)
	vars["SYSTEMD_CGROUP"] = strconv.FormatBool(a.Systemd)
	vars["RESTRICT_OOM_SCORE_ADJ"] = strconv.FormatBool(!a.SysResource)
	out, err := args.Expand(string(tmpl), vars)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", o.ConfigTemplate, err)
	}
	return []byte(out), nil
}

// ShimSocketDir is where shims put their sockets. containerd caps its
// length at 42 bytes (sockets inside it must fit sun_path), so it lives
// under /run, named by a hash of the data dir so nodes never share it.
func ShimSocketDir(l datadir.Layout) string {
	sum := sha256.Sum256([]byte(l.Root))
	return "/run/kubeseed/" + hex.EncodeToString(sum[:6])
}

// requiredCNIPlugins are the plugins the default pod network uses.
var requiredCNIPlugins = []string{"bridge", "host-local", "portmap", "loopback"}

// DefaultCNIBinDir is where Debian's containernetworking-plugins installs.
const DefaultCNIBinDir = "/usr/lib/cni"

// Preflight checks what containerd needs from the host and the data dir,
// with a message that says what to install or change.
func Preflight(o Options) error {
	if _, err := exec.LookPath("runc"); err != nil {
		return errors.New("runc is not installed: install it with `apt-get install runc` (or run hack/setup.sh)")
	}
	var missing []string
	for _, p := range requiredCNIPlugins {
		if st, err := os.Stat(filepath.Join(o.CNIBinDir, p)); err != nil || !st.Mode().IsRegular() || st.Mode().Perm()&0o111 == 0 {
			missing = append(missing, p)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("CNI plugins %v are missing from %s (or not executable files): install them with `apt-get install containernetworking-plugins` (or run hack/setup.sh), or set --cni-bin-dir in args/containerd", missing, o.CNIBinDir)
	}
	return checkSocketPath(o.Address)
}

func checkSocketPath(path string) error {
	if len(path) > maxSocketPath {
		return fmt.Errorf("containerd socket path %s is %d bytes, over the %d-byte limit of unix sockets: use a shorter --data-dir, or set --address in args/containerd", path, len(path), maxSocketPath)
	}
	if err := fsutil.MakeDir(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("containerd socket directory: %w (set --address in args/containerd to a writable place)", err)
	}
	st, err := os.Lstat(path)
	switch {
	case os.IsNotExist(err):
		return nil
	case err != nil:
		return fmt.Errorf("containerd socket %s: %w", path, err)
	case st.Mode()&os.ModeSocket == 0:
		return fmt.Errorf("containerd socket path %s exists and is not a socket: move it away, or set --address in args/containerd", path)
	}
	return nil
}

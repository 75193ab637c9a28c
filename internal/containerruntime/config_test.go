package containerruntime

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	srvconfig "github.com/containerd/containerd/v2/cmd/containerd/server/config"

	"github.com/kubeseed/kubeseed/internal/datadir"
	"github.com/kubeseed/kubeseed/internal/defaults"
	"github.com/kubeseed/kubeseed/internal/hostinfo"
)

// newNode writes a new node's args/containerd and config template under a
// data dir whose path has a space, and returns its layout.
func newNode(t *testing.T, extraArgs ...[2]string) datadir.Layout {
	t.Helper()
	l := datadir.Layout{Root: filepath.Join(t.TempDir(), "data dir")}
	if err := os.MkdirAll(l.ArgsDir(), 0o755); err != nil {
		t.Fatal(err)
	}
	f := defaults.ContainerdArgs(l, 0)
	for _, kv := range extraArgs {
		f.Set(kv[0], kv[1])
	}
	if err := os.WriteFile(l.Args("containerd"), f.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(l.Args("containerd-template.toml"), defaults.ContainerdConfig(), 0o644); err != nil {
		t.Fatal(err)
	}
	return l
}

func render(t *testing.T, l datadir.Layout, a hostinfo.Adaptations) []byte {
	t.Helper()
	o, err := LoadOptions(l)
	if err != nil {
		t.Fatal(err)
	}
	out, err := RenderConfig(l, o, a)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// parse reads a rendered config with containerd's own loader, as a document
// of the top-level keys checked here and the plugin tables.
func parse(t *testing.T, out []byte) map[string]any {
	t.Helper()
	path := filepath.Join(t.TempDir(), "containerd.toml")
	if err := os.WriteFile(path, out, 0o600); err != nil {
		t.Fatal(err)
	}
	var cfg srvconfig.Config
	if err := srvconfig.LoadConfig(context.Background(), path, &cfg); err != nil {
		t.Fatalf("containerd's loader: %v\n%s", err, out)
	}
	return map[string]any{"version": cfg.Version, "root": cfg.Root, "state": cfg.State, "plugins": cfg.Plugins}
}

// lookup walks a parsed config.
func lookup(t *testing.T, doc map[string]any, path ...string) any {
	t.Helper()
	var cur any = doc
	for i, k := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			t.Fatalf("%s is not a table", strings.Join(path[:i], "."))
		}
		if cur, ok = m[k]; !ok {
			t.Fatalf("no key %s", strings.Join(path[:i+1], "."))
		}
	}
	return cur
}

func TestRenderConfig(t *testing.T) {
	tests := []struct {
		name          string
		a             hostinfo.Adaptations
		systemdCgroup bool
		restrictOOM   bool
	}{
		{"systemd, v2, CAP_SYS_RESOURCE", hostinfo.Adaptations{Systemd: true, SysResource: true}, true, false},
		{"systemd, v1, CAP_SYS_RESOURCE", hostinfo.Adaptations{Systemd: true, CgroupV1: true, SysResource: true}, true, false},
		{"no systemd, v2", hostinfo.Adaptations{SysResource: true}, false, false},
		{"no systemd, v1", hostinfo.Adaptations{CgroupV1: true, SysResource: true}, false, false},
		{"systemd, no CAP_SYS_RESOURCE", hostinfo.Adaptations{Systemd: true}, true, true},
		{"nothing", hostinfo.Adaptations{CgroupV1: true}, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newNode(t)
			r := l.Root
			out := render(t, l, tt.a)
			if strings.Contains(string(out), "${") {
				t.Errorf("unexpanded reference left:\n%s", out)
			}
			doc := parse(t, out)
			const (
				rt  = "io.containerd.cri.v1.runtime"
				cri = "io.containerd.grpc.v1.cri"
			)
			sum := sha256.Sum256([]byte(r))
			want := []struct {
				path []string
				v    any
			}{
				{[]string{"version"}, 4},
				{[]string{"root"}, r + "/var/containerd"},
				{[]string{"state"}, r + "/run/containerd"},
				{[]string{"plugins", "io.containerd.server.v1.grpc", "address"}, r + "/run/containerd.sock"},
				{[]string{"plugins", "io.containerd.server.v1.ttrpc", "address"}, r + "/run/containerd.sock.ttrpc"},
				{[]string{"plugins", "io.containerd.server.v1.metrics", "address"}, "127.0.0.1:1338"},
				{[]string{"plugins", cri, "stream_server_address"}, "127.0.0.1"},
				{[]string{"plugins", cri, "stream_server_port"}, "10010"},
				{[]string{"plugins", "io.containerd.cri.v1.images", "pinned_images", "sandbox"}, "registry.k8s.io/pause:3.10"},
				{[]string{"plugins", rt, "restrict_oom_score_adj"}, tt.restrictOOM},
				{[]string{"plugins", rt, "cdi_spec_dirs"}, []any{r + "/run/containerd/cdi"}},
				{[]string{"plugins", rt, "containerd", "default_runtime_name"}, "runc"},
				{[]string{"plugins", rt, "containerd", "runtimes", "runc", "runtime_type"}, "io.containerd.runc.v2"},
				{[]string{"plugins", rt, "containerd", "runtimes", "runc", "options", "SystemdCgroup"}, tt.systemdCgroup},
				{[]string{"plugins", rt, "containerd", "runtimes", "runc", "options", "Root"}, r + "/run/containerd/runc"},
				{[]string{"plugins", rt, "cni", "bin_dirs"}, []any{"/usr/lib/cni"}},
				{[]string{"plugins", rt, "cni", "conf_dir"}, r + "/run/cni-network"},
				{[]string{"plugins", rt, "cni", "conf_template"}, r + "/args/cni-network.template"},
				{[]string{"plugins", "io.containerd.internal.v1.opt", "path"}, r + "/var/containerd/opt"},
				{[]string{"plugins", "io.containerd.nri.v1.nri", "socket_path"}, r + "/run/containerd/nri/nri.sock"},
				{[]string{"plugins", "io.containerd.shim.v1.manager", "socket_dir"}, "/run/kubeseed/" + hex.EncodeToString(sum[:])[:12]},
			}
			for _, w := range want {
				if got := lookup(t, doc, w.path...); !reflect.DeepEqual(got, w.v) {
					t.Errorf("%s = %#v, want %#v", strings.Join(w.path, "."), got, w.v)
				}
			}
		})
	}
}

// The cgroup version is the kubelet's business: containerd's config does
// not change with it.
func TestRenderConfigIgnoresCgroupVersion(t *testing.T) {
	l := newNode(t)
	for _, a := range []hostinfo.Adaptations{{}, {Systemd: true}, {SysResource: true}, {Systemd: true, SysResource: true}} {
		v2 := render(t, l, a)
		a.CgroupV1 = true
		if v1 := render(t, l, a); string(v1) != string(v2) {
			t.Errorf("%+v: config differs between cgroup v1 and v2", a)
		}
	}
}

func TestRenderConfigUserArgs(t *testing.T) {
	l := newNode(t, [2]string{"cni-bin-dir", "/opt/cni/bin"}, [2]string{"address", "/run/ks/c.sock"})
	doc := parse(t, render(t, l, hostinfo.Adaptations{}))
	rt := "io.containerd.cri.v1.runtime"
	if got := lookup(t, doc, "plugins", rt, "cni", "bin_dirs"); !reflect.DeepEqual(got, []any{"/opt/cni/bin"}) {
		t.Errorf("bin_dirs = %v", got)
	}
	if got := lookup(t, doc, "plugins", "io.containerd.server.v1.ttrpc", "address"); got != "/run/ks/c.sock.ttrpc" {
		t.Errorf("ttrpc address = %v", got)
	}
}

func TestRenderConfigErrors(t *testing.T) {
	for _, tt := range []struct {
		name   string
		mutate func(l datadir.Layout, o *Options)
		want   []string
	}{
		{"missing template", func(l datadir.Layout, o *Options) { o.ConfigTemplate = filepath.Join(l.Root, "nope.toml") }, []string{"read containerd config template", "nope.toml"}},
		{"unknown variable", func(l datadir.Layout, o *Options) {
			os.WriteFile(o.ConfigTemplate, []byte("root = \"${NOPE}\"\n"), 0o644)
		}, []string{"containerd-template.toml", "${NOPE}"}},
		{"stream address without port", func(l datadir.Layout, o *Options) { o.StreamAddress = "127.0.0.1" }, []string{"args/containerd", "--stream-address"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			l := newNode(t)
			o, err := LoadOptions(l)
			if err != nil {
				t.Fatal(err)
			}
			tt.mutate(l, &o)
			_, err = RenderConfig(l, o, hostinfo.Adaptations{})
			for _, w := range tt.want {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("err = %v, want one containing %q", err, w)
				}
			}
		})
	}
}

func TestLoadOptionsRequiresPaths(t *testing.T) {
	l := newNode(t)
	if err := os.WriteFile(l.Args("containerd"), []byte("--address=${DATA_DIR}/run/c.sock\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := LoadOptions(l)
	if err == nil || !strings.Contains(err.Error(), "is required") || !strings.Contains(err.Error(), "args/containerd") {
		t.Errorf("err = %v, want a missing flag named with the file", err)
	}
}

func TestShimSocketDir(t *testing.T) {
	a := ShimSocketDir(datadir.Layout{Root: "/var/lib/kubeseed"})
	b := ShimSocketDir(datadir.Layout{Root: "/var/lib/kubeseed2"})
	// sha256("/var/lib/kubeseed"), first 6 bytes.
	sum := sha256.Sum256([]byte("/var/lib/kubeseed"))
	if want := "/run/kubeseed/" + hex.EncodeToString(sum[:6]); a != want {
		t.Errorf("ShimSocketDir = %q, want %q", a, want)
	}
	if a == b {
		t.Error("two data dirs share a shim socket dir")
	}
	// containerd's limit on the shim socket dir.
	if len(a) > 42 {
		t.Errorf("%q is %d bytes, over containerd's 42", a, len(a))
	}
}

// fakeBin makes an executable file name in dir.
func fakeBin(t *testing.T, dir, name string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
}

func TestPreflight(t *testing.T) {
	allPlugins := []string{"bridge", "host-local", "portmap", "loopback"}
	for _, tt := range []struct {
		name    string
		runc    bool
		plugins []string
		address string // "" is a fine path in the temp dir
		want    []string
	}{
		{"ok", true, allPlugins, "", nil},
		{"no runc", false, allPlugins, "", []string{"runc is not installed", "apt-get install runc"}},
		{"no plugins", true, nil, "", []string{"[bridge host-local portmap loopback] are missing", "containernetworking-plugins", "--cni-bin-dir"}},
		{"some plugins", true, []string{"bridge", "portmap"}, "", []string{"[host-local loopback] are missing"}},
		{"plugin not executable", true, allPlugins, "", []string{"[portmap] are missing", "not executable"}},
		{"socket path too long", true, allPlugins, "/" + strings.Repeat("a", 100), []string{"101 bytes", "100-byte limit", "--address"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			bin, cni := t.TempDir(), t.TempDir()
			t.Setenv("PATH", bin)
			if tt.runc {
				fakeBin(t, bin, "runc")
			}
			for _, p := range tt.plugins {
				fakeBin(t, cni, p)
			}
			if tt.name == "plugin not executable" {
				if err := os.Chmod(filepath.Join(cni, "portmap"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			addr := tt.address
			if addr == "" {
				addr = filepath.Join(t.TempDir(), "run", "containerd.sock")
			}
			err := Preflight(Options{CNIBinDir: cni, Address: addr})
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Preflight: %v", err)
				}
				return
			}
			for _, w := range tt.want {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("err = %v, want one containing %q", err, w)
				}
			}
		})
	}
}

func TestCheckSocketPath(t *testing.T) {
	dir := t.TempDir()
	// A path of exactly n bytes inside dir.
	pathOf := func(n int) string {
		p := filepath.Join(dir, "s")
		return p + strings.Repeat("x", n-len(p))
	}

	if err := checkSocketPath(pathOf(100)); err != nil {
		t.Errorf("100-byte path: %v", err)
	}
	if err := checkSocketPath(pathOf(101)); err == nil || !strings.Contains(err.Error(), "over the 100-byte limit") {
		t.Errorf("101-byte path: err = %v", err)
	}

	// A missing parent is created.
	nested := filepath.Join(dir, "a", "b", "c.sock")
	if err := checkSocketPath(nested); err != nil {
		t.Errorf("missing parent: %v", err)
	}
	if st, err := os.Stat(filepath.Dir(nested)); err != nil || !st.IsDir() {
		t.Errorf("parent not created: %v", err)
	}

	// An existing parent keeps its mode, sticky bit and all (e.g. /tmp).
	shared := filepath.Join(dir, "shared")
	if err := os.Mkdir(shared, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(shared, 0o777|os.ModeSticky); err != nil {
		t.Fatal(err)
	}
	if err := checkSocketPath(filepath.Join(shared, "c.sock")); err != nil {
		t.Errorf("shared parent: %v", err)
	}
	if st, err := os.Stat(shared); err != nil || st.Mode()&(os.ModePerm|os.ModeSticky) != 0o777|os.ModeSticky {
		t.Errorf("checkSocketPath changed the mode of an existing parent to %v (%v)", st.Mode(), err)
	}

	// A parent that is a file cannot hold the socket.
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := checkSocketPath(filepath.Join(file, "c.sock")); err == nil || !strings.Contains(err.Error(), "containerd socket directory") {
		t.Errorf("parent is a file: err = %v", err)
	}

	// An existing regular file where the socket goes is refused.
	if err := checkSocketPath(file); err == nil || !strings.Contains(err.Error(), "is not a socket") {
		t.Errorf("regular file: err = %v", err)
	}

	// A stale socket from an earlier run is fine.
	sock := filepath.Join(dir, "old.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	if err := checkSocketPath(sock); err != nil {
		t.Errorf("existing socket: %v", err)
	}
}

package node

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kubeseed/kubeseed/internal/datadir"
)

func TestHostNamesOf(t *testing.T) {
	const conf = `{"cniVersion": "1.0.0", "name": "%s", "plugins": [{"type": "bridge", "bridge": "%s"}]}`
	cases := []struct {
		name       string
		kubelet    string
		cni        string // name and bridge, space-separated; "" for no CNI config
		legacy     bool   // an older data dir's static args/cni-network/*.conflist
		wantErr    []string
		cgroupRoot string
		podLogs    string
	}{
		{name: "defaults", kubelet: "cgroupRoot: /kubeseed-x\npodLogsDir: ${DATA_DIR}/var/log/pods\n", cni: "kubeseed-x cni-kubeseed0",
			cgroupRoot: "/kubeseed-x", podLogs: "DATA/var/log/pods"},
		{name: "no kubelet.yaml yet", cgroupRoot: "", podLogs: "DATA/var/log/pods"},
		{name: "podLogsDir absent is migrated to the data dir", kubelet: "cgroupRoot: /a/b\n", cgroupRoot: "/a/b", podLogs: "DATA/var/log/pods"},
		{name: "cgroupRoot //", kubelet: "cgroupRoot: \"//\"\n", wantErr: []string{"kubelet.yaml: field cgroupRoot", `"//"`}},
		{name: "cgroupRoot /", kubelet: "cgroupRoot: /\n", wantErr: []string{"field cgroupRoot"}},
		{name: "cgroupRoot with ..", kubelet: "cgroupRoot: /kubeseed/../..\n", wantErr: []string{"field cgroupRoot"}},
		{name: "cgroupRoot relative", kubelet: "cgroupRoot: kubeseed\n", wantErr: []string{"field cgroupRoot"}},
		{name: "cgroupRoot unset", kubelet: "podLogsDir: /x\n", wantErr: []string{"field cgroupRoot", `""`}},
		{name: "podLogsDir relative", kubelet: "cgroupRoot: /k\npodLogsDir: logs\n", wantErr: []string{"field podLogsDir"}},
		{name: "podLogsDir unknown variable", kubelet: "cgroupRoot: /k\npodLogsDir: ${NOPE}/x\n", wantErr: []string{"field podLogsDir"}},
		{name: "CNI name with ../", kubelet: "cgroupRoot: /k\n", cni: "../../etc cni0", wantErr: []string{"cni-network.template: field name", "../../etc"}},
		{name: "legacy CNI name with ../", kubelet: "cgroupRoot: /k\n", cni: "../../etc cni0", legacy: true, wantErr: []string{"10-kubeseed.conflist: field name", "../../etc"}},
		{name: "legacy bridge with a slash", kubelet: "cgroupRoot: /k\n", cni: "ok a/b", legacy: true, wantErr: []string{"field bridge"}},
		{name: "bridge name too long", kubelet: "cgroupRoot: /k\n", cni: "ok averyveryverylongbridge", wantErr: []string{"field bridge"}},
		{name: "bridge with a slash", kubelet: "cgroupRoot: /k\n", cni: "ok a/b", wantErr: []string{"field bridge"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			l := datadir.Layout{Root: t.TempDir()}
			if err := os.MkdirAll(l.Args("cni-network"), 0o755); err != nil {
				t.Fatal(err)
			}
			if c.kubelet != "" {
				if err := os.WriteFile(l.Args("kubelet.yaml"), []byte(c.kubelet), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if c.cni != "" {
				name, bridge, _ := strings.Cut(c.cni, " ")
				data := strings.Replace(strings.Replace(conf, "%s", name, 1), "%s", bridge, 1)
				path := l.Args("cni-network.template")
				if c.legacy {
					path = filepath.Join(l.Args("cni-network"), "10-kubeseed.conflist")
				}
				if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			names, err := HostNamesOf(l)
			if c.wantErr != nil {
				for _, w := range c.wantErr {
					if err == nil || !strings.Contains(err.Error(), w) {
						t.Errorf("error %v lacks %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.cgroupRoot != "" && names.CgroupRoot != c.cgroupRoot {
				t.Errorf("cgroupRoot %q, want %q", names.CgroupRoot, c.cgroupRoot)
			}
			if want := strings.Replace(c.podLogs, "DATA", l.Root, 1); names.PodLogsDir != want {
				t.Errorf("podLogsDir %q, want %q", names.PodLogsDir, want)
			}
		})
	}
}

func TestRemoveCgroupRootRefusesUnsafeRoots(t *testing.T) {
	for _, root := range []string{"", "/", "//", "/a/../..", "/a//b", "rel"} {
		if err := RemoveCgroupRoot(root); err == nil {
			t.Errorf("RemoveCgroupRoot(%q) did not refuse", root)
		}
	}
}

// FuzzValidCgroupRoot: whatever it accepts stays below the root.
func FuzzValidCgroupRoot(f *testing.F) {
	for _, s := range []string{"/kubeseed", "//", "/a/../b", "/a/./b", "/.."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, root string) {
		if ValidCgroupRoot(root) != nil {
			return
		}
		if filepath.Clean(root) != root || root == "/" || !strings.HasPrefix(root, "/") {
			t.Fatalf("accepted %q", root)
		}
		for _, seg := range strings.Split(root[1:], "/") {
			if seg == "" || seg == "." || seg == ".." {
				t.Fatalf("accepted %q", root)
			}
		}
	})
}

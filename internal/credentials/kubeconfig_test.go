package credentials

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWriteKubeconfigTo(t *testing.T) {
	const data = "apiVersion: v1\nkind: Config\n"
	cases := []struct {
		name    string
		setup   func(t *testing.T, dir string) string // returns the path to write
		written string                                // the file that must hold data; "" means none
		wantErr string
	}{
		{"new file", func(t *testing.T, dir string) string { return filepath.Join(dir, "config") }, "config", ""},
		{"missing parent, as ~/.kube", func(t *testing.T, dir string) string { return filepath.Join(dir, ".kube", "config") }, ".kube/config", ""},
		{"existing world-readable file", func(t *testing.T, dir string) string {
			p := filepath.Join(dir, "config")
			if err := os.WriteFile(p, []byte("old"), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(p, 0o644); err != nil {
				t.Fatal(err)
			}
			return p
		}, "config", ""},
		{"symlink is followed", func(t *testing.T, dir string) string {
			if err := os.WriteFile(filepath.Join(dir, "real"), []byte("old"), 0o600); err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(dir, "link")
			if err := os.Symlink("real", p); err != nil {
				t.Fatal(err)
			}
			return p
		}, "real", ""},
		{"directory", func(t *testing.T, dir string) string {
			p := filepath.Join(dir, "kube")
			if err := os.Mkdir(p, 0o700); err != nil {
				t.Fatal(err)
			}
			return p
		}, "", "kube is a directory; give the kubeconfig's file name, e.g. "},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			path := c.setup(t, dir)
			err := WriteKubeconfigTo(path, []byte(data))
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) || !strings.Contains(err.Error(), path) {
					t.Fatalf("err %v, want it to name %s and contain %q", err, path, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			target := filepath.Join(dir, c.written)
			st, err := os.Lstat(target)
			if err != nil {
				t.Fatal(err)
			}
			if st.Mode().Perm() != 0o600 || !st.Mode().IsRegular() {
				t.Errorf("%s is %v, want a regular file with mode 0600", target, st.Mode())
			}
			if got, _ := os.ReadFile(target); string(got) != data {
				t.Errorf("%s holds %q", target, got)
			}
			if path != target {
				if st, err := os.Lstat(path); err != nil || st.Mode()&os.ModeSymlink == 0 {
					t.Errorf("%s is no longer a symlink (%v)", path, err)
				}
			}
			entries, _ := os.ReadDir(filepath.Dir(target))
			for _, e := range entries {
				if strings.Contains(e.Name(), ".tmp-") {
					t.Errorf("temp file %s left behind", e.Name())
				}
			}
		})
	}
}

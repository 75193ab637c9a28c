package containerruntime

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kubeseed/kubeseed/internal/datadir"
	"github.com/kubeseed/kubeseed/internal/defaults"
)

func cniLayout(t *testing.T) datadir.Layout {
	t.Helper()
	l, err := datadir.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{l.ArgsDir(), l.Run(defaults.CNIConfDir)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(l.Args(defaults.CNITemplateFile), defaults.CNITemplate(l, 1450), 0o644); err != nil {
		t.Fatal(err)
	}
	return l
}

func TestKeepCNIConfig(t *testing.T) {
	l := cniLayout(t)
	rendered := filepath.Join(l.Run(defaults.CNIConfDir), renderedCNIFile)
	write := func() {
		if err := os.MkdirAll(filepath.Dir(rendered), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(rendered, []byte("{}"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	steps := []struct {
		name string
		edit func()
		kept bool
	}{
		{"first start: no record", nil, false},
		{"restart, template unchanged", nil, true},
		{"template edited", func() {
			data, _ := os.ReadFile(l.Args(defaults.CNITemplateFile))
			if err := os.WriteFile(l.Args(defaults.CNITemplateFile), []byte(strings.Replace(string(data), `"mtu": 1450`, `"mtu": 1400`, 1)), 0o644); err != nil {
				t.Fatal(err)
			}
		}, false},
		{"restart after the edit", nil, true},
	}
	for _, s := range steps {
		write()
		if s.edit != nil {
			s.edit()
		}
		if err := keepCNIConfig(l); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if _, err := os.Stat(rendered); (err == nil) != s.kept {
			t.Errorf("%s: rendered config kept = %v, want %v", s.name, err == nil, s.kept)
		}
	}
}

func TestEnsureCNIRange(t *testing.T) {
	l := cniLayout(t)
	_, cidr, _ := net.ParseCIDR("10.1.3.0/24")
	if changed, err := EnsureCNIRange(l, cidr); err != nil || changed {
		t.Fatalf("nothing rendered yet: %v %v", changed, err)
	}
	rendered := filepath.Join(l.Run(defaults.CNIConfDir), renderedCNIFile)
	data, _ := os.ReadFile(l.Args(defaults.CNITemplateFile))
	if err := os.WriteFile(rendered, []byte(strings.ReplaceAll(string(data), "{{.PodCIDR}}", "10.1.0.0/24")), 0o644); err != nil {
		t.Fatal(err)
	}
	if changed, err := EnsureCNIRange(l, cidr); err != nil || !changed {
		t.Fatalf("another range: %v %v", changed, err)
	}
	got, _ := os.ReadFile(rendered)
	if !strings.Contains(string(got), `"subnet": "10.1.3.0/24"`) || strings.Contains(string(got), "10.1.0.0/24") {
		t.Errorf("rendered:\n%s", got)
	}
	if changed, err := EnsureCNIRange(l, cidr); err != nil || changed {
		t.Errorf("the right range again: %v %v", changed, err)
	}
}

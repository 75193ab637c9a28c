package services

import (
	"flag"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/kubeseed/kubeseed/internal/args"
	"github.com/kubeseed/kubeseed/internal/datadir"
)

func TestPortFromFlag(t *testing.T) {
	cases := []struct {
		source  PortSource
		value   string
		want    int
		wantErr bool
	}{
		{PortFlag, "16443", 16443, false},
		{PortFlag, " 10259 ", 10259, false},
		{PortFlag, "0", 0, true},
		{YAMLField, "0", 0, true}, // not Optional
		{PortFlag, "70000", 0, true},
		{PortFlag, "abc", 0, true},
		{URLFlag, "https://0.0.0.0:12379", 12379, false},
		{URLFlag, "https://0.0.0.0:12379,https://[::1]:12379", 12379, false},
		{URLFlag, "https://0.0.0.0", 0, true},
		{URLFlag, "://bad", 0, true},
		{HostPortFlag, "127.0.0.1:10248", 10248, false},
		{HostPortFlag, "127.0.0.1", 0, true},
	}
	for _, c := range cases {
		s := Service{Flag: "f", Source: c.source}
		got, err := s.PortFromFlag(c.value)
		if (err != nil) != c.wantErr || got != c.want {
			t.Errorf("PortFromFlag(%v, %q) = %d, %v; want %d, err %v", c.source, c.value, got, err, c.want, c.wantErr)
		}
	}
}

func TestTableIsConsistent(t *testing.T) {
	seen := map[string]bool{}
	ports := map[int]string{}
	for _, s := range Table {
		if seen[s.Name] {
			t.Errorf("duplicate service %s", s.Name)
		}
		seen[s.Name] = true
		if s.Roles == 0 || s.Roles&^OnEvery != 0 {
			t.Errorf("%s: Roles %v: say which nodes run it", s.Name, s.Roles)
		}
		// One port may serve two services on nodes of different roles.
		if other, ok := ports[s.Port]; ok && MustLookup(other).Roles&s.Roles != 0 {
			t.Errorf("port %d used by %s and %s on the same nodes", s.Port, other, s.Name)
		}
		if _, ok := ports[s.Port]; !ok {
			ports[s.Port] = s.Name
		}
		if s.Removed {
			continue
		}
		if s.Flag == "" || s.Component == "" {
			t.Errorf("%s: served services need Component and Flag", s.Name)
		}
		if s.TLS == (s.TrustCA == "") || s.TLS == s.Plain {
			t.Errorf("%s: a TLS service needs TrustCA; a plain one must be marked Plain", s.Name)
		}
		if s.Source == YAMLField && s.ConfigFile == "" {
			t.Errorf("%s: YAMLField needs ConfigFile", s.Name)
		}
		if s.Bind != BindHost && s.Bind != BindLoopback {
			t.Errorf("%s: bad bind %q", s.Name, s.Bind)
		}
	}
	// The spec's removed insecure ports must be listed so the audit checks them.
	for _, p := range []int{10251, 10252} {
		if name, ok := ports[p]; !ok {
			t.Errorf("port %d missing", p)
		} else if s := MustLookup(name); !s.Removed {
			t.Errorf("port %d must be Removed", p)
		}
	}
}

func TestPortIn(t *testing.T) {
	f, err := args.Parse("args/kube-apiserver", []byte("--secure-port=17443\n"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := MustLookup("kube-apiserver").PortIn(f)
	if err != nil || p != 17443 {
		t.Fatalf("PortIn = %d, %v", p, err)
	}
	empty, _ := args.Parse("args/kube-apiserver", nil)
	if _, err := MustLookup("kube-apiserver").PortIn(empty); err == nil || !strings.Contains(err.Error(), "--secure-port is not set") {
		t.Fatalf("missing flag: %v", err)
	}
}

var update = flag.Bool("update", false, "rewrite docs/ports.md from Table")

const docsHeader = "# Services and ports\n\nGenerated from `internal/services.Table` (also printed by `kubeseed ports`).\n" +
	"Regenerate with `go test ./internal/services -run Docs -update`; this test fails when it drifts.\n\n"

func TestDocsPortTableIsCurrent(t *testing.T) {
	const path = "../../docs/ports.md"
	want := docsHeader + MarkdownTable()
	if *update {
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(data) != want {
		t.Errorf("docs/ports.md is out of date: run go test ./internal/services -run Docs -update")
	}
}

func TestOptionalPorts(t *testing.T) {
	dir := t.TempDir()
	l := datadir.Layout{Root: dir}
	write := func(name, data string) {
		t.Helper()
		if err := os.MkdirAll(l.ArgsDir(), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(l.Args(name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range Served() {
		if s.Source != YAMLField {
			f := args.New(l.Args(s.Component))
			if data, err := os.ReadFile(l.Args(s.Component)); err == nil {
				f, _ = args.Parse(l.Args(s.Component), data)
			}
			f.Set(s.Flag, s.ListenAddr(0))
			if s.Source == PortFlag {
				f.Set(s.Flag, strconv.Itoa(s.Port))
			}
			if s.Source == URLFlag {
				f.Set(s.Flag, "https://"+s.ListenAddr(0))
			}
			write(s.Component, string(f.Bytes()))
		}
	}
	cases := []struct {
		yaml    string
		want    map[string]int
		wantErr []string
	}{
		{"port: 10250\nreadOnlyPort: 10255\nhealthzPort: 10248\n", map[string]int{"kubelet": 10250, "kubelet-readonly": 10255, "kubelet-healthz": 10248}, nil},
		{"port: 10250\nreadOnlyPort: 0\nhealthzPort: 0\n", map[string]int{"kubelet": 10250, "kubelet-readonly": 0, "kubelet-healthz": 0}, nil},
		// Upstream's defaults for absent fields.
		{"{}\n", map[string]int{"kubelet": 10250, "kubelet-readonly": 0, "kubelet-healthz": 10248}, nil},
		{"port: 0\n", nil, []string{"kubelet.yaml: field port=\"0\"", "not a port"}},
		{"readOnlyPort: abc\n", nil, []string{"kubelet.yaml: field readOnlyPort=\"abc\"", "0 to turn kubelet-readonly off"}},
	}
	for _, c := range cases {
		write("kubelet.yaml", c.yaml)
		got, err := Ports(l)
		if c.wantErr != nil {
			for _, w := range c.wantErr {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("%q: error %v lacks %q", c.yaml, err, w)
				}
			}
			continue
		}
		if err != nil {
			t.Fatalf("%q: %v", c.yaml, err)
		}
		for name, p := range c.want {
			if got[name] != p {
				t.Errorf("%q: %s = %d, want %d", c.yaml, name, got[name], p)
			}
		}
	}
}

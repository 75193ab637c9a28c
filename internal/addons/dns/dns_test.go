package dns

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/kubeseed/kubeseed/internal/datadir"
	"github.com/kubeseed/kubeseed/internal/netconf"
)

func TestHostUpstreams(t *testing.T) {
	for _, tc := range []struct {
		name, conf string
		want       []string
		fallback   bool
	}{
		{"one resolver", "nameserver 10.255.255.53\n", []string{"10.255.255.53"}, false},
		{"stub resolver only", "# systemd-resolved stub\nnameserver 127.0.0.53\noptions edns0 trust-ad\nsearch example.com\n", FallbackUpstreams, true},
		{"loopback and ::1 skipped", "nameserver 127.0.0.1\nnameserver ::1\nnameserver 192.168.1.1\n", []string{"192.168.1.1"}, false},
		{"IPv6", "nameserver 2001:4860:4860::8888\nnameserver 8.8.4.4\n", []string{"2001:4860:4860::8888", "8.8.4.4"}, false},
		{"IPv6 link-local with zone skipped", "nameserver fe80::1%eth0\n", FallbackUpstreams, true},
		{"comments", "#nameserver 9.9.9.9\n; nameserver 9.9.9.10\nnameserver 1.0.0.1 # trailing\n", []string{"1.0.0.1"}, false},
		{"empty file", "", FallbackUpstreams, true},
		{"garbage", "nameserver not-an-ip\nnameserver\n", FallbackUpstreams, true},
		{"unspecified skipped", "nameserver 0.0.0.0\nnameserver 10.0.0.2\n", []string{"10.0.0.2"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, why := HostUpstreams("/etc/resolv.conf", []byte(tc.conf))
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("upstreams %v, want %v", got, tc.want)
			}
			if (why != "") != tc.fallback {
				t.Errorf("fallback reason %q, want fallback=%v", why, tc.fallback)
			}
			if tc.fallback && !strings.Contains(why, "/etc/resolv.conf") {
				t.Errorf("reason %q does not name the file", why)
			}
		})
	}
}

func TestReadHostUpstreamsMissingFile(t *testing.T) {
	got, why := ReadHostUpstreams(filepath.Join(t.TempDir(), "nope"))
	if !reflect.DeepEqual(got, FallbackUpstreams) || !strings.Contains(why, "nope") {
		t.Errorf("got %v %q", got, why)
	}
}

func TestParseUpstreams(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    []string
		wantErr string
	}{
		{"8.8.8.8", []string{"8.8.8.8"}, ""},
		{" 8.8.8.8 , 2001:db8::1 ", []string{"8.8.8.8", "2001:db8::1"}, ""},
		{"8.8.8.8,", []string{"8.8.8.8"}, ""},
		{"", nil, "no resolver"},
		{",", nil, "no resolver"},
		{"dns.google", nil, `"dns.google" is not an IP`},
		{"8.8.8.8:53", nil, "is not an IP"},
		{"300.1.1.1", nil, "is not an IP"},
		{"127.0.0.53", nil, "loopback"},
		{"::1", nil, "loopback"},
		{"0.0.0.0", nil, "loopback/unspecified"},
		{"fe80::1%eth0", nil, "is not an IP"},
	} {
		got, err := ParseUpstreams("--upstream", tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), "--upstream") {
				t.Errorf("%q: err %v, want one naming --upstream with %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%q: %v %v, want %v", tc.in, got, err, tc.want)
		}
	}
}

func TestConfigRoundTrip(t *testing.T) {
	l := datadir.Layout{Root: t.TempDir()}
	if err := os.MkdirAll(l.ConfigDir(), 0o755); err != nil {
		t.Fatal(err)
	}
	c, err := LoadConfig(l)
	if err != nil || !reflect.DeepEqual(c, DefaultConfig()) || !c.Enabled {
		t.Fatalf("missing file: %+v %v, want enabled default", c, err)
	}
	for _, want := range []Config{
		{Enabled: false},
		{Enabled: true, Upstreams: []string{"192.0.2.1", "2001:db8::53"}},
		{Enabled: false, Upstreams: []string{"192.0.2.1"}},
	} {
		if err := SaveConfig(l, want); err != nil {
			t.Fatal(err)
		}
		got, err := LoadConfig(l)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("round trip %+v: got %+v %v", want, got, err)
		}
	}
}

func TestParseConfigErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"--enabled=maybe\n", "f:1: --enabled"},
		{"# c\n--upstream=localhost\n", "f:2: --upstream"},
		{"--upstream=127.0.0.1\n", "f:1: --upstream: 127.0.0.1 is a loopback"},
		{"--forward=1.1.1.1\n", "f:1: unknown setting --forward"},
		{"enabled\n", "f:1"},
	} {
		if _, err := ParseConfig("f", []byte(tc.in)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err %v, want %q", tc.in, err, tc.want)
		}
	}
	c, err := ParseConfig("f", []byte("--enabled\n--upstream=auto\n"))
	if err != nil || !c.Enabled || c.Upstreams != nil {
		t.Errorf("bare --enabled, auto upstream: %+v %v", c, err)
	}
}

func TestRender(t *testing.T) {
	objs, err := Render(ParamsFor(netconf.Default(), []string{"192.0.2.1", "2001:db8::53"}))
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]bool{}
	for _, o := range objs {
		kinds[o.GetKind()+"/"+o.GetName()] = true
		if o.GetLabels()["app.kubernetes.io/managed-by"] != "kubeseed" {
			t.Errorf("%s/%s lacks the managed-by label", o.GetKind(), o.GetName())
		}
	}
	for _, want := range []string{"ServiceAccount/coredns", "ClusterRole/system:coredns", "ClusterRoleBinding/system:coredns", "ConfigMap/coredns", "Deployment/coredns", "Service/kube-dns"} {
		if !kinds[want] {
			t.Errorf("missing %s (have %v)", want, kinds)
		}
	}
	for _, o := range objs {
		switch o.GetKind() {
		case "Service":
			if ip, _, _ := unstructuredString(o.Object, "spec", "clusterIP"); ip != "10.152.183.10" {
				t.Errorf("kube-dns clusterIP %q", ip)
			}
		case "ConfigMap":
			cf, _, _ := unstructuredString(o.Object, "data", "Corefile")
			for _, want := range []string{"kubernetes cluster.local in-addr.arpa ip6.arpa", "forward . 192.0.2.1 2001:db8::53", "health", "ready"} {
				if !strings.Contains(cf, want) {
					t.Errorf("Corefile lacks %q:\n%s", want, cf)
				}
			}
		case "Deployment":
			js, _ := o.MarshalJSON()
			for _, want := range []string{`"image":"` + Image + `"`, `"readOnlyRootFilesystem":true`, `"drop":["ALL"]`, `"runAsNonRoot":true`, `"allowPrivilegeEscalation":false`, `"imagePullPolicy":"Never"`} {
				if !strings.Contains(string(js), want) {
					t.Errorf("Deployment lacks %s", want)
				}
			}
			if strings.Contains(string(js), `"add"`) || strings.Contains(string(js), "privileged") {
				t.Error("Deployment adds capabilities or privilege")
			}
		}
	}
	if _, err := Render(ParamsFor(netconf.Default(), nil)); err == nil {
		t.Error("rendered with no upstreams")
	}
}

func unstructuredString(obj map[string]any, path ...string) (string, bool, error) {
	cur := any(obj)
	for _, p := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return "", false, nil
		}
		cur = m[p]
	}
	s, ok := cur.(string)
	return s, ok, nil
}

// TestVersionMatchesBuild keeps Version, and so the image name, in step
// with the CoreDNS that build/coredns/go.mod pins.
func TestVersionMatchesBuild(t *testing.T) {
	data, err := os.ReadFile("../../../build/coredns/go.mod")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^\s*(?:require\s+)?github\.com/coredns/coredns (v\S+)`).FindSubmatch(data)
	if m == nil {
		t.Fatal("build/coredns/go.mod does not require github.com/coredns/coredns")
	}
	if string(m[1]) != Version {
		t.Errorf("build/coredns/go.mod pins CoreDNS %s, dns.Version is %s", m[1], Version)
	}
}

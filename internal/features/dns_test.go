package features

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"

	"github.com/kubeseed/kubeseed/internal/addons/dns"
)

// TestDNSOffline: on a stopped node enable/disable only record the choice
// in config/dns; bad options change nothing.
func TestDNSOffline(t *testing.T) {
	l := newLayout(t)
	reg := Default()
	ctx := context.Background()
	var out bytes.Buffer
	n := Node{Layout: l, Out: &out}
	cfg := l.Config(dns.ConfigFile)

	st, err := NewDNS().Status(n)
	if err != nil || !st.Enabled {
		t.Fatalf("a new node's dns: %+v %v, want enabled", st, err)
	}
	for _, tc := range []struct {
		feature string
		opts    map[string]string
		wantErr string
	}{
		{"dns", map[string]string{"upstream": "not-an-ip"}, `"not-an-ip" is not an IP`},
		{"dns", map[string]string{"upstream": "127.0.0.53"}, "loopback"},
		{"dns", map[string]string{"forward": "1.1.1.1"}, "dns has no option --forward"},
		{"rbac", map[string]string{"upstream": "1.1.1.1"}, "rbac takes no options"},
	} {
		err := reg.EnableWith(ctx, tc.feature, n, tc.opts)
		if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("enable %s %v: %v, want %q", tc.feature, tc.opts, err, tc.wantErr)
		}
		if _, serr := os.Stat(cfg); serr == nil {
			t.Fatalf("enable %s %v wrote %s", tc.feature, tc.opts, cfg)
		}
	}

	if err := reg.Disable(ctx, "dns", n); err != nil {
		t.Fatal(err)
	}
	if c, err := dns.LoadConfig(l); err != nil || c.Enabled {
		t.Fatalf("after disable: %+v %v", c, err)
	}
	if err := reg.EnableWith(ctx, "dns", n, map[string]string{"upstream": "192.0.2.1,192.0.2.2"}); err != nil {
		t.Fatal(err)
	}
	c, err := dns.LoadConfig(l)
	if err != nil || !c.Enabled || strings.Join(c.Upstreams, ",") != "192.0.2.1,192.0.2.2" {
		t.Fatalf("after enable --upstream: %+v %v", c, err)
	}
	// Enabled already: options still apply; none is a no-op.
	if err := reg.EnableWith(ctx, "dns", n, map[string]string{"upstream": "auto"}); err != nil {
		t.Fatal(err)
	}
	if c, _ := dns.LoadConfig(l); c.Upstreams != nil || !c.Enabled {
		t.Errorf("after --upstream=auto: %+v", c)
	}
	out.Reset()
	if err := reg.Enable(ctx, "dns", n); err != nil || !strings.Contains(out.String(), "already enabled") {
		t.Errorf("enable twice: %v %q", err, out.String())
	}
}

package certrenew

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kubeseed/kubeseed/internal/bootstrap"
	"github.com/kubeseed/kubeseed/internal/datadir"
	"github.com/kubeseed/kubeseed/internal/netconf"
	"github.com/kubeseed/kubeseed/internal/pki"
)

func ips(s ...string) []net.IP {
	out := []net.IP{}
	for _, x := range s {
		out = append(out, net.ParseIP(x))
	}
	return out
}

func TestIPWatchNeedsTwoAgreeingPolls(t *testing.T) {
	steps := []struct {
		poll []net.IP
		act  bool
	}{
		{ips("192.0.2.1"), false}, // first sight
		{ips("192.0.2.1"), true},  // stable: acted on once at start
		{ips("192.0.2.1"), false},
		{ips("192.0.2.1", "198.51.100.7"), false}, // a blip...
		{ips("192.0.2.1"), false},                 // ...that went away
		{ips("198.51.100.7", "192.0.2.1"), false},
		{ips("192.0.2.1", "198.51.100.7"), true}, // same set, other order
		{ips("192.0.2.1", "198.51.100.7"), false},
		{ips(), false},
		{ips(), true}, // losing every address is a change too
	}
	w := ipWatch{}
	for i, s := range steps {
		if got := w.observe(s.poll); got != s.act {
			t.Fatalf("step %d (%v): act %v, want %v", i, s.poll, got, s.act)
		}
	}
}

func TestValidate(t *testing.T) {
	good := Options{RenewBefore: pki.DefaultRenewBefore, CheckInterval: time.Hour, IPPollInterval: 5 * time.Second}
	cases := []struct {
		name string
		mod  func(o *Options)
		want string
	}{
		{"ok", func(*Options) {}, ""},
		{"negative days", func(o *Options) { o.RenewBefore = -time.Hour }, "--cert-renew-days"},
		{"fast check", func(o *Options) { o.CheckInterval = time.Millisecond }, "--cert-check-interval"},
		{"fast poll", func(o *Options) { o.IPPollInterval = time.Millisecond }, "--host-ip-poll-interval"},
	}
	if got := (Options{}).WithDefaults(); got != good {
		t.Errorf("defaults %+v, want %+v", got, good)
	}
	for _, c := range cases {
		o := good
		c.mod(&o)
		err := o.Validate()
		if (err == nil) != (c.want == "") || (err != nil && !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
}

// TestLoop runs the component with an injected clock 25 days before every
// leaf expires, then changes the host's IPs.
func TestLoop(t *testing.T) {
	l, err := datadir.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	hostIPs := ips("192.0.2.10")
	getIPs := func() ([]net.IP, error) { mu.Lock(); defer mu.Unlock(); return hostIPs, nil }
	if _, err := bootstrap.Prepare(context.Background(), l, bootstrap.Options{NodeName: "n", HostIPs: hostIPs, Now: func() time.Time { return t0 }}); err != nil {
		t.Fatal(err)
	}
	now := t0.Add(340 * 24 * time.Hour)
	m := pki.Manager{Layout: l, Vars: bootstrap.TemplateVars(netconf.Default()), Now: func() time.Time { return now }, HostIPs: getIPs}
	r := New(m, Options{RenewBefore: pki.DefaultRenewBefore, CheckInterval: time.Hour, IPPollInterval: 100 * time.Millisecond})
	ctx := context.Background()
	if err := r.Init(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer r.Stop(ctx)
	readyCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := r.Ready(readyCtx); err != nil {
		t.Fatal(err)
	}
	st, err := ReadState(l.CertRenewalState())
	if err != nil || st == nil {
		t.Fatalf("state: %v %v", st, err)
	}
	if len(st.LastRenewed) == 0 || !st.LastRenewedAt.Equal(now) {
		t.Errorf("state after the first check: %+v", st)
	}
	c, err := pki.LoadCert(l.Cert("server"))
	if err != nil || !c.NotAfter.Equal(now.Add(pki.Year)) {
		t.Fatalf("server.crt not renewed: %v %v", c.NotAfter, err)
	}
	if want := now.Add(pki.Year - pki.DefaultRenewBefore); !st.NextAt.Equal(want) {
		t.Errorf("next renewal %s, want %s", st.NextAt, want)
	}
	desc := st.Describe(now)
	for _, w := range []string{"less than 30 days left", "checking every 1h0m0s", "next renewal:", "(in 335 days)", "last renewed"} {
		if !strings.Contains(desc, w) {
			t.Errorf("Describe lacks %q:\n%s", w, desc)
		}
	}

	mu.Lock()
	hostIPs = ips("192.0.2.10", "198.51.100.7")
	mu.Unlock()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := pki.LoadCert(l.Cert("server"))
		if err == nil && c.VerifyHostname("198.51.100.7") == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("server.crt never took the new host IP")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := r.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	st, _ = ReadState(l.CertRenewalState())
	if !strings.Contains(st.Describe(now), "198.51.100.7") {
		t.Errorf("status does not show the IP change:\n%s", st.Describe(now))
	}
}

package apiproxy

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// Short timings keep the tests fast; failover must happen within a couple
// of intervals. The dial timeout leaves room for handshakes on a loaded
// machine under -race: a live server that misses it reads as a failure.
const (
	testInterval    = 50 * time.Millisecond
	testDialTimeout = time.Second
	failoverWithin  = 2 * time.Second
)

type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "test-ca"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

// leaf issues a serving certificate for the given IPs.
func (ca *testCA) leaf(t *testing.T, ips ...string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "kube-apiserver"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, ip := range ips {
		tmpl.IPAddresses = append(tmpl.IPAddresses, net.ParseIP(ip))
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// fakeAPI is an apiserver stand-in: /readyz answers with ready's status,
// /who with its name.
type fakeAPI struct {
	name  string
	addr  string
	cert  tls.Certificate
	ready atomic.Int32
	srv   *httptest.Server
}

func newFakeAPI(t *testing.T, ca *testCA, name string) *fakeAPI {
	t.Helper()
	f := &fakeAPI{name: name, cert: ca.leaf(t, "127.0.0.1")}
	f.ready.Store(http.StatusOK)
	f.start(t, "127.0.0.1:0")
	return f
}

func (f *fakeAPI) start(t *testing.T, addr string) {
	t.Helper()
	var ln net.Listener
	var err error
	// The port of a just-stopped server may take a moment to be free.
	for range 50 {
		if ln, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/readyz":
			code := int(f.ready.Load())
			w.WriteHeader(code)
			if code == http.StatusOK {
				fmt.Fprint(w, "ok")
			} else {
				fmt.Fprint(w, "[+]ping ok\n[-]etcd failed: reason withheld\nreadyz check failed\n")
			}
		case "/who":
			fmt.Fprint(w, f.name)
		default:
			http.NotFound(w, r)
		}
	}))
	srv.Listener.Close()
	srv.Listener = ln
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{f.cert}}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // handshake errors are the point of some tests
	srv.StartTLS()
	f.srv = srv
	f.addr = ln.Addr().String()
	t.Cleanup(srv.Close)
}

// freeAddr is an address nothing listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func testConfig(ca *testCA, servers ...string) Config {
	return Config{
		Listen:         "127.0.0.1:0",
		Servers:        servers,
		CA:             ca.pool,
		HealthInterval: testInterval,
		DialTimeout:    testDialTimeout,
	}
}

type running struct {
	p      *Proxy
	addr   string
	cancel context.CancelFunc
	done   chan error
}

// startProxy runs a proxy until the test ends and checks that Run returns nil.
func startProxy(t *testing.T, cfg Config) *running {
	t.Helper()
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{p: p, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- p.Run(ctx) }()
	waitFor(t, time.Second, "proxy listening", func() bool { return p.Addr() != nil })
	r.addr = p.Addr().String()
	t.Cleanup(func() { r.stop(t) })
	return r
}

func (r *running) stop(t *testing.T) {
	t.Helper()
	r.cancel()
	select {
	case err, ok := <-r.done:
		if ok && err != nil {
			t.Errorf("Run: %v", err)
		}
		close(r.done)
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}

func (r *running) ready(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := r.p.Ready(ctx); err != nil {
		t.Fatal(err)
	}
}

// waitCurrent returns the current server once there is one. Which of
// several healthy servers becomes current is whichever passes its check
// first, so tests ask instead of assuming.
func (r *running) waitCurrent(t *testing.T) string {
	t.Helper()
	var cur string
	waitFor(t, failoverWithin, "a current server", func() bool {
		for _, s := range r.p.Status() {
			if s.Current {
				cur = s.Address
				return true
			}
		}
		return false
	})
	return cur
}

// pick returns the fake that is at addr and the other one.
func pick(addr string, a, b *fakeAPI) (*fakeAPI, *fakeAPI) {
	if addr == a.addr {
		return a, b
	}
	return b, a
}

func (r *running) status(addr string) (ServerStatus, bool) {
	for _, s := range r.p.Status() {
		if s.Address == addr {
			return s, true
		}
	}
	return ServerStatus{}, false
}

func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// client is a TLS connection through the proxy, verified like kubelet's.
type client struct {
	conn *tls.Conn
	br   *bufio.Reader
}

func dialClient(proxyAddr string, ca *testCA) (*client, error) {
	d := &net.Dialer{Timeout: 2 * time.Second}
	conn, err := tls.DialWithDialer(d, "tcp", proxyAddr, &tls.Config{RootCAs: ca.pool, ServerName: "127.0.0.1"})
	if err != nil {
		return nil, err
	}
	return &client{conn: conn, br: bufio.NewReader(conn)}, nil
}

// who asks the apiserver at the other end of c for its name.
func (c *client) who() (string, error) {
	_ = c.conn.SetDeadline(time.Now().Add(2 * time.Second))
	defer c.conn.SetDeadline(time.Time{})
	if _, err := io.WriteString(c.conn, "GET /who HTTP/1.1\r\nHost: kubernetes\r\n\r\n"); err != nil {
		return "", err
	}
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return string(body), err
}

// waitClosed fails unless the peer closes c within d.
func (c *client) waitClosed(t *testing.T, d time.Duration) {
	t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(d))
	_, err := c.br.ReadByte()
	var ne net.Error
	if err == nil || errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("connection still open after %v (read: %v)", d, err)
	}
}

func (c *client) close() { _ = c.conn.Close() }

// whoVia opens a fresh connection through the proxy and asks who answers.
func whoVia(proxyAddr string, ca *testCA) (string, error) {
	c, err := dialClient(proxyAddr, ca)
	if err != nil {
		return "", err
	}
	defer c.close()
	return c.who()
}

func mustWho(t *testing.T, c *client, want string) {
	t.Helper()
	got, err := c.who()
	if err != nil {
		t.Fatalf("request through the proxy: %v", err)
	}
	if got != want {
		t.Fatalf("answered by %q, want %q", got, want)
	}
}

// eventuallyWho waits until new connections land on want.
func eventuallyWho(t *testing.T, proxyAddr string, ca *testCA, want string) {
	t.Helper()
	var got string
	var err error
	deadline := time.Now().Add(failoverWithin)
	for time.Now().Before(deadline) {
		if got, err = whoVia(proxyAddr, ca); err == nil && got == want {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("new connections did not reach %q within %v: last answer %q, err %v", want, failoverWithin, got, err)
}

func TestNewRejectsBadConfig(t *testing.T) {
	ca := newCA(t)
	tests := []struct {
		name string
		edit func(*Config)
		want []string // all must appear in the error
	}{
		{"no servers", func(c *Config) { c.Servers = nil }, []string{"Config.Servers is empty"}},
		{"missing port", func(c *Config) { c.Servers = []string{"10.0.0.1:6443", "10.0.0.2"} }, []string{"Config.Servers[1]", `"10.0.0.2"`, "missing port"}},
		{"port zero", func(c *Config) { c.Servers = []string{"10.0.0.1:0"} }, []string{"Config.Servers[0]", "port"}},
		{"port too big", func(c *Config) { c.Servers = []string{"10.0.0.1:70000"} }, []string{"Config.Servers[0]", "port"}},
		{"port not a number", func(c *Config) { c.Servers = []string{"10.0.0.1:https"} }, []string{"Config.Servers[0]", "port"}},
		{"empty host", func(c *Config) { c.Servers = []string{":6443"} }, []string{"Config.Servers[0]", "host is empty"}},
		{"bad host", func(c *Config) { c.Servers = []string{"bad host:6443"} }, []string{"Config.Servers[0]", "neither an IP"}},
		{"unspecified host", func(c *Config) { c.Servers = []string{"0.0.0.0:6443"} }, []string{"Config.Servers[0]", "unspecified"}},
		{"unbracketed IPv6", func(c *Config) { c.Servers = []string{"::1:6443"} }, []string{"Config.Servers[0]"}},
		{"own address", func(c *Config) { c.Listen = "127.0.0.1:16443"; c.Servers = []string{"127.0.0.1:16443"} }, []string{"Config.Servers[0]", "own Listen"}},
		{"bad listen", func(c *Config) { c.Listen = "localhost" }, []string{"Config.Listen", `"localhost"`}},
		{"nil CA", func(c *Config) { c.CA = nil }, []string{"Config.CA"}},
		{"negative interval", func(c *Config) { c.HealthInterval = -time.Second }, []string{"Config.HealthInterval"}},
		{"negative dial timeout", func(c *Config) { c.DialTimeout = -time.Second }, []string{"Config.DialTimeout"}},
		{"too many servers", func(c *Config) {
			c.Servers = nil
			for i := range maxServers + 1 {
				c.Servers = append(c.Servers, fmt.Sprintf("10.0.%d.%d:6443", i/250, i%250+1))
			}
		}, []string{"Config.Servers has 129 entries"}},
		{"all problems at once", func(c *Config) { c.Servers = []string{"x"}; c.CA = nil }, []string{"Config.Servers[0]", "Config.CA"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(ca, "10.0.0.1:6443")
			tt.edit(&cfg)
			_, err := New(cfg)
			if err == nil {
				t.Fatal("New accepted the config")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestNewDefaultsAndNormalises(t *testing.T) {
	ca := newCA(t)
	p, err := New(Config{Servers: []string{"[::1]:6443", "API.Example.com:6443", "[0:0::1]:6443", "10.0.0.1:06443"}, CA: ca.pool})
	if err != nil {
		t.Fatal(err)
	}
	if p.cfg.Listen != DefaultListen || p.cfg.HealthInterval != DefaultHealthInterval || p.cfg.DialTimeout != DefaultDialTimeout {
		t.Errorf("defaults not applied: %+v", p.cfg)
	}
	want := []string{"[::1]:6443", "api.example.com:6443", "10.0.0.1:6443"}
	if !slices.Equal(p.fallback, want) {
		t.Errorf("fallback = %v, want %v", p.fallback, want)
	}
}

func TestProxyForwardsToCurrentServer(t *testing.T) {
	ca := newCA(t)
	a, b := newFakeAPI(t, ca, "A"), newFakeAPI(t, ca, "B")
	r := startProxy(t, testConfig(ca, a.addr, b.addr))
	r.ready(t)
	cur, other := pick(r.waitCurrent(t), a, b)

	c, err := dialClient(r.addr, ca)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	for range 3 {
		mustWho(t, c, cur.name)
	}
	// Sticky: every new connection goes to the same server.
	for range 5 {
		got, err := whoVia(r.addr, ca)
		if err != nil || got != cur.name {
			t.Fatalf("new connection answered by %q, %v; want %s", got, err, cur.name)
		}
	}
	// The closed connections leave the count as their copies end.
	waitFor(t, time.Second, "one active connection", func() bool { st, _ := r.status(cur.addr); return st.ActiveConns == 1 })
	st, _ := r.status(cur.addr)
	if !st.Current || !st.Healthy || !st.Fallback || st.LastError != "" {
		t.Errorf("status of %s = %+v, want current, healthy, fallback, 1 connection", cur.name, st)
	}
	if st, _ := r.status(other.addr); st.Current || st.ActiveConns != 0 || !st.Healthy {
		t.Errorf("status of %s = %+v, want healthy, not current, no connections", other.name, st)
	}
}

func TestFailover(t *testing.T) {
	tests := []struct {
		name    string
		breakA  func(a *fakeAPI)
		repairA func(t *testing.T, a *fakeAPI)
		errLike string
	}{
		{
			name:    "readyz 500",
			breakA:  func(a *fakeAPI) { a.ready.Store(http.StatusInternalServerError) },
			repairA: func(t *testing.T, a *fakeAPI) { a.ready.Store(http.StatusOK) },
			errLike: "HTTP 500: [-]etcd failed",
		},
		{
			// Only the listener goes: A's open connections stay up, so
			// only the proxy can close them.
			name:    "listener closed",
			breakA:  func(a *fakeAPI) { a.srv.Listener.Close() },
			repairA: func(t *testing.T, a *fakeAPI) { a.srv.Close(); a.start(t, a.addr) },
			errLike: "connection refused",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ca := newCA(t)
			a, b := newFakeAPI(t, ca, "A"), newFakeAPI(t, ca, "B")
			r := startProxy(t, testConfig(ca, a.addr, b.addr))
			r.ready(t)
			cur, other := pick(r.waitCurrent(t), a, b)
			waitFor(t, failoverWithin, "both healthy", func() bool { st, _ := r.status(other.addr); return st.Healthy })
			c, err := dialClient(r.addr, ca)
			if err != nil {
				t.Fatal(err)
			}
			defer c.close()
			mustWho(t, c, cur.name)

			tt.breakA(cur)
			c.waitClosed(t, failoverWithin)
			eventuallyWho(t, r.addr, ca, other.name)
			st, _ := r.status(cur.addr)
			if st.Healthy || st.Current || !strings.Contains(st.LastError, tt.errLike) {
				t.Errorf("status of the broken server = %+v, want unhealthy, not current, error like %q", st, tt.errLike)
			}

			// Its recovery does not move traffic back.
			tt.repairA(t, cur)
			waitFor(t, failoverWithin, "broken server healthy again", func() bool { st, _ := r.status(cur.addr); return st.Healthy })
			c2, err := dialClient(r.addr, ca)
			if err != nil {
				t.Fatal(err)
			}
			defer c2.close()
			if got, err := c2.who(); err != nil || got != other.name {
				t.Fatalf("after recovery answered by %q, %v; want %s to stay current; status %+v", got, err, other.name, r.p.Status())
			}
		})
	}
}

func TestSetServersClosesConnectionsOfRemovedServer(t *testing.T) {
	tests := []struct {
		name        string
		fallbackIsA bool // else the fallback is a dead address
	}{
		{name: "removed entirely"},
		{name: "demoted to fallback", fallbackIsA: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ca := newCA(t)
			a, b := newFakeAPI(t, ca, "A"), newFakeAPI(t, ca, "B")
			fallback := freeAddr(t)
			if tt.fallbackIsA {
				fallback = a.addr
			}
			r := startProxy(t, testConfig(ca, fallback))
			if tt.fallbackIsA {
				// A is current before B is known, and stays so.
				r.ready(t)
			}
			r.p.SetServers([]string{a.addr, b.addr})
			removed, kept := pick(r.waitCurrent(t), a, b)
			if tt.fallbackIsA && removed != a {
				t.Fatalf("current moved from A to %s when B was added", removed.name)
			}
			waitFor(t, failoverWithin, "both healthy", func() bool { st, _ := r.status(kept.addr); return st.Healthy })
			c, err := dialClient(r.addr, ca)
			if err != nil {
				t.Fatal(err)
			}
			defer c.close()
			mustWho(t, c, removed.name)

			r.p.SetServers([]string{kept.addr})
			c.waitClosed(t, time.Second)
			eventuallyWho(t, r.addr, ca, kept.name)
			st, found := r.status(removed.addr)
			if found != tt.fallbackIsA || st.Listed || st.Current || st.ActiveConns != 0 || st.Fallback != tt.fallbackIsA {
				t.Errorf("status of the removed server = %+v (present %v), want present only as fallback: %v", st, found, tt.fallbackIsA)
			}
			if st, _ := r.status(kept.addr); !st.Current || !st.Listed {
				t.Errorf("status of the kept server = %+v, want current and listed", st)
			}
		})
	}
}

func TestSetServersIgnoresEmptyList(t *testing.T) {
	ca := newCA(t)
	state := filepath.Join(t.TempDir(), "apiservers.json")
	cfg := testConfig(ca, "10.0.0.1:6443")
	cfg.StateFile = state
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	p.SetServers([]string{"10.0.1.1:6443"})
	for _, empty := range [][]string{nil, {}, {"garbage", "10.0.1.2"}} {
		p.SetServers(empty)
	}
	if st := p.Status(); len(st) != 2 || st[0].Address != "10.0.1.1:6443" || !st[0].Listed {
		t.Errorf("status = %+v, want the listed server kept", st)
	}
	if reloaded, err := loadState(state); err != nil || !slices.Equal(reloaded, []string{"10.0.1.1:6443"}) {
		t.Errorf("state file holds %v, %v; want the listed server kept", reloaded, err)
	}
}

func TestStateFilePersistedAndReloaded(t *testing.T) {
	ca := newCA(t)
	a, b := newFakeAPI(t, ca, "A"), newFakeAPI(t, ca, "B")
	dir := t.TempDir()
	state := filepath.Join(dir, "apiservers.json")
	dead := freeAddr(t)

	cfg := testConfig(ca, dead)
	cfg.StateFile = state
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	p.SetServers([]string{b.addr, "not an address", a.addr, b.addr})

	fi, err := os.Stat(state)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("state file mode %v, want 0600", fi.Mode().Perm())
	}
	var saved stateFile
	data, _ := os.ReadFile(state)
	if err := json.Unmarshal(data, &saved); err != nil {
		t.Fatalf("state file %q: %v", data, err)
	}
	if want := []string{b.addr, a.addr}; !slices.Equal(saved.Servers, want) {
		t.Errorf("saved %v, want %v", saved.Servers, want)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("temp files left behind: %v", entries)
	}

	// A restarted proxy starts from the saved list, fallback still last.
	r := startProxy(t, cfg)
	var got []string
	for _, st := range r.p.Status() {
		got = append(got, fmt.Sprintf("%s listed=%v fallback=%v", st.Address, st.Listed, st.Fallback))
	}
	want := []string{b.addr + " listed=true fallback=false", a.addr + " listed=true fallback=false", dead + " listed=false fallback=true"}
	if !slices.Equal(got, want) {
		t.Errorf("status after reload:\n got %q\nwant %q", got, want)
	}
	r.ready(t)
	cur, _ := pick(r.waitCurrent(t), a, b)
	eventuallyWho(t, r.addr, ca, cur.name)
}

func TestBrokenStateFileIsIgnored(t *testing.T) {
	ca := newCA(t)
	tests := map[string]string{
		"not JSON":       "{servers",
		"bad entry":      `{"servers":["10.0.0.1:6443","10.0.0.2"]}`,
		"wrong type":     `{"servers":"10.0.0.1:6443"}`,
		"directory path": "",
	}
	for name, content := range tests {
		t.Run(name, func(t *testing.T) {
			state := filepath.Join(t.TempDir(), "apiservers.json")
			if name == "directory path" {
				if err := os.Mkdir(state, 0o700); err != nil {
					t.Fatal(err)
				}
			} else if err := os.WriteFile(state, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg := testConfig(ca, "10.0.0.9:6443")
			cfg.StateFile = state
			p, err := New(cfg)
			if err != nil {
				t.Fatalf("New failed on a broken state file: %v", err)
			}
			st := p.Status()
			if len(st) != 1 || st[0].Address != "10.0.0.9:6443" || st[0].Listed {
				t.Errorf("status = %+v, want only the fallback server", st)
			}
		})
	}
}

func TestAllServersDownThenOneReturns(t *testing.T) {
	ca := newCA(t)
	a := newFakeAPI(t, ca, "A")
	r := startProxy(t, testConfig(ca, a.addr))
	r.ready(t)
	eventuallyWho(t, r.addr, ca, "A")

	a.srv.Close()
	waitFor(t, failoverWithin, "A unhealthy", func() bool { st, _ := r.status(a.addr); return !st.Healthy })

	// The client is closed promptly instead of hanging.
	conn, err := net.Dial("tcp", r.addr)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	_, err = conn.Read(make([]byte, 1))
	conn.Close()
	if !errors.Is(err, io.EOF) {
		t.Fatalf("read from proxy with every server down: %v, want EOF", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("client closed after %v, want promptly", d)
	}
	if st, _ := r.status(a.addr); st.Current {
		t.Errorf("dead server still current: %+v", st)
	}

	// Back on the same address: connections succeed again.
	a.start(t, a.addr)
	eventuallyWho(t, r.addr, ca, "A")
}

func TestUnhealthyServersAreStillTried(t *testing.T) {
	ca := newCA(t)
	dead := freeAddr(t)
	b := newFakeAPI(t, ca, "B")
	b.ready.Store(http.StatusServiceUnavailable)
	r := startProxy(t, testConfig(ca, dead, b.addr))

	ctx, cancel := context.WithTimeout(context.Background(), 4*testInterval)
	defer cancel()
	err := r.p.Ready(ctx)
	if err == nil {
		t.Fatal("Ready succeeded with no healthy server")
	}
	for _, w := range []string{dead + ": dial tcp", "connection refused", b.addr + ": GET", "HTTP 503", "context deadline exceeded"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("Ready error %q does not mention %q", err, w)
		}
	}
	// No server is healthy, so the proxy tries them all: the dead one
	// fails, B answers.
	for range 3 {
		got, err := whoVia(r.addr, ca)
		if err != nil || got != "B" {
			t.Fatalf("through the proxy: %q, %v; want B", got, err)
		}
	}
}

// TestDialFailureMovesCurrent: a server that died between health checks
// costs one failed dial, not one per connection until the next check.
func TestDialFailureMovesCurrent(t *testing.T) {
	ca := newCA(t)
	a, b := newFakeAPI(t, ca, "A"), newFakeAPI(t, ca, "B")
	cfg := testConfig(ca, a.addr, b.addr)
	cfg.HealthInterval = time.Hour // only the dial can tell
	r := startProxy(t, cfg)
	r.ready(t)
	cur, other := pick(r.waitCurrent(t), a, b)
	waitFor(t, failoverWithin, "both healthy", func() bool { st, _ := r.status(other.addr); return st.Healthy })

	cur.srv.Close()
	for range 3 {
		got, err := whoVia(r.addr, ca)
		if err != nil || got != other.name {
			t.Fatalf("through the proxy: %q, %v; want %s", got, err, other.name)
		}
	}
	st, _ := r.status(cur.addr)
	if st.Current || !strings.Contains(st.LastError, "connection refused") {
		t.Errorf("status of the dead server = %+v, want not current, with its dial error", st)
	}
	if st, _ := r.status(other.addr); !st.Current {
		t.Errorf("status of %s = %+v, want current", other.name, st)
	}
}

func TestRunStopsAndClosesEverything(t *testing.T) {
	ca := newCA(t)
	a, b := newFakeAPI(t, ca, "A"), newFakeAPI(t, ca, "B")
	base := runtime.NumGoroutine()

	p, err := New(testConfig(ca, a.addr, b.addr))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	rctx, rcancel := context.WithTimeout(ctx, 3*time.Second)
	defer rcancel()
	if err := p.Ready(rctx); err != nil {
		t.Fatal(err)
	}
	addr := p.Addr().String()
	var clients []*client
	for range 3 {
		c, err := dialClient(addr, ca)
		if err != nil {
			t.Fatal(err)
		}
		defer c.close()
		if _, err := c.who(); err != nil {
			t.Fatal(err)
		}
		clients = append(clients, c)
	}
	if busy := runtime.NumGoroutine(); busy <= base {
		t.Fatalf("goroutines while serving = %d, base %d: the count cannot show a leak", busy, base)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run after cancel: %v", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	for _, c := range clients {
		c.waitClosed(t, time.Second)
	}
	for _, st := range p.Status() {
		if st.ActiveConns != 0 {
			t.Errorf("%s still counts %d connections", st.Address, st.ActiveConns)
		}
	}
	if _, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		t.Error("proxy still accepts after Run returned")
	}
	if err := p.Ready(context.Background()); err == nil {
		t.Error("Ready succeeded after Run returned")
	}
	if err := p.Run(context.Background()); err == nil {
		t.Error("second Run succeeded")
	}

	// Run's goroutines (accept, health, copies) are all gone; the fake
	// servers' connections go with the clients.
	for _, c := range clients {
		c.close()
	}
	a.srv.Close()
	b.srv.Close()
	waitFor(t, 2*time.Second, fmt.Sprintf("goroutines back to %d", base), func() bool { return runtime.NumGoroutine() <= base })
}

func TestRunFailsWhenItCannotListen(t *testing.T) {
	ca := newCA(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cfg := testConfig(ca, "10.0.0.1:6443")
	cfg.Listen = ln.Addr().String()
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	err = p.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "listen on "+cfg.Listen) {
		t.Fatalf("Run = %v, want a listen error naming %s", err, cfg.Listen)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := p.Ready(ctx); err == nil || !strings.Contains(err.Error(), "address already in use") {
		t.Errorf("Ready = %v, want Run's listen error", err)
	}
}

func TestHealthCheck(t *testing.T) {
	ca := newCA(t)
	other := newCA(t)
	good := newFakeAPI(t, ca, "good")
	failing := newFakeAPI(t, ca, "failing")
	failing.ready.Store(http.StatusInternalServerError)
	wrongCA := newFakeAPI(t, other, "wrong CA")
	wrongSAN := &fakeAPI{name: "wrong SAN", cert: ca.leaf(t, "10.9.9.9")}
	wrongSAN.ready.Store(http.StatusOK)
	wrongSAN.start(t, "127.0.0.1:0")
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer plain.Close()
	silent, err := net.Listen("tcp", "127.0.0.1:0") // accepts, never answers
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()

	tests := []struct {
		name    string
		addr    string
		wantErr string // "" for healthy
	}{
		{"healthy", good.addr, ""},
		{"readyz fails", failing.addr, "HTTP 500: [-]etcd failed: reason withheld"},
		{"certificate from another CA", wrongCA.addr, "unknown authority"},
		{"certificate for another IP", wrongSAN.addr, "not 127.0.0.1"},
		{"not TLS", plain.Listener.Addr().String(), "TLS handshake"},
		{"nothing listening", freeAddr(t), "connection refused"},
		{"never answers", silent.Addr().String(), "TLS handshake"},
	}
	p, err := New(testConfig(ca, good.addr))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			err := p.check(context.Background(), tt.addr)
			if d := time.Since(start); d > 2*testDialTimeout+time.Second {
				t.Errorf("check took %v, want at most about 2 dial timeouts", d)
			}
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("check: %v", err)
			case tt.wantErr != "" && err == nil:
				t.Fatal("check passed")
			case tt.wantErr != "" && !strings.Contains(err.Error(), tt.wantErr):
				t.Fatalf("check error %q does not mention %q", err, tt.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), tt.addr) {
				t.Errorf("check error %q does not name %s", err, tt.addr)
			}
		})
	}
}

func TestCandidates(t *testing.T) {
	ca := newCA(t)
	const (
		f1 = "10.0.0.1:6443" // fallback
		l1 = "10.0.1.1:6443"
		l2 = "10.0.1.2:6443"
		l3 = "10.0.1.3:6443"
	)
	tests := []struct {
		name        string
		healthy     []string
		dialFailed  []string
		rotate      int
		wantCurrent string
		want        []string
	}{
		{"none healthy: fallback first", nil, nil, 0, "", []string{f1, l1, l2, l3}},
		{"none healthy: rotated", nil, nil, 1, "", []string{l1, l2, l3, f1}},
		{"listed preferred over fallback", []string{f1, l2}, nil, 0, l2, []string{l2, f1, l1, l3}},
		{"fallback when nothing listed is healthy", []string{f1}, nil, 0, f1, []string{f1, l1, l2, l3}},
		{"dial failure demotes", []string{l1, l2}, []string{l1}, 0, l2, []string{l2, f1, l1, l3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := New(testConfig(ca, f1))
			if err != nil {
				t.Fatal(err)
			}
			p.SetServers([]string{l1, l2, l3})
			p.mu.Lock()
			for _, a := range tt.healthy {
				p.servers[a].healthy = true
			}
			for _, a := range tt.dialFailed {
				p.servers[a].dialFailed = true
			}
			p.rotate = tt.rotate
			p.pickCurrentLocked()
			cur := p.current
			p.mu.Unlock()
			if cur != tt.wantCurrent {
				t.Errorf("current = %q, want %q", cur, tt.wantCurrent)
			}
			var got []string
			for _, s := range p.candidates() {
				got = append(got, s.addr)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("candidates = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestCurrentIsSticky(t *testing.T) {
	ca := newCA(t)
	p, err := New(testConfig(ca, "10.0.0.1:6443"))
	if err != nil {
		t.Fatal(err)
	}
	p.SetServers([]string{"10.0.1.1:6443", "10.0.1.2:6443"})
	p.mu.Lock()
	defer p.mu.Unlock()
	p.servers["10.0.1.2:6443"].healthy = true
	p.pickCurrentLocked()
	p.servers["10.0.1.1:6443"].healthy = true
	p.pickCurrentLocked()
	if p.current != "10.0.1.2:6443" {
		t.Errorf("current = %q: a server that came up earlier in the list took over", p.current)
	}
}

// TestPipeHalfClose checks that a client's half-close reaches the server
// and the server's answer still comes back.
func TestPipeHalfClose(t *testing.T) {
	pair := func() (net.Conn, net.Conn) {
		t.Helper()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		accepted := make(chan net.Conn, 1)
		go func() {
			c, _ := ln.Accept()
			accepted <- c
		}()
		dialed, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		return dialed, <-accepted
	}
	client, proxyFront := pair()
	proxyBack, server := pair()
	defer client.Close()
	defer server.Close()
	piped := make(chan struct{})
	go func() {
		pipe(proxyFront, proxyBack)
		close(piped)
	}()

	if _, err := client.Write([]byte("request")); err != nil {
		t.Fatal(err)
	}
	if err := client.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	_ = server.SetDeadline(time.Now().Add(2 * time.Second))
	got, err := io.ReadAll(server) // ends only when the half-close arrives
	if err != nil || string(got) != "request" {
		t.Fatalf("server read %q, %v", got, err)
	}
	if _, err := server.Write([]byte("answer")); err != nil {
		t.Fatal(err)
	}
	server.Close()
	_ = client.SetDeadline(time.Now().Add(2 * time.Second))
	got, err = io.ReadAll(client)
	if err != nil || string(got) != "answer" {
		t.Fatalf("client read %q, %v", got, err)
	}
	select {
	case <-piped:
	case <-time.After(2 * time.Second):
		t.Fatal("pipe did not return after both sides closed")
	}
}

func FuzzLoadState(f *testing.F) {
	for _, s := range []string{
		`{"servers":["10.0.0.1:6443","[fd00::1]:6443","api.example.com:6443"]}`,
		`{"servers":[]}`,
		`{"servers":null}`,
		`{"servers":["10.0.0.1"]}`,
		`{"servers":["10.0.0.1:6443","10.0.0.1:06443"]}`,
		`{}`,
		`[]`,
		``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		list, err := parseState(data)
		if err != nil {
			return
		}
		if len(list) > maxServers {
			t.Fatalf("%d servers accepted", len(list))
		}
		for i, a := range list {
			n, err := normalizeAddr(a, false)
			if err != nil || n != a {
				t.Fatalf("entry %q accepted but normalises to %q, %v", a, n, err)
			}
			if slices.Contains(list[:i], a) {
				t.Fatalf("duplicate %q", a)
			}
		}
		// What persist would write reads back the same.
		out, err := json.Marshal(stateFile{Servers: list})
		if err != nil {
			t.Fatal(err)
		}
		again, err := parseState(out)
		if err != nil || !slices.Equal(again, list) {
			t.Fatalf("round trip: %v, %v; want %v", again, err, list)
		}
	})
}
